//! Remote storage: a small key/value interface ([`Backend`]) over S3-compatible object stores,
//! Google Cloud Storage and Azure (one module, `s3`, through `object_store`), Google Drive
//! (`gdrive`, hand-written over `reqwest`) and plain or network-mounted directories (`dir`). What is stored where is the business of `sync`; a
//! backend only moves immutable byte strings under `/`-separated keys.
//!
//! Every backend guarantees what `sync` relies on: [`Backend::put_new`] never replaces an
//! existing key and never exposes a partly written value under its key.
//!
//! Layer: above runs. The sync protocol (`sync`: segments, push, pull and clone, verify
//! --remote) uses the engine, the workspace and runs; the engine knows nothing of remotes and
//! gets fetch on demand only through the hook [`fetch_on_demand`] installs.

mod dir;
mod gdrive;
mod s3;

pub(crate) mod sync;

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use dir::DirBackend;
pub use gdrive::{
    GdriveBackend, GdriveOptions, CHUNK_QUANTUM, CREDENTIAL_ENV, DEFAULT_API_URL,
    DEFAULT_TOKEN_URL, HASH_PROPERTY, NONCE_PROPERTY,
};
pub use s3::ObjectStoreBackend;

/// Key/value access to one remote location.
pub trait Backend: Send + Sync {
    /// Stores `data` under `key` unless the key exists. True when this call created it.
    fn put_new(&self, key: &str, data: Vec<u8>) -> Result<bool>;
    /// The whole value, or `None` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Bytes `range` of the value (the range must lie inside it).
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>>;
    /// The size of the value, or `None` when the key does not exist.
    fn head(&self, key: &str) -> Result<Option<u64>>;
    /// Every key under `prefix` (a directory-like prefix ending in `/`), with its size.
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>>;
    /// Every key under `prefix` with its size and, where the backend records one, its age (the
    /// time since it was written, by the backend's clock against this machine's). A backend
    /// that cannot tell returns `None`, and `remote gc` then treats the value as young (never
    /// deleted for its age).
    fn list_aged(&self, prefix: &str) -> Result<Vec<Listed>> {
        Ok(self
            .list(prefix)?
            .into_iter()
            .map(|(key, size)| Listed {
                key,
                size,
                age: None,
            })
            .collect())
    }
    /// Removes `key`. Idempotent: removing an absent key succeeds. Never partial: afterwards a
    /// reader finds the whole value or nothing (on Drive, every file holding the key goes).
    /// Only `remote gc` deletes, under the rules of `store-format.md` ("Remote gc").
    fn delete(&self, key: &str) -> Result<()>;
    /// Copies the value at `from` to `to` without it passing through this machine where the
    /// backend can (S3 `CopyObject`, GCS and Azure copies, Drive `files.copy`, a directory
    /// remote's file copy); the default reads and writes it. `to` must be absent or hold the
    /// same bytes (only published views are copied, 19.12). False when `from` does not exist.
    fn copy(&self, from: &str, to: &str) -> Result<bool> {
        match self.get(from)? {
            Some(data) => {
                self.put_new(to, data)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    /// Where a person opens the value at `key`: the backend's own URL (`s3://…`, `gs://…`,
    /// `az://…`, `file://…`) and, where there is one, the https page a browser opens (Drive:
    /// `https://drive.google.com/file/d/<id>`, which needs the file's id: a lookup unless this
    /// backend wrote or copied the key).
    fn urls(&self, key: &str) -> Result<Vec<String>>;
    /// Requests made so far (for benchmarks and `--json` reports).
    fn requests(&self) -> u64;
    /// Values being written that never reached their key: a directory remote's `tmp/` files,
    /// left behind by a writer that was killed (or still being written). Backends whose writes
    /// are atomic requests (S3, Drive) have none.
    fn partial_uploads(&self) -> Result<Vec<PartialUpload>> {
        Ok(Vec::new())
    }
    /// Removes the [`Backend::partial_uploads`] not modified for at least `min_age` (a writer
    /// still running keeps writing to its file, or links it within moments of its last write).
    /// Best effort: one that cannot be removed stays and is reported again. Returns those
    /// removed.
    fn remove_stale_uploads(&self, min_age: std::time::Duration) -> Result<Vec<PartialUpload>> {
        let _ = min_age;
        Ok(Vec::new())
    }
}

/// A partial upload in a directory remote's `tmp/` not modified for this long is stale: its
/// writer was killed (a running writer keeps writing to it, and links it to its key moments
/// after its last write). Each push removes the stale ones.
pub const STALE_UPLOAD_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A key as [`Backend::list_aged`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The key, relative to the remote's root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Time since it was written, when the backend records it.
    pub age: Option<std::time::Duration>,
}

/// A value left half-written on a remote (see [`Backend::partial_uploads`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartialUpload {
    /// Its key relative to the remote's root (`tmp/<pid>-<t>-<n>.tmp`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Seconds since it was last modified.
    pub age_secs: u64,
}

/// A configured remote: its URL and non-secret options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// `s3://bucket/prefix`, `gs://…`, `az://…`, `gdrive://folder` or `gdrive://id:FOLDER_ID`,
    /// `file:///path` or a plain path.
    pub url: String,
    /// Backend options (`endpoint`, `region`, `allow_http`, `virtual_hosted`,
    /// `credentials_file`, `api_url`, `token_url`), and what the store does with the remote
    /// (`publish`: each seal also publishes the run's browsable view, under `publish_prefix`,
    /// 19.12). Never secrets: those come from the
    /// environment or the file named.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Option names a remote accepts.
pub const OPTION_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "allow_http",
    "virtual_hosted",
    "credentials_file",
    "api_url",
    "token_url",
    "instance_metadata",
    "publish",
    "publish_prefix",
];

impl RemoteSpec {
    /// Checks the URL scheme and the option names; refuses anything that looks like a secret.
    pub fn validate(&self) -> Result<()> {
        for (k, v) in &self.options {
            if !OPTION_KEYS.contains(&k.as_str()) {
                return Err(Error::Invalid(format!(
                    "unknown remote option {k:?} (known: {}); credentials are read from the \
                     environment or a credentials_file, never stored in the config",
                    OPTION_KEYS.join(", ")
                )));
            }
            // An endpoint with `user:password@`, a token parameter, a token: never stored.
            if crate::engine::redact::redact(v) != *v {
                return Err(Error::Invalid(format!(
                    "remote option {k} carries a credential (user:secret@ in a URL, a token or \
                     key parameter); credentials come from the environment or a \
                     credentials_file, never the store's configuration"
                )));
            }
            if k == "publish_prefix" {
                crate::remote::sync::check_publish_prefix(v)?;
            }
            if (k == "allow_http"
                || k == "virtual_hosted"
                || k == "instance_metadata"
                || k == "publish")
                && crate::engine::util::parse_bool(v).is_none()
            {
                return Err(Error::Invalid(format!(
                    "remote option {k} must be true or false, not {v:?}"
                )));
            }
            if (k == "api_url" || k == "token_url")
                && !(v.starts_with("https://") || v.starts_with("http://"))
            {
                return Err(Error::Invalid(format!(
                    "remote option {k} must be an http:// or https:// URL, not {v:?}"
                )));
            }
        }
        if self.url.contains('@') && self.url.contains("://") {
            return Err(Error::Invalid(
                "remote URLs must not carry credentials (user:secret@host); use the environment"
                    .into(),
            ));
        }
        match self.scheme() {
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "file" => Ok(()),
            "gdrive" => gdrive::parse_root(&self.url).map(|_| ()),
            other => Err(Error::Invalid(format!(
                "unsupported remote URL scheme {other:?} in {} (use s3://, gs://, az://, \
                 gdrive://, file:// or a directory path)",
                self.url
            ))),
        }
    }

