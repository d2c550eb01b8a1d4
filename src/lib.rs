//! # store: a content-addressed versioning store for scientific and ML workflows
//!
//! Files are split by content-defined chunking (FastCDC), each chunk is hashed with keyed
//! BLAKE3 (one key per object kind), compressed with zstd when that pays, and appended to
//! immutable pack files. A SQLite index maps objects to packs and keeps a stat cache; it can be
//! rebuilt from the packs alone. A file is a manifest of chunks, a directory a manifest of
//! named entries, and every `add` of a top-level path leaves a root record, so runs (the next
//! layer) are one more manifest kind on the same machinery. The byte layout is in
//! `store-format.md`.
//!
//! The main type is [`Store`]. The code reads as its layers, each a folder (or file) under
//! `src/` that uses only the layers below it (`tests/it/layers.rs` keeps it so):
//!
//! | layer | what it owns |
//! |---|---|
//! | [`engine`] | hashes, chunking, packs, object encodings (run objects included), the index, the [`Store`] handle |
//! | [`workspace`] | `add`/`status`, `checkout`, and `verify`/`gc`/`reindex`/`stats` |
//! | [`run`] | recording, sealing, snapshots, diff and lineage, run checkout, environments, code in git |
//! | [`pegasus`] | Pegasus workflow documents: read, validate, plan, augment |
//! | [`runner`] | `store run` and `rerun` on one machine |
//! | [`reproduce`] | a restored run that plans again: workflows rewritten to name restored code and files |
//! | [`remote`] | backends (S3, GCS, Azure, Google Drive, directories) and the sync protocol |
//! | [`mlflow`] | MLflow linkage |
//! | [`catalog`] | the metadata catalog (runs with their MLflow links) and its git history |
//!
//! The `store` binary (`src/main.rs`, one module per command under `src/cli/`) sits on top and
//! uses only this crate's public API.
//!
//! ```
//! use store::{Store, InitOptions, AddOptions, CheckoutOptions};
//! # fn main() -> Result<(), store::Error> {
//! let ws = tempfile::tempdir().expect("temp dir");
//! let data = ws.path().join("data.csv");
//! std::fs::write(&data, b"id,value\n1,42\n").expect("write");
//!
//! let store = Store::init(&ws.path().join(".store"), &InitOptions::default())?;
//! let report = store.add(&[data.clone()], &AddOptions::default())?;
//! let hash = report.added[0].hash;
//!
//! let out = ws.path().join("restored");
//! store.checkout(&hash, &out, &CheckoutOptions::default())?;
//! assert_eq!(std::fs::read(out.join("data.csv")).expect("read"), b"id,value\n1,42\n");
//! assert!(store.verify()?.problems.is_empty());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

// The layers, lowest first; each may use only those above it in this list (arrows point
// down), which `tests/it/layers.rs` checks.
pub mod catalog;
pub mod engine;
pub mod error;
pub mod mlflow;
pub mod pegasus;
pub mod remote;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod runner;
pub mod site;
pub mod workspace;

// The library's public paths from before the layers had folders.
pub use engine::reader::FileReader;
pub use engine::{chunker, hash, index, manifest, pack, util};
pub use run::{env, git};

pub use engine::store::{
    ChunkParams, Config, InitOptions, LockMode, Store, StoreLock, FORMAT_VERSION, RESERVE_BYTES,
    STORE_DIR_NAME,
};
pub use error::{exit, Error, Result};
pub use hash::{Hash, ObjectKind};
pub use remote::sync::{
    clone_remote, PublishOptions, PublishReport, PullOptions, PullReport, PushOptions, PushReport,
    RemoteGcItem, RemoteGcOptions, RemoteGcReport, RemoteGcRun, RemoteSyncOptions,
    RemoteSyncReport, RemoteUsage, RemoteVerifyReport, Remotes, RunPublication, RunUsage, Skipped,
    WorkflowUsage, DEFAULT_GC_GRACE, DEFAULT_PUBLISH_PREFIX,
};
pub use workspace::add::{AddOptions, AddReport, Added, Change, RootKind, StatusEntry};
pub use workspace::checkout::{CheckoutOptions, CheckoutReport, LinkMode};
pub use workspace::maintenance::{GcReport, Problem, Stats, VerifyReport};

impl Store {
    /// The tracked top-level paths and what they hold now.
    pub fn roots(&self) -> Result<Vec<index::Root>> {
        self.index().roots()
    }

    /// Every recorded version of every tracked path (or of the absolute `path`), newest first.
    pub fn history(&self, path: Option<&str>) -> Result<Vec<index::Root>> {
        self.index().root_history(path)
    }
}
