//! A remote in Google Drive (API v3), hand-written over `reqwest` (no generated SDK).
//!
//! **Where.** `gdrive://Team/store` is a folder tree the store creates under the root of the
//! user's My Drive (`Team`, then `store` inside it); `gdrive://id:FOLDER_ID` is an existing
//! folder, given by id (how a shared drive or a folder shared with the user is named), and
//! `gdrive://id:FOLDER_ID/sub/dir` a tree created inside it. Components are taken literally.
//!
//! **Keys.** A key `packs/ab/<id>.pack` is a file named `<id>.pack` in folder `ab` in folder
//! `packs` under the store's folder: folders mirror the key's prefixes and are created on first
//! use. Their ids are cached in memory. Each file carries `appProperties` `blake3` (the hex
//! BLAKE3 of its bytes, checked on every whole-object read) and `store_upload` (a random nonce
//! naming the `put_new` call that uploaded it).
//!
//! **Create-if-absent.** Drive allows several files of one name in a folder, so `put_new`
//! uploads, then lists the files of that name: the oldest (`createdTime`, then `id`) is the
//! value of the key for every reader and writer; an uploader whose file is not the oldest
//! deletes its own file and reports that it did not create the key. Folders raced into
//! existence twice follow the same rule (new files go into the oldest; a creator whose folder
//! is younger deletes it once it has checked that it is empty), and lookups search every
//! folder of the name, so a duplicate that survives hides nothing. A reader never sees a
//! half-written value: Drive creates the file only when its upload completes.
//!
//! **Uploads.** Below [`GdriveOptions::multipart_limit`] one `uploadType=multipart` request;
//! above, a resumable session (`uploadType=resumable`) sent in chunks that are multiples of
//! 256 KiB. After a dropped connection or a 5xx the session is asked how much it holds
//! (`Content-Range: bytes */N`, answered by a 308 and its `Range`) and the upload continues
//! from there; a session the server forgot (404, 410) is started again.
//!
//! **Retries.** 429, 5xx and 403 `rateLimitExceeded`/`userRateLimitExceeded` are retried with
//! full-jitter exponential backoff, bounded in attempts and time; transport errors too. Other
//! 4xx fail at once with the key, the HTTP status and Drive's reason. A 401 renews the access
//! token once (see the `auth` module for credentials); no error ever carries a token.

mod auth;
mod http;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use serde::Deserialize;

use http::describe;
use upload::nonce;

use super::{remote_error, Backend, Listed, RemoteSpec};
use crate::error::{Error, Result};

pub use auth::CREDENTIAL_ENV;

/// The Drive API's base URL (option `api_url` replaces it).
pub const DEFAULT_API_URL: &str = "https://www.googleapis.com";
/// Google's OAuth token endpoint (option `token_url` replaces it).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const FILE_FIELDS: &str = "id,name,mimeType,size,createdTime,parents,appProperties";
const LIST_FIELDS: &str =
    "nextPageToken,files(id,name,mimeType,size,createdTime,parents,appProperties)";
/// The `appProperties` key holding the hex BLAKE3 of a file's bytes.
pub const HASH_PROPERTY: &str = "blake3";
/// The `appProperties` key naming the upload that created a file.
pub const NONCE_PROPERTY: &str = "store_upload";
/// Resumable chunks are multiples of this (Drive's rule).
pub const CHUNK_QUANTUM: usize = 256 << 10;
/// Folders searched by one `files.list` (`'a' in parents or 'b' in parents …`).
const PARENTS_PER_QUERY: usize = 40;
/// The pseudo-key errors about the token endpoint name.
const TOKEN_KEY: &str = "<oauth token>";
/// The pseudo-key errors about the store's own folder name.
const ROOT_KEY: &str = "<store folder>";

