//! A FAKE of the Google Drive v3 API subset the `gdrive` backend uses, and of Google's OAuth
//! token endpoint, served on 127.0.0.1 by plain `std::net` threads (HTTP/1.1 with keep-alive;
//! no server crate is in the dependency tree, and a few hundred lines of std code keep every
//! byte on the wire under the test's control, which fault injection needs).
//!
//! It is a fake because no real Drive can run here. It aims to be faithful where the backend
//! depends on Drive's behaviour, and strict where a real server would be lenient, so that
//! drift in what the client sends fails a test:
//!
//! - files keep their bytes exactly; names may repeat in a folder (as in Drive); ids are
//!   random; `createdTime` is RFC 3339 UTC with milliseconds, strictly increasing;
//! - `files.list` parses `q` (`name`, `mimeType` with `=`/`!=`, `trashed = false`,
//!   `'id' in parents`, `and`, `or`, parentheses, `\'` and `\\` escapes) and answers 400 to
//!   anything else; honours `fields` (400 on an unknown field), `pageSize`, `pageToken` and
//!   `orderBy=createdTime` (cursor pages; unordered listings page by offset, so a change
//!   between pages can skip an item), and returns at most `page_cap` items per page (so
//!   paging is exercised);
//! - multipart uploads are parsed strictly (`multipart/related`, JSON metadata, then media);
//! - resumable sessions: `X-Upload-Content-Length` required, `Content-Range: bytes a-b/N`
//!   must start at the committed offset and every chunk but the last must be a multiple of
//!   256 KiB (400 otherwise); 308 replies carry `Range: bytes=0-n` (none when nothing is
//!   stored); `bytes */N` asks for status; a forgotten session is a 404;
//! - downloads: `alt=media`, `Range: bytes=a-b` answered 206 with `Content-Range`, 416 when
//!   unsatisfiable;
//! - a shared drive: its items are 404 to requests without `supportsAllDrives=true` and left
//!   out of lists without `includeItemsFromAllDrives=true`; service accounts have no quota
//!   outside it (403 `storageQuotaExceeded`);
//! - `appProperties` entries are limited to 124 bytes (key plus value), as in Drive;
//! - deleting a folder deletes what is inside;
//! - OAuth: the refresh-token grant checks client id, secret and refresh token; the JWT-bearer
//!   grant verifies the RS256 signature against the service account's public key and checks
//!   `iss`, `aud`, `scope` and `exp`; every API request needs a live bearer token (401).
//!
//! Faults are injected per route: a status (429, 500, 503), a rate-limit 403, a permission
//! 403, a connection dropped mid-body (a resumable chunk keeps an unaligned part of what
//! arrived, as a real server may), a connection dropped after the request took effect, all
//! tokens expired, and a resumable session forgotten.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

mod oauth;
mod query;
mod upload;
mod wire;

use query::{eval, parse_query};
use upload::{chunk, keep_partial_chunk, multipart, resumable_start};
use wire::{bad, drive_error, not_found, parse_form, read_head, write_resp, Req, Resp};

pub const CLIENT_ID: &str = "fake-client-id.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-cl1ent-s3cret-do-not-store";
pub const REFRESH_TOKEN: &str = "1//refresh-t0ken-do-not-store";
/// Every access token the fake issues starts with this.
pub const ACCESS_PREFIX: &str = "ya29.FAKE-access-t0ken-";
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const QUANTUM: usize = 256 << 10;

/// Which kind of request a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Token,
    List,
    Create,
    Get,
    Download,
    Delete,
    /// `files.copy`.
    Copy,
    Multipart,
    ResumableStart,
    Chunk,
    ChunkStatus,
    /// Any request to the Drive API (not the token endpoint).
    AnyApi,
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Reply with this status (429, 500, 503…) and a Drive error body.
    Status(u16),
    /// 403 `userRateLimitExceeded` (retryable).
    RateLimit403,
    /// 403 `insufficientPermissions` (not retryable).
    Forbidden403,
    /// Read part of the body, then close the connection without a reply.
    Drop,
    /// Process the request fully, then close the connection without a reply.
    DropAfterCommit,
    /// Expire every access token first (the request then gets a 401).
    ExpireTokens,
    /// Forget the resumable session first (the request then gets a 404).
    SessionGone,
}