    fn scheme(&self) -> &str {
        match self.url.split_once("://") {
            Some((s, _)) => s,
            None => "file",
        }
    }

    /// The option as a boolean (absent = false).
    pub fn flag(&self, key: &str) -> bool {
        self.options
            .get(key)
            .and_then(|v| crate::engine::util::parse_bool(v))
            .unwrap_or(false)
    }

    /// Opens the backend this spec names for a store whose local state for remotes is in
    /// `state` (a Drive upload killed with its process is continued from its session, kept
    /// there).
    pub fn open_in(&self, state: &std::path::Path) -> Result<Box<dyn Backend>> {
        if self.scheme() != "gdrive" {
            return self.open();
        }
        self.validate()?;
        let opts = gdrive::GdriveOptions {
            sessions_dir: Some(state.join("gdrive-sessions")),
            ..gdrive::GdriveOptions::default()
        };
        Ok(Box::new(GdriveBackend::open_with(self, opts)?))
    }

    /// Opens the backend this spec names.
    pub fn open(&self) -> Result<Box<dyn Backend>> {
        self.validate()?;
        match self.scheme() {
            "file" => {
                let path = self.url.strip_prefix("file://").unwrap_or(&self.url);
                Ok(Box::new(DirBackend::open(std::path::Path::new(path))?))
            }
            "gdrive" => Ok(Box::new(GdriveBackend::open(self)?)),
            _ => Ok(Box::new(ObjectStoreBackend::open(self)?)),
        }
    }
}

/// `key` as the path of a URL: bytes outside the unreserved set and `/` are %-escaped.
pub(crate) fn escape_url_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A remote error naming the remote and the key, never a credential.
pub(crate) fn remote_error(url: &str, key: &str, detail: impl std::fmt::Display) -> Error {
    Error::Remote {
        remote: url.to_string(),
        detail: format!("{key}: {}", crate::run::git::redact(&detail.to_string())),
    }
}

/// Fetch on demand from the default remote: a checkout or `cat` in a clone downloads the
/// objects it needs and lacks (nothing happens while no remote is configured).
struct DefaultRemote;

impl crate::engine::store::ObjectSource for DefaultRemote {
    fn ensure_local(
        &self,
        store: &crate::engine::store::Store,
        starts: &[crate::engine::hash::Hash],
    ) -> Result<u64> {
        store.fetch_missing(starts, true)
    }

    fn can_fetch(&self, store: &crate::engine::store::Store) -> bool {
        // An unreadable remotes file is reported by the fetch itself.
        store.remotes().map_or(true, |r| !r.remotes.is_empty())
    }

    fn ensure_manifests(
        &self,
        store: &crate::engine::store::Store,
        starts: &[crate::engine::hash::Hash],
    ) -> Result<u64> {
        store.fetch_missing(starts, false)
    }

    fn fetch_chunks(
        &self,
        store: &crate::engine::store::Store,
        chunks: &[crate::engine::hash::Hash],
        sink: &crate::engine::store::ChunkSink<'_>,
    ) -> Result<u64> {
        store.fetch_chunks_into(chunks, sink)
    }
}

/// Makes `store` fetch missing objects from its default remote on demand (what the CLI does
/// for every command).
pub fn fetch_on_demand(store: &crate::engine::store::Store) {
    store.set_object_source(Box::new(DefaultRemote));
}