/// Tuning of the Drive backend; [`Default`] is what `store` uses.
#[derive(Clone, Debug)]
pub struct GdriveOptions {
    /// Values smaller than this go up in one multipart request; larger ones resumably.
    pub multipart_limit: usize,
    /// Bytes per resumable chunk (rounded down to a multiple of 256 KiB, at least 256 KiB).
    pub chunk_size: usize,
    /// Attempts per request (or per resumable upload's failures) before giving up.
    pub max_attempts: u32,
    /// First backoff ceiling; it doubles per attempt (full jitter: sleep uniform in [0, ceiling]).
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_cap: Duration,
    /// No retry starts after this long.
    pub retry_budget: Duration,
    /// Where resumable sessions are remembered (one small file per upload in progress, the
    /// session's URL and size), so that an upload killed with its process continues from its
    /// session when the same value is uploaded again, instead of from zero. `None`: only
    /// within one call.
    pub sessions_dir: Option<std::path::PathBuf>,
}

impl Default for GdriveOptions {
    fn default() -> GdriveOptions {
        GdriveOptions {
            multipart_limit: 5 << 20,
            chunk_size: 8 << 20,
            max_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            sessions_dir: None,
            retry_budget: Duration::from_secs(300),
        }
    }
}

/// Where the store's folder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Root {
    /// Folders under the root of My Drive, created as needed.
    MyDrive(Vec<String>),
    /// An existing folder by id, and folders under it created as needed.
    Folder(String, Vec<String>),
}

/// Parses `gdrive://path` or `gdrive://id:FOLDER/path`.
pub(crate) fn parse_root(url: &str) -> Result<Root> {
    let bad = |why: &str| Error::Invalid(format!("{url}: {why}"));
    let rest = url
        .strip_prefix("gdrive://")
        .ok_or_else(|| bad("not a gdrive:// URL"))?
        .trim_end_matches('/');
    let (id, path) = match rest.strip_prefix("id:") {
        Some(r) => {
            let (id, p) = r.split_once('/').unwrap_or((r, ""));
            let ok = !id.is_empty()
                && id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
            if !ok {
                return Err(bad("a folder id is letters, digits, '-' and '_'"));
            }
            (Some(id.to_string()), p)
        }
        None => (None, rest),
    };
    let comps: Vec<String> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').map(str::to_string).collect()
    };
    if comps.iter().any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(bad("empty, '.' or '..' folder name"));
    }
    match id {
        Some(id) => Ok(Root::Folder(id, comps)),
        None if comps.is_empty() => Err(bad(
            "name a folder (gdrive://My Store) or a folder id (gdrive://id:FOLDER_ID)",
        )),
        None => Ok(Root::MyDrive(comps)),
    }
}

/// A file or folder as `files.list` describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    name: String,
    mime_type: String,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    app_properties: HashMap<String, String>,
}

impl Item {
    fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }

    fn size(&self) -> u64 {
        self.size
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn property(&self, k: &str) -> Option<&str> {
        self.app_properties.get(k).map(String::as_str)
    }
}