/// A file or folder held by the fake.
#[derive(Clone, Debug)]
pub struct Stored {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub parents: Vec<String>,
    pub data: Vec<u8>,
    pub created: String,
    pub app_properties: BTreeMap<String, String>,
    /// The shared drive holding it.
    pub drive: Option<String>,
}

/// A request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub target: String,
    pub route: Option<Route>,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Principal {
    User,
    Service,
}

struct UploadSession {
    meta: Value,
    total: u64,
    received: Vec<u8>,
    principal: Principal,
    supports_all: bool,
    fields: Option<String>,
    done: Option<String>,
}

struct State {
    base: String,
    files: BTreeMap<String, Stored>,
    sessions: HashMap<String, UploadSession>,
    tokens: HashMap<String, (Principal, bool)>,
    faults: Vec<(Route, Fault)>,
    service_accounts: HashMap<String, Vec<u8>>,
    log: Vec<Logged>,
    chunks: Vec<(u64, u64, u64)>,
    grants: u64,
    page_cap: usize,
    last_ms: i64,
    seed: u64,
    root: String,
    shared: String,
}

/// The fake server. Dropping it leaves the listener thread running until the test process
/// ends (harmless: it only ever touches its own state).
pub struct FakeDrive {
    /// `http://127.0.0.1:PORT`: the `api_url`.
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl FakeDrive {
    pub fn start() -> FakeDrive {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut st = State {
            base: base.clone(),
            files: BTreeMap::new(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            faults: Vec::new(),
            service_accounts: HashMap::new(),
            log: Vec::new(),
            chunks: Vec::new(),
            grants: 0,
            page_cap: 100,
            last_ms: 0,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1,
            root: String::new(),
            shared: String::new(),
        };
        st.root = format!("0AmyDrive{}", st.random_id());
        st.shared = format!("0AshDrive{}", st.random_id());
        for (id, name, drive) in [
            (st.root.clone(), "My Drive", None),
            (st.shared.clone(), "Team Drive", Some(st.shared.clone())),
        ] {
            let created = st.now();
            st.files.insert(
                id.clone(),
                Stored {
                    id,
                    name: name.into(),
                    mime: FOLDER_MIME.into(),
                    parents: Vec::new(),
                    data: Vec::new(),
                    created,
                    app_properties: BTreeMap::new(),
                    drive,
                },
            );
        }
        let state = Arc::new(Mutex::new(st));
        let s2 = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = s2.clone();
                std::thread::spawn(move || serve(conn, st));
            }
        });
        FakeDrive { base, state }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// The next `times` requests of `route` meet `fault`.
    pub fn inject(&self, route: Route, fault: Fault, times: usize) {
        let mut st = self.st();
        for _ in 0..times {
            st.faults.push((route, fault));
        }
    }

    pub fn pending_faults(&self) -> usize {
        self.st().faults.len()
    }

    pub fn set_page_cap(&self, n: usize) {
        self.st().page_cap = n.max(1);
    }

    pub fn files(&self) -> Vec<Stored> {
        self.st().files.values().cloned().collect()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.st().log.clone()
    }

    /// Resumable chunks received: (start, length, total).
    pub fn chunks(&self) -> Vec<(u64, u64, u64)> {
        self.st().chunks.clone()
    }

    /// Token grants made.
    pub fn grants(&self) -> u64 {
        self.st().grants
    }

