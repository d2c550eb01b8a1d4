//! Uploads to Drive: one multipart request for small values, a resumable session in
//! 256 KiB-multiple chunks for large ones, resumed from what the server reports after a
//! dropped connection or a server error, and started again when the server forgets it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::Url;

use super::http::{drive_reason, random_unit, retryable, Retry};
use super::GdriveBackend;
use crate::error::Result;

/// A session remembered on disk (see [`GdriveBackend::session_file`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSession {
    /// The session's URL.
    session: String,
    /// The size of the upload.
    total: u64,
}

/// What a resumable session holds.
enum Session {
    /// The upload is complete (the new file's id, when the reply names it).
    Done(Option<String>),
    /// Bytes `0..n` are stored; continue at `n`.
    At(u64),
    /// The server forgot the session.
    Gone,
}

impl GdriveBackend {
    /// One request; returns the new file's id.
    pub(super) fn upload_multipart(
        &self,
        key: &str,
        meta: &str,
        data: &Bytes,
    ) -> Result<Option<String>> {
        let boundary = loop {
            let b = format!("store-{}", nonce());
            if !data.windows(b.len()).any(|w| w == b.as_bytes()) {
                break b;
            }
        };
        let mut body = Vec::with_capacity(data.len() + meta.len() + 256);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n\
                 --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let body = Bytes::from(body);
        let url = self.endpoint(
            "/upload/drive/v3/files",
            &[("uploadType", "multipart"), ("fields", "id")],
        )?;
        let ctype = format!("multipart/related; boundary={boundary}");
        // A retry after a lost reply may create a second file of ours: `put_new` removes it.
        let r = self.call(key, &|| {
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, ctype.as_str())
                .body(body.clone())
        })?;
        self.expect(key, r, &[200, 201]).map(|r| file_id(&r.body))
    }

    fn start_session(&self, key: &str, meta: &str, total: u64) -> Result<Url> {
        let url = self.endpoint(
            "/upload/drive/v3/files",
            &[("uploadType", "resumable"), ("fields", "id")],
        )?;
        let r = self.call(key, &|| {
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .header("X-Upload-Content-Type", "application/octet-stream")
                .header("X-Upload-Content-Length", total.to_string())
                .body(meta.to_string())
        })?;
        let r = self.expect(key, r, &[200])?;
        let loc = r
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.err(key, "resumable upload: no session Location"))?;
        Url::parse(loc).map_err(|_| self.err(key, "resumable upload: bad session Location"))
    }

    /// Asks a session how much it holds.
    fn session_status(&self, key: &str, session: &Url, total: u64) -> Result<Session> {
        let r = self.call(key, &|| {
            self.client
                .put(session.clone())
                .header(CONTENT_RANGE, format!("bytes */{total}"))
                .body(Vec::new())
        })?;
        match r.status {
            200 | 201 => Ok(Session::Done(file_id(&r.body))),
            308 => Ok(Session::At(committed(&r.headers))),
            404 | 410 => Ok(Session::Gone),
            _ => Err(self.status_error(key, &r)),
        }
    }

    /// The file remembering the session of uploading `data` as `key` to this remote, when
    /// sessions are remembered: named by a hash of the remote, the key and the bytes, so only
    /// the very same upload ever continues it.
    fn session_file(&self, key: &str, data: &Bytes) -> Option<std::path::PathBuf> {
        let dir = self.opts.sessions_dir.as_ref()?;
        let mut h = blake3::Hasher::new();
        h.update(self.url.as_bytes());
        h.update(b"\0");
        h.update(key.as_bytes());
        h.update(b"\0");
        h.update(blake3::hash(data).as_bytes());
        Some(dir.join(format!("{}.json", h.finalize().to_hex())))
    }

    /// A session an earlier (killed) upload of the same bytes left, and where it stands; a
    /// session the server forgot (or completed) is forgotten here too.
    fn saved_session(&self, key: &str, file: &std::path::Path, total: u64) -> Option<(Url, u64)> {
        let saved: SavedSession = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        let url = Url::parse(&saved.session).ok()?;
        // Only a session on this remote's own API is asked (a tampered file cannot send the
        // credentials elsewhere).
        if saved.total != total || !saved.session.starts_with(&self.api) {
            let _ = std::fs::remove_file(file);
            return None;
        }
        match self.session_status(key, &url, total) {
            Ok(Session::At(n)) => Some((url, n.min(total))),
            _ => {
                let _ = std::fs::remove_file(file);
                None
            }
        }
    }

    /// Remembers a session (owner-only file, written atomically); best effort.
    fn save_session(file: &std::path::Path, session: &Url, total: u64) {
        let saved = SavedSession {
            session: session.to_string(),
            total,
        };
        if let (Some(dir), Ok(json)) = (file.parent(), serde_json::to_vec(&saved)) {
            let _ = std::fs::create_dir_all(dir);
            let _ = crate::engine::util::atomic_write(file, &json);
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
        }
    }

    /// A resumable session, resumed or restarted as needed; returns the new file's id.
    pub(super) fn upload_resumable(
        &self,
        key: &str,
        meta: &str,
        data: &Bytes,
    ) -> Result<Option<String>> {
        let saved = self.session_file(key, data);
        let r = self.upload_resumable_from(key, meta, data, saved.as_deref());
        if r.is_ok() {
            if let Some(f) = &saved {
                let _ = std::fs::remove_file(f);
            }
        }
        r
    }

    fn upload_resumable_from(
        &self,
        key: &str,
        meta: &str,
        data: &Bytes,
        saved: Option<&std::path::Path>,
    ) -> Result<Option<String>> {
        let total = data.len() as u64;
        let mut resumed = saved.and_then(|f| self.saved_session(key, f, total));
        let chunk = self.opts.chunk_size as u64;
        let start = Instant::now();
        let mut failures = 0;
        let mut sessions = 0;
        let mut last = String::new();
        'session: loop {
            sessions += 1;
            if sessions > self.opts.max_attempts {
                return Err(self.err(
                    key,
                    format!("resumable upload: {sessions} sessions lost ({last})"),
                ));
            }
            let (session, mut offset) = match resumed.take() {
                Some(s) => s,
                None => {
                    let s = self.start_session(key, meta, total)?;
                    if let Some(f) = saved {
                        Self::save_session(f, &s, total);
                    }
                    (s, 0)
                }
            };
            loop {
                let end = (offset + chunk).min(total);
                let range = format!("bytes {offset}-{}/{total}", end - 1);
                let body = data.slice(offset as usize..end as usize);
                let sent = self.attempt(Retry::No, &|| {
                    self.client
                        .put(session.clone())
                        .header(CONTENT_RANGE, range.as_str())
                        .body(body.clone())
                })?;
                match sent {
                    Ok(r) if r.status == 200 || r.status == 201 => return Ok(file_id(&r.body)),
                    Ok(r) if r.status == 308 && committed(&r.headers) > offset => {
                        offset = committed(&r.headers);
                        continue;
                    }
                    Ok(r) if r.status == 404 || r.status == 410 => {
                        last = format!("HTTP {}", r.status);
                        continue 'session;
                    }
                    Ok(r) if r.status == 308 || retryable(&r) => {
                        last = format!("HTTP {}{}", r.status, drive_reason(&r.body));
                    }
                    Ok(r) => return Err(self.status_error(key, &r)),
                    Err(e) => last = e,
                }
                // A dropped connection or a server error: ask what the session kept.
                failures += 1;
                if !self.may_retry(failures, start) {
                    return Err(self.err(
                        key,
                        format!("resumable upload failed {failures} times; last: {last}"),
                    ));
                }
                self.backoff(failures, None);
                match self.session_status(key, &session, total)? {
                    Session::Done(id) => return Ok(id),
                    Session::At(n) => offset = n.min(total),
                    Session::Gone => continue 'session,
                }
            }
        }
    }
}

/// The `id` of the file a completed upload's reply describes.
fn file_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("id")?.as_str().map(str::to_string)
}

/// The next offset a 308 names: its `Range: bytes=0-N` plus one, or 0 without one.
fn committed(h: &HeaderMap) -> u64 {
    h.get(reqwest::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().strip_prefix("bytes="))
        .and_then(|s| s.split_once('-'))
        .and_then(|(_, end)| end.trim().parse::<u64>().ok())
        .map_or(0, |e| e + 1)
}

/// 128 random bits in hex: names one upload (and a multipart boundary).
pub(super) fn nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&crate::engine::util::now_ns().to_le_bytes());
    h.update(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(&random_unit().to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        /// Upload replies: any body gives an ID or none.
        #[test]
        fn upload_replies_parse_or_say_nothing(text in "[\\[\\]{}:,\"a-z0-9 .\\-]{0,300}") {
            let _ = super::file_id(text.as_bytes());
        }
    }
}