/// Oldest first: `createdTime` (RFC 3339 in UTC with milliseconds, as Drive writes it, so
/// the strings order as the instants), then id. The first is the winner.
fn oldest_first(items: &mut [Item]) {
    items.sort_by(|a, b| {
        (a.created_time.as_str(), a.id.as_str()).cmp(&(b.created_time.as_str(), b.id.as_str()))
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    files: Vec<Item>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A Google Drive remote.
pub struct GdriveBackend {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    api: String,
    url: String,
    root: Root,
    creds: auth::Credentials,
    token_url: String,
    token: Mutex<Option<auth::AccessToken>>,
    /// Folder ids by key prefix (`""` the store's folder, `packs/ab`…), oldest first.
    folders: Mutex<HashMap<String, Vec<String>>>,
    /// Serializes folder lookups and creation within this process.
    resolving: Mutex<()>,
    /// The winning file of each key seen (values are immutable, winners stable).
    files: Mutex<HashMap<String, Item>>,
    requests: AtomicU64,
    opts: GdriveOptions,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GdriveBackend {
    /// Opens the remote `spec` names with default tuning (reads the credentials file; no
    /// request is made).
    pub fn open(spec: &RemoteSpec) -> Result<GdriveBackend> {
        GdriveBackend::open_with(spec, GdriveOptions::default())
    }

    /// Opens with explicit tuning (tests use small chunks and short backoffs).
    pub fn open_with(spec: &RemoteSpec, opts: GdriveOptions) -> Result<GdriveBackend> {
        let root = parse_root(&spec.url)?;
        let api = spec
            .options
            .get("api_url")
            .map(String::as_str)
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
            .to_string();
        Url::parse(&api).map_err(|e| Error::Invalid(format!("api_url {api:?}: {e}")))?;
        let creds = auth::Credentials::locate(spec.options.get("credentials_file").map(|s| &**s))?;
        let token_url = creds.token_url(spec.options.get("token_url").map(|s| &**s));
        Url::parse(&token_url)
            .map_err(|e| Error::Invalid(format!("token_url {token_url:?}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("<tokio runtime>", e))?;
        let client = {
            let _guard = rt.enter();
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(120))
                .user_agent(concat!("store/", env!("CARGO_PKG_VERSION")))
                // Drive never redirects; a 308 is "resume incomplete", not a redirect.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| remote_error(&spec.url, "", describe(e)))?
        };
        let mut opts = opts;
        opts.chunk_size = (opts.chunk_size / CHUNK_QUANTUM).max(1) * CHUNK_QUANTUM;
        opts.max_attempts = opts.max_attempts.max(1);
        Ok(GdriveBackend {
            rt,
            client,
            api,
            url: spec.url.clone(),
            root,
            creds,
            token_url,
            token: Mutex::new(None),
            folders: Mutex::new(HashMap::new()),
            resolving: Mutex::new(()),
            files: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            opts,
        })
    }

    /// Deletes the store's folder and everything in it. Refused for a bare `id:` folder (the
    /// store did not create it). For tests that clean up after themselves.
    pub fn destroy(&self) -> Result<()> {
        if matches!(&self.root, Root::Folder(_, c) if c.is_empty()) {
            return Err(Error::Invalid(format!(
                "{}: not deleting a folder the store did not create",
                self.url
            )));
        }
        if let Some(ids) = self.folders("", false)? {
            for id in ids {
                self.delete_file(ROOT_KEY, &id)?;
            }
        }
        lock(&self.folders).clear();
        lock(&self.files).clear();
        Ok(())
    }

    fn err(&self, key: &str, detail: impl std::fmt::Display) -> Error {
        remote_error(&self.url, key, detail)
    }

    fn endpoint(&self, path: &str, query: &[(&str, &str)]) -> Result<Url> {
        let mut u = Url::parse(&format!("{}{path}", self.api))
            .map_err(|e| Error::Invalid(format!("api_url {}: {e}", self.api)))?;
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("supportsAllDrives", "true");
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    fn file_endpoint(&self, id: &str, query: &[(&str, &str)]) -> Result<Url> {
        let mut u = self.endpoint("/drive/v3/files", query)?;
        u.path_segments_mut()
            .map_err(|_| Error::Invalid(format!("api_url {}: cannot be a base", self.api)))?
            .push(id);
        Ok(u)
    }

    // ---- folders and lookups ----

    /// Every item matching `q`, all pages.
    fn query(&self, key: &str, q: &str) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            // Oldest first, so that a page boundary never hides an item older than one already
            // seen (new items are always younger), and the winner is on the first page.
            let mut pairs = vec![
                ("q", q),
                ("fields", LIST_FIELDS),
                ("orderBy", "createdTime"),
                ("pageSize", "1000"),
                ("includeItemsFromAllDrives", "true"),
            ];
            if let Some(p) = &page {
                pairs.push(("pageToken", p));
            }
            let url = self.endpoint("/drive/v3/files", &pairs)?;
            let r = self.call(key, &|| self.client.get(url.clone()))?;
            let r = self.expect(key, r, &[200])?;
            let p: Page = serde_json::from_slice(&r.body)
                .map_err(|e| self.err(key, format!("unreadable file list: {e}")))?;
            out.extend(p.files);
            match p.next_page_token {
                Some(t) if !t.is_empty() => page = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// The folders named `name` in any of `parents`, oldest first; created in the oldest
    /// parent when absent and `create`.
    fn child_folders(
        &self,
        parents: &[String],
        name: &str,
        create: bool,
        key: &str,
    ) -> Result<Option<Vec<String>>> {
        let q = format!(
            "name = {} and mimeType = '{FOLDER_MIME}' and trashed = false and {}",
            quote(name),
            in_parents(parents)
        );
        let mut found = self.query(key, &q)?;
        if found.is_empty() {
            if !create {
                return Ok(None);
            }
            let created = self.create_folder(&parents[0], name, key)?;
            found = self.query(key, &q)?;
            if !found.iter().any(|f| f.id == created.id) {
                found.push(created.clone());
            }
            oldest_first(&mut found);
            // Another client created it too, first: everyone puts into the oldest, so ours
            // stays empty and is removed, after checking that it is (deleting a folder deletes
            // its content). Should that fail, it stays, harmless: lookups search every folder
            // of the name.
            if found[0].id != created.id {
                let children = format!("{} in parents and trashed = false", quote(&created.id));
                if self.query(key, &children)?.is_empty()
                    && self.delete_file(key, &created.id).is_ok()
                {
                    found.retain(|f| f.id != created.id);
                }
            }
        }
        oldest_first(&mut found);
        Ok(Some(found.into_iter().map(|f| f.id).collect()))
    }

    fn create_folder(&self, parent: &str, name: &str, key: &str) -> Result<Item> {
        let url = self.endpoint("/drive/v3/files", &[("fields", FILE_FIELDS)])?;
        let body = serde_json::json!({
            "name": name,
            "mimeType": FOLDER_MIME,
            "parents": [parent],
        })
        .to_string();
        let r = self.call(key, &|| {
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .body(body.clone())
        })?;
        let r = self.expect(key, r, &[200])?;
        serde_json::from_slice(&r.body)
            .map_err(|e| self.err(key, format!("unreadable folder reply: {e}")))
    }

    /// The folder ids of key prefix `dir` (`""` the store's folder), oldest first, or `None`
    /// when it does not exist and `create` is false.
    fn folders(&self, dir: &str, create: bool) -> Result<Option<Vec<String>>> {
        if let Some(v) = lock(&self.folders).get(dir) {
            return Ok(Some(v.clone()));
        }
        // One resolver per process at a time: threads wanting the same folder wait for the
        // first to find (or create) it instead of asking (or racing) again.
        let _resolving = lock(&self.resolving);
        self.resolve(dir, create)
    }

    fn resolve(&self, dir: &str, create: bool) -> Result<Option<Vec<String>>> {
        if let Some(v) = lock(&self.folders).get(dir) {
            return Ok(Some(v.clone()));
        }
        let ids = if dir.is_empty() {
            let (mut cur, comps) = match &self.root {
                Root::MyDrive(c) => (vec!["root".to_string()], c),
                Root::Folder(id, c) => (vec![id.clone()], c),
            };
            for c in comps {
                match self.child_folders(&cur, c, create, ROOT_KEY)? {
                    Some(v) => cur = v,
                    None => return Ok(None),
                }
            }
            cur
        } else {
            let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
            let Some(p) = self.resolve(parent, create)? else {
                return Ok(None);
            };
            match self.child_folders(&p, name, create, dir)? {
                Some(v) => v,
                None => return Ok(None),
            }
        };
        lock(&self.folders).insert(dir.to_string(), ids.clone());
        Ok(Some(ids))
    }

    /// The (non-folder) files named `name` in `parents`.
    fn files_named(&self, parents: &[String], name: &str, key: &str) -> Result<Vec<Item>> {
        let q = format!(
            "name = {} and mimeType != '{FOLDER_MIME}' and trashed = false and {}",
            quote(name),
            in_parents(parents)
        );
        self.query(key, &q)
    }

    /// The file holding `key`'s value: the oldest of its name.
    fn find(&self, key: &str) -> Result<Option<Item>> {
        if let Some(i) = lock(&self.files).get(key) {
            return Ok(Some(i.clone()));
        }
        let (dir, name) = self.split(key)?;
        let Some(parents) = self.folders(dir, false)? else {
            return Ok(None);
        };
        let mut found = self.files_named(&parents, name, key)?;
        oldest_first(&mut found);
        let winner = found.into_iter().next();
        if let Some(w) = &winner {
            lock(&self.files).insert(key.to_string(), w.clone());
        }
        Ok(winner)
    }

    /// The folders to create `key`'s file in (the oldest first) and its name, or `None` when a
    /// file holds the key already (then remembered). The folders are needed anyway: creating
    /// them first saves a lookup of a missing one.
    fn parents_for_new<'k>(&self, key: &'k str) -> Result<Option<(Vec<String>, &'k str)>> {
        let (dir, name) = self.split(key)?;
        if lock(&self.files).contains_key(key) {
            return Ok(None);
        }
        let parents = self
            .folders(dir, true)?
            .ok_or_else(|| self.err(key, "its folder could not be created"))?;
        let mut existing = self.files_named(&parents, name, key)?;
        if !existing.is_empty() {
            oldest_first(&mut existing);
            lock(&self.files).insert(key.to_string(), existing.swap_remove(0));
            return Ok(None);
        }
        Ok(Some((parents, name)))
    }

    /// After a file for `key` was created (`created` its id when the reply said, `nonce` its
    /// upload's nonce): Drive allows duplicate names, so the oldest file of this name is the
    /// value; ours, if younger, is deleted. True when ours is the value.
    fn settle(
        &self,
        key: &str,
        parents: &[String],
        name: &str,
        created: Option<String>,
        nonce: &str,
    ) -> Result<bool> {
        // Ours is known by the id the request returned or, when a lost reply hid it (the
        // request was then retried, and may have made two files), by the nonce.
        let mine =
            |f: &Item| Some(&f.id) == created.as_ref() || f.property(NONCE_PROPERTY) == Some(nonce);
        let mut found = Vec::new();
        for round in 1..=4 {
            found = self.files_named(parents, name, key)?;
            if found.iter().any(mine) {
                break;
            }
            // Not listed yet (a lagging index): wait a little.
            self.backoff(round, None);
        }
        oldest_first(&mut found);
        let Some(winner) = found.first().cloned() else {
            return Err(self.err(key, "uploaded, but no file of this name is listed"));
        };
        let won = mine(&winner);
        let mut losers: Vec<&str> = found
            .iter()
            .skip(1)
            .filter(|f| mine(f))
            .map(|f| f.id.as_str())
            .collect();
        if let Some(id) = created.as_deref().filter(|id| !won && !losers.contains(id)) {
            losers.push(id);
        }
        for id in losers {
            // Best effort: a leftover younger duplicate is never read.
            let _ = self.delete_file(key, id);
        }
        lock(&self.files).insert(key.to_string(), winner);
        Ok(won)
    }

    fn split<'k>(&self, key: &'k str) -> Result<(&'k str, &'k str)> {
        let bad = key.is_empty()
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..");
        if bad {
            return Err(self.err(key, "invalid key"));
        }
        Ok(key.rsplit_once('/').unwrap_or(("", key)))
    }

    fn delete_file(&self, key: &str, id: &str) -> Result<()> {
        let url = self.file_endpoint(id, &[])?;
        let r = self.call(key, &|| self.client.delete(url.clone()))?;
        // 404: already gone (a retried delete whose first attempt succeeded).
        self.expect(key, r, &[200, 204, 404]).map(|_| ())
    }

    /// Every key under `prefix` with the file holding it (the oldest of its name).
    fn list_items(&self, prefix: &str) -> Result<Vec<(String, Item)>> {
        let dir = prefix.trim_end_matches('/');
        let mut out = Vec::new();
        let Some(ids) = self.folders(dir, false)? else {
            return Ok(out);
        };
        // Breadth first; one query covers up to PARENTS_PER_QUERY folders of a level.
        let mut level: Vec<(String, Vec<String>)> = vec![(dir.to_string(), ids)];
        while !level.is_empty() {
            let mut owner: HashMap<&str, &str> = HashMap::new();
            for (path, ids) in &level {
                for id in ids {
                    owner.insert(id.as_str(), path.as_str());
                }
            }
            let all: Vec<String> = level.iter().flat_map(|(_, ids)| ids.clone()).collect();
            let mut folders: BTreeMap<String, Vec<Item>> = BTreeMap::new();
            let mut files: BTreeMap<String, Vec<Item>> = BTreeMap::new();
            for batch in all.chunks(PARENTS_PER_QUERY) {
                let q = format!("trashed = false and {}", in_parents(batch));
                for item in self.query(prefix, &q)? {
                    // With one folder asked, everything is its child (its id may be an alias
                    // such as `root`, which `parents` does not repeat).
                    let parent = if batch.len() == 1 {
                        owner.get(batch[0].as_str()).copied()
                    } else {
                        item.parents
                            .iter()
                            .find_map(|p| owner.get(p.as_str()).copied())
                    };
                    let Some(parent) = parent else { continue };
                    let path = if parent.is_empty() {
                        item.name.clone()
                    } else {
                        format!("{parent}/{}", item.name)
                    };
                    if item.is_folder() {
                        folders.entry(path).or_default().push(item);
                    } else {
                        files.entry(path).or_default().push(item);
                    }
                }
            }
            for (key, mut items) in files {
                oldest_first(&mut items);
                let w = items.swap_remove(0);
                lock(&self.files).insert(key.clone(), w.clone());
                out.push((key, w));
            }
            level = folders
                .into_iter()
                .map(|(path, mut items)| {
                    oldest_first(&mut items);
                    let ids: Vec<String> = items.into_iter().map(|i| i.id).collect();
                    lock(&self.folders).insert(path.clone(), ids.clone());
                    (path, ids)
                })
                .collect();
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    // ---- downloads ----

    fn download(&self, key: &str, item: &Item, range: Option<&Range<u64>>) -> Result<Bytes> {
        let url = self.file_endpoint(&item.id, &[("alt", "media")])?;
        let header = range.map(|r| format!("bytes={}-{}", r.start, r.end - 1));
        let r = self.call(key, &|| {
            let rb = self.client.get(url.clone());
            match &header {
                Some(h) => rb.header(reqwest::header::RANGE, h.as_str()),
                None => rb,
            }
        })?;
        if r.status == 404 {
            lock(&self.files).remove(key);
        }
        let r = self.expect(key, r, &[200, 206])?;
        match range {
            // A server that ignores Range sends everything.
            Some(want) if r.status == 200 => {
                let (s, e) = (want.start as usize, want.end as usize);
                if e > r.body.len() {
                    return Err(self.err(key, format!("range {want:?} beyond the value")));
                }
                Ok(r.body.slice(s..e))
            }
            _ => Ok(r.body),
        }
    }
}

impl Backend for GdriveBackend {
    fn put_new(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        let Some((parents, name)) = self.parents_for_new(key)? else {
            return Ok(false);
        };
        let nonce = nonce();
        let hash = blake3::hash(&data).to_hex().to_string();
        let meta = serde_json::json!({
            "name": name,
            "parents": [parents[0]],
            "mimeType": "application/octet-stream",
            "appProperties": { HASH_PROPERTY: hash, NONCE_PROPERTY: nonce },
        })
        .to_string();
        let data = Bytes::from(data);
        let uploaded = if data.len() < self.opts.multipart_limit {
            self.upload_multipart(key, &meta, &data)?
        } else {
            self.upload_resumable(key, &meta, &data)?
        };
        self.settle(key, &parents, name, uploaded, &nonce)
    }

    fn copy(&self, from: &str, to: &str) -> Result<bool> {
        let Some(src) = self.find(from)? else {
            return Ok(false);
        };
        let Some((parents, name)) = self.parents_for_new(to)? else {
            return Ok(true);
        };
        let nonce = nonce();
        let mut props = src.app_properties.clone();
        props.insert(NONCE_PROPERTY.to_string(), nonce.clone());
        let body = serde_json::json!({
            "name": name,
            "parents": [parents[0]],
            "appProperties": props,
        })
        .to_string();
        let mut url = self.file_endpoint(&src.id, &[("fields", FILE_FIELDS)])?;
        url.path_segments_mut()
            .map_err(|_| Error::Invalid(format!("api_url {}: cannot be a base", self.api)))?
            .push("copy");
        let r = self.call(to, &|| {
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .body(body.clone())
        })?;
        let r = self.expect(to, r, &[200])?;
        let copied: Option<String> = serde_json::from_slice::<Item>(&r.body).ok().map(|i| i.id);
        self.settle(to, &parents, name, copied, &nonce)?;
        Ok(true)
    }

    fn urls(&self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .find(key)?
            .map(|f| vec![format!("https://drive.google.com/file/d/{}", f.id)])
            .unwrap_or_default())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(item) = self.find(key)? else {
            return Ok(None);
        };
        let body = self.download(key, &item, None)?;
        let size_ok = item.size.is_none() || body.len() as u64 == item.size();
        let hash_ok = item
            .property(HASH_PROPERTY)
            .is_none_or(|h| blake3::hash(&body).to_hex().as_str() == h);
        if !(size_ok && hash_ok) {
            lock(&self.files).remove(key);
            return Err(Error::corrupt(
                format!("remote {} {key}", self.url),
                format!(
                    "downloaded {} bytes that do not match the file's size or its {HASH_PROPERTY} property",
                    body.len()
                ),
            ));
        }
        Ok(Some(body.to_vec()))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let item = self
            .find(key)?
            .ok_or_else(|| self.err(key, "no such file"))?;
        let want = range.end - range.start;
        let body = self.download(key, &item, Some(&range))?;
        if body.len() as u64 != want {
            return Err(self.err(key, format!("short read: {} of {want} bytes", body.len())));
        }
        Ok(body.to_vec())
    }

    fn head(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.find(key)?.map(|i| i.size()))
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let items = self.list_items(prefix)?;
        // Remembered, as `find` would: a later read or `urls` of a listed key asks nothing.
        let mut files = lock(&self.files);
        Ok(items
            .into_iter()
            .map(|(k, i)| {
                let n = i.size();
                files.insert(k.clone(), i);
                (k, n)
            })
            .collect())
    }

    fn list_aged(&self, prefix: &str) -> Result<Vec<Listed>> {
        let now = jiff::Timestamp::now();
        Ok(self
            .list_items(prefix)?
            .into_iter()
            .map(|(key, i)| {
                // Values are never modified: a file's age is its `createdTime`'s.
                let age = i
                    .created_time
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .and_then(|t| std::time::Duration::try_from(now.duration_since(t)).ok());
                Listed {
                    key,
                    size: i.size(),
                    age,
                }
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let (dir, name) = self.split(key)?;
        lock(&self.files).remove(key);
        let Some(parents) = self.folders(dir, false)? else {
            return Ok(());
        };
        // Every file of the name goes (racing creators may have left several), so no older
        // duplicate can stand in for the value afterwards; a 404 is one already gone.
        for item in self.files_named(&parents, name, key)? {
            self.delete_file(key, &item.id)?;
        }
        lock(&self.files).remove(key);
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A Drive query string literal: `'` and `\` escaped with `\`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `('a' in parents or 'b' in parents …)`.
fn in_parents(ids: &[String]) -> String {
    let terms: Vec<String> = ids
        .iter()
        .map(|i| format!("{} in parents", quote(i)))
        .collect();
    format!("({})", terms.join(" or "))
}