    /// Every access token issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.st().tokens.keys().cloned().collect()
    }

    /// A new folder at the top of the shared drive; returns its id.
    pub fn shared_folder(&self, name: &str) -> String {
        let mut st = self.st();
        let id = st.random_id();
        let created = st.now();
        let shared = st.shared.clone();
        st.files.insert(
            id.clone(),
            Stored {
                id: id.clone(),
                name: name.into(),
                mime: FOLDER_MIME.into(),
                parents: vec![shared.clone()],
                data: Vec::new(),
                created,
                app_properties: BTreeMap::new(),
                drive: Some(shared),
            },
        );
        id
    }

    /// Accepts JWT assertions from `email` signed by the key whose RSAPublicKey DER is given.
    pub fn add_service_account(&self, email: &str, public_key_der: &[u8]) {
        self.st()
            .service_accounts
            .insert(email.into(), public_key_der.to_vec());
    }

    /// The slash-joined names from the top of its drive (`My Drive/Lab/…`).
    pub fn path_of(&self, id: &str) -> String {
        let st = self.st();
        let mut names = Vec::new();
        let mut cur = st.files.get(id);
        while let Some(f) = cur {
            names.push(f.name.clone());
            cur = f.parents.first().and_then(|p| st.files.get(p));
        }
        names.reverse();
        names.join("/")
    }

    /// The files (not folders) whose path is `path`.
    pub fn files_at(&self, path: &str) -> Vec<Stored> {
        self.files()
            .into_iter()
            .filter(|f| f.mime != FOLDER_MIME && self.path_of(&f.id) == path)
            .collect()
    }

    /// An `authorized_user` credentials file's content for this fake.
    pub fn user_credentials(refresh_token: &str) -> String {
        json!({
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
        })
        .to_string()
    }
}

impl State {
    fn random_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut s = String::from("1");
        for _ in 0..32 {
            // xorshift64
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            s.push(ALPHABET[(self.seed % 64) as usize] as char);
        }
        s
    }

    /// Strictly increasing wall-clock milliseconds, as RFC 3339.
    fn now(&mut self) -> String {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        self.last_ms = ms.max(self.last_ms + 1);
        rfc3339(self.last_ms)
    }

    fn take_fault(&mut self, route: Route) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|(r, _)| *r == route || (*r == Route::AnyApi && route != Route::Token))?;
        Some(self.faults.remove(i).1)
    }
}

fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

fn classify(method: &str, path: &str, query: &HashMap<String, String>) -> Option<Route> {
    let upload = query.get("uploadType").map(String::as_str);
    match (method, path) {
        ("POST", "/token") => Some(Route::Token),
        ("GET", "/drive/v3/files") => Some(Route::List),
        ("POST", "/drive/v3/files") => Some(Route::Create),
        ("POST", p) if p.starts_with("/drive/v3/files/") && p.ends_with("/copy") => {
            Some(Route::Copy)
        }
        ("POST", "/upload/drive/v3/files") if upload == Some("multipart") => Some(Route::Multipart),
        ("POST", "/upload/drive/v3/files") if upload == Some("resumable") => {
            Some(Route::ResumableStart)
        }
        ("PUT", "/upload/drive/v3/files") if query.contains_key("upload_id") => Some(Route::Chunk),
        ("GET", p) if p.starts_with("/drive/v3/files/") => {
            if query.get("alt").map(String::as_str) == Some("media") {
                Some(Route::Download)
            } else {
                Some(Route::Get)
            }
        }
        ("DELETE", p) if p.starts_with("/drive/v3/files/") => Some(Route::Delete),
        _ => None,
    }
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut stream = stream;
    while let Some((method, target, headers)) = read_head(&mut reader) {
        let (path, q) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let query = parse_form(q);
        let mut req = Req {
            method,
            path: path.to_string(),
            query,
            headers,
            body: Vec::new(),
        };
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let mut route = classify(&req.method, &req.path, &req.query);
        if route == Some(Route::Chunk)
            && req
                .header("content-range")
                .is_some_and(|r| r.starts_with("bytes */"))
        {
            route = Some(Route::ChunkStatus);
        }
        let fault = {
            let mut st = state.lock().expect("state");
            let f = route.and_then(|r| st.take_fault(r));
            st.log.push(Logged {
                method: req.method.clone(),
                target: target.clone(),
                route,
                authorization: req.header("authorization").map(str::to_string),
                status: 0,
            });
            f
        };
        if chunked {
            let _ = write_resp(&mut stream, &bad("chunked request bodies are not expected"));
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if fault == Some(Fault::Drop) {
            let mut part = vec![0u8; len / 2];
            let _ = reader.read_exact(&mut part);
            if route == Some(Route::Chunk) {
                keep_partial_chunk(&state, &req, &part);
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        req.body = body;
        let resp = {
            let mut st = state.lock().expect("state");
            let resp = handle(&mut st, &req, route, fault);
            if let Some(l) = st.log.iter_mut().rev().find(|l| l.target == target) {
                l.status = resp.status;
            }
            resp
        };
        if fault == Some(Fault::DropAfterCommit) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if write_resp(&mut stream, &resp).is_err() {
            return;
        }
    }
}

// ---- the API ----

fn handle(st: &mut State, req: &Req, route: Option<Route>, fault: Option<Fault>) -> Resp {
    match fault {
        Some(Fault::Status(code)) => {
            let reason = if code == 429 {
                "rateLimitExceeded"
            } else {
                "backendError"
            };
            return drive_error(code, reason, "Injected failure.");
        }
        Some(Fault::RateLimit403) => {
            return drive_error(403, "userRateLimitExceeded", "User rate limit exceeded.")
        }
        Some(Fault::Forbidden403) => {
            return drive_error(
                403,
                "insufficientPermissions",
                "The user does not have sufficient permissions for this file.",
            )
        }
        Some(Fault::ExpireTokens) => {
            for t in st.tokens.values_mut() {
                t.1 = true;
            }
        }
        Some(Fault::SessionGone) => {
            if let Some(id) = req.query.get("upload_id") {
                st.sessions.remove(id);
            }
        }
        _ => {}
    }
    let Some(route) = route else {
        return drive_error(404, "notFound", &format!("No such endpoint: {}", req.path));
    };
    if route == Route::Token {
        return oauth::token(st, req);
    }
    let principal = match req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| st.tokens.get(t))
    {
        Some((p, false)) => p.clone(),
        _ => {
            return Resp::json(
                401,
                json!({"error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials.",
                    "errors": [{"domain": "global", "reason": "authError",
                                "message": "Invalid Credentials", "location": "Authorization"}],
                    "status": "UNAUTHENTICATED",
                }}),
            )
        }
    };
    // Parameters the backend never needs are refused, so a change is noticed.
    let known = [
        "q",
        "fields",
        "pageSize",
        "pageToken",
        "orderBy",
        "supportsAllDrives",
        "includeItemsFromAllDrives",
        "uploadType",
        "upload_id",
        "alt",
    ];
    if let Some(k) = req.query.keys().find(|k| !known.contains(&k.as_str())) {
        return bad(&format!("unexpected parameter {k}"));
    }
    match route {
        Route::List => list(st, req),
        Route::Create => {
            let Ok(meta) = serde_json::from_slice::<Value>(&req.body) else {
                return bad("metadata is not JSON");
            };
            match create(
                st,
                req,
                &principal,
                &meta,
                None,
                req.flag("supportsAllDrives"),
            ) {
                Ok(id) => file_reply(st, &id, req.query.get("fields")),
                Err(r) => r,
            }
        }
        Route::Copy => copy(st, req, &principal),
        Route::Multipart => multipart(st, req, &principal),
        Route::ResumableStart => resumable_start(st, req, &principal),
        Route::Chunk | Route::ChunkStatus => chunk(st, req),
        Route::Get => {
            let id = &req.path["/drive/v3/files/".len()..];
            match visible(st, id, req) {
                Some(_) => file_reply(st, id, req.query.get("fields")),
                None => not_found(id),
            }
        }
        Route::Download => download(st, req),
        Route::Delete => {
            let id = req.path["/drive/v3/files/".len()..].to_string();
            if visible(st, &id, req).is_none() || id == st.root || id == st.shared {
                return not_found(&id);
            }
            delete_tree(st, &id);
            Resp::empty(204)
        }
        Route::Token | Route::AnyApi => bad("unreachable"),
    }
}

/// The item, if it exists and this request may see it.
fn visible<'a>(st: &'a State, id: &str, req: &Req) -> Option<&'a Stored> {
    let id = if id == "root" { st.root.as_str() } else { id };
    st.files
        .get(id)
        .filter(|f| f.drive.is_none() || req.flag("supportsAllDrives"))
}

fn file_json(st: &State, f: &Stored) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), json!("drive#file"));
    m.insert("id".into(), json!(f.id));
    m.insert("name".into(), json!(f.name));
    m.insert("mimeType".into(), json!(f.mime));
    if f.mime != FOLDER_MIME {
        m.insert("size".into(), json!(f.data.len().to_string()));
    }
    m.insert("createdTime".into(), json!(f.created));
    m.insert("parents".into(), json!(f.parents));
    m.insert("trashed".into(), json!(false));
    if !f.app_properties.is_empty() {
        m.insert("appProperties".into(), json!(f.app_properties));
    }
    if let Some(d) = &f.drive {
        m.insert("driveId".into(), json!(d));
    }
    let _ = st;
    m
}

const FILE_FIELDS: &[&str] = &[
    "kind",
    "id",
    "name",
    "mimeType",
    "size",
    "createdTime",
    "parents",
    "trashed",
    "appProperties",
    "driveId",
];

/// Keeps `fields` (comma-separated) of `m`; an unknown field is an error.
fn select(m: Map<String, Value>, fields: &str) -> Result<Value, Resp> {
    let mut out = Map::new();
    for f in fields.split(',').map(str::trim) {
        if !FILE_FIELDS.contains(&f) {
            return Err(drive_error(
                400,
                "invalidParameter",
                &format!("Invalid field selection {f}"),
            ));
        }
        if let Some(v) = m.get(f) {
            out.insert(f.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

fn file_reply(st: &State, id: &str, fields: Option<&String>) -> Resp {
    let Some(f) = st.files.get(id) else {
        return not_found(id);
    };
    let fields = fields
        .map(String::as_str)
        .unwrap_or("kind,id,name,mimeType");
    match select(file_json(st, f), fields) {
        Ok(v) => Resp::json(200, v),
        Err(r) => r,
    }
}

/// Splits `nextPageToken,files(a,b)` into top-level fields and the file sub-selection.
fn list_fields(fields: &str) -> Result<(Vec<String>, String), Resp> {
    let mut top = Vec::new();
    let mut sub = String::from("kind,id,name,mimeType");
    let mut depth = 0;
    let mut cur = String::new();
    let mut items = Vec::new();
    for c in fields.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    for it in items {
        let it = it.trim();
        if let Some(inner) = it.strip_prefix("files(").and_then(|s| s.strip_suffix(')')) {
            if let Some(f) = inner.split(',').find(|f| !FILE_FIELDS.contains(&f.trim())) {
                return Err(drive_error(
                    400,
                    "invalidParameter",
                    &format!("Invalid field selection {f}"),
                ));
            }
            sub = inner.to_string();
            top.push("files".to_string());
        } else if ["nextPageToken", "kind", "incompleteSearch", "files"].contains(&it) {
            if it == "files" {
                sub = FILE_FIELDS.join(",");
            }
            top.push(it.to_string());
        } else {
            return Err(drive_error(
                400,
                "invalidParameter",
                &format!("Invalid field selection {it}"),
            ));
        }
    }
    Ok((top, sub))
}

fn list(st: &mut State, req: &Req) -> Resp {
    let Some(q) = req.query.get("q") else {
        return bad("the backend always sends q");
    };
    let expr = match parse_query(q) {
        Ok(e) => e,
        Err(why) => return bad(&format!("Invalid Value: q: {why}")),
    };
    let (top, sub) = match list_fields(
        req.query
            .get("fields")
            .map(String::as_str)
            .unwrap_or("kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"),
    ) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let page_size: usize = match req.query.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => return bad("Invalid Value: pageSize"),
    };
    // With `orderBy=createdTime` pages follow a cursor (the last item's createdTime and id), so
    // items created meanwhile (always newer) come after it and none is skipped. Unordered
    // listings page by offset over an arbitrary order: a change between pages may skip an
    // item, a pessimistic reading of Drive's unspecified behaviour.
    let ordered = match req.query.get("orderBy").map(String::as_str) {
        None => false,
        Some("createdTime") => true,
        Some(o) => {
            return bad(&format!(
                "Invalid Value: orderBy {o} (the backend sends createdTime)"
            ))
        }
    };
    enum Cursor {
        Offset(usize),
        After(String, String),
    }
    let cursor = match req.query.get("pageToken") {
        None if ordered => Cursor::After(String::new(), String::new()),
        None => Cursor::Offset(0),
        Some(t) => match (ordered, t.split_once('|')) {
            (true, Some((c, id))) if c.starts_with('c') => {
                Cursor::After(c[1..].to_string(), id.to_string())
            }
            (false, None) => match t.strip_prefix('p').and_then(|n| n.parse().ok()) {
                Some(n) => Cursor::Offset(n),
                None => return bad("Invalid Value: pageToken"),
            },
            _ => return bad("Invalid Value: pageToken"),
        },
    };
    if req.flag("includeItemsFromAllDrives") && !req.flag("supportsAllDrives") {
        return drive_error(
            403,
            "teamDrivesParameterNotSupported",
            "includeItemsFromAllDrives requires supportsAllDrives",
        );
    }
    let shared_ok = req.flag("includeItemsFromAllDrives");
    let root = st.root.clone();
    let mut matched: Vec<&Stored> = st
        .files
        .values()
        .filter(|f| f.id != st.root && f.id != st.shared)
        .filter(|f| f.drive.is_none() || shared_ok)
        .filter(|f| eval(&expr, f, &root))
        .collect();
    if ordered {
        matched.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    }
    let skip = match &cursor {
        Cursor::Offset(n) => *n,
        Cursor::After(c, id) => matched
            .iter()
            .take_while(|f| (&f.created, &f.id) <= (c, id))
            .count(),
    };
    let n = page_size.min(st.page_cap);
    let taken: Vec<&Stored> = matched.iter().skip(skip).take(n).copied().collect();
    let mut page = Vec::new();
    for f in &taken {
        match select(file_json(st, f), &sub) {
            Ok(v) => page.push(v),
            Err(r) => return r,
        }
    }
    let next = match (skip + n < matched.len(), ordered, taken.last()) {
        (false, _, _) | (true, true, None) => None,
        (true, true, Some(last)) => Some(format!("c{}|{}", last.created, last.id)),
        (true, false, _) => Some(format!("p{}", skip + n)),
    };
    let mut out = Map::new();
    if top.iter().any(|t| t == "files") {
        out.insert("files".into(), Value::Array(page));
    }
    if top.iter().any(|t| t == "kind") {
        out.insert("kind".into(), json!("drive#fileList"));
    }
    if top.iter().any(|t| t == "incompleteSearch") {
        out.insert("incompleteSearch".into(), json!(false));
    }
    if let Some(next) = next.filter(|_| top.iter().any(|t| t == "nextPageToken")) {
        out.insert("nextPageToken".into(), json!(next));
    }
    Resp::json(200, Value::Object(out))
}

/// Creates a file (data `Some`) or folder; returns its id.
fn create(
    st: &mut State,
    _req: &Req,
    principal: &Principal,
    meta: &Value,
    data: Option<Vec<u8>>,
    supports_all: bool,
) -> Result<String, Resp> {
    let name = meta["name"]
        .as_str()
        .ok_or_else(|| bad("name is required"))?;
    let parents = meta["parents"]
        .as_array()
        .ok_or_else(|| bad("parents is required"))?;
    if parents.len() != 1 {
        return Err(bad("exactly one parent is allowed"));
    }
    let parent = parents[0]
        .as_str()
        .ok_or_else(|| bad("parent must be a string"))?;
    let parent = if parent == "root" {
        st.root.clone()
    } else {
        parent.to_string()
    };
    let p = st
        .files
        .get(&parent)
        .filter(|f| f.drive.is_none() || supports_all)
        .ok_or_else(|| not_found(&parent))?;
    if p.mime != FOLDER_MIME {
        return Err(bad("the parent is not a folder"));
    }
    let drive = p.drive.clone();
    let mime = meta["mimeType"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string();
    if (mime == FOLDER_MIME) != data.is_none() {
        return Err(bad("folders carry no content; files must"));
    }
    let mut props = BTreeMap::new();
    if let Some(ap) = meta.get("appProperties") {
        let ap = ap
            .as_object()
            .ok_or_else(|| bad("appProperties must be an object"))?;
        for (k, v) in ap {
            let v = v
                .as_str()
                .ok_or_else(|| bad("appProperties values are strings"))?;
            if k.len() + v.len() > 124 {
                return Err(bad("appProperties entry over 124 bytes"));
            }
            props.insert(k.clone(), v.to_string());
        }
    }
    if *principal == Principal::Service && data.is_some() && drive.is_none() {
        return Err(drive_error(
            403,
            "storageQuotaExceeded",
            "Service Accounts do not have storage quota. Leverage shared drives \
             (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), \
             or use OAuth delegation instead.",
        ));
    }
    let id = st.random_id();
    let created = st.now();
    st.files.insert(
        id.clone(),
        Stored {
            id: id.clone(),
            name: name.to_string(),
            mime,
            parents: vec![parent],
            data: data.unwrap_or_default(),
            created,
            app_properties: props,
            drive,
        },
    );
    Ok(id)
}

/// `files.copy`: a new file with the source's content; the body's `name`, `parents` and
/// `appProperties` replace the source's (its name and properties are kept when absent; the
/// parent defaults to the source's). Folders cannot be copied.
fn copy(st: &mut State, req: &Req, principal: &Principal) -> Resp {
    let id = req.path["/drive/v3/files/".len()..]
        .trim_end_matches("/copy")
        .to_string();
    let Some(src) = visible(st, &id, req).cloned() else {
        return not_found(&id);
    };
    if src.mime == FOLDER_MIME {
        return drive_error(403, "cannotCopyFile", "folders cannot be copied");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return bad("metadata is not JSON");
    };
    let mut meta = serde_json::json!({
        "name": src.name,
        "parents": src.parents,
        "mimeType": src.mime,
        "appProperties": src.app_properties,
    });
    for k in ["name", "parents", "appProperties"] {
        if let Some(v) = body.get(k) {
            meta[k] = v.clone();
        }
    }
    match create(
        st,
        req,
        principal,
        &meta,
        Some(src.data.clone()),
        req.flag("supportsAllDrives"),
    ) {
        Ok(id) => file_reply(st, &id, req.query.get("fields")),
        Err(r) => r,
    }
}

fn download(st: &State, req: &Req) -> Resp {
    let id = &req.path["/drive/v3/files/".len()..];
    let Some(f) = visible(st, id, req) else {
        return not_found(id);
    };
    if f.mime == FOLDER_MIME {
        return drive_error(
            403,
            "fileNotDownloadable",
            "Only files with binary content can be downloaded.",
        );
    }
    let n = f.data.len() as u64;
    let Some(range) = req.header("range") else {
        return Resp {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: f.data.clone(),
        };
    };
    let parsed = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let a: u64 = a.parse().ok()?;
            let b: u64 = if b.is_empty() {
                n.checked_sub(1)?
            } else {
                b.parse::<u64>().ok()?.min(n.checked_sub(1)?)
            };
            (a <= b).then_some((a, b))
        });
    match parsed {
        Some((a, b)) => Resp {
            status: 206,
            headers: vec![("Content-Range".into(), format!("bytes {a}-{b}/{n}"))],
            body: f.data[a as usize..=b as usize].to_vec(),
        },
        None => Resp::empty(416).header("Content-Range", format!("bytes */{n}")),
    }
}

fn delete_tree(st: &mut State, id: &str) {
    let children: Vec<String> = st
        .files
        .values()
        .filter(|f| f.parents.iter().any(|p| p == id))
        .map(|f| f.id.clone())
        .collect();
    for c in children {
        delete_tree(st, &c);
    }
    st.files.remove(id);
}
