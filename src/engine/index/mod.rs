//! The SQLite index (the only module that touches rusqlite). It maps objects to their place
//! in packs, records the current root of each tracked path, and keeps the stat cache. It holds
//! nothing that cannot be rebuilt from packs except the stat cache, which is only a speed-up.
//!
//! rusqlite's one home: the types and shared helpers are here, the operations in one file per
//! concept: opening and migrating (`schema`), the write path (`commit`), lookups
//! (`queries`), the run tables (`runs`) and integrity checks and totals (`check`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{ffi, params, Connection, OptionalExtension, TransactionBehavior};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::pack::{Compression, Entry, FinishedPack};
use crate::error::{Error, Result};

mod check;
mod commit;
mod queries;
mod runs;
pub use runs::RunCountRow;
mod schema;

/// Append-only schema migrations; `PRAGMA user_version` counts how many have been applied.
/// Never edit an entry once released: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: packs, objects, roots (every version of every added path), stat cache.
    "CREATE TABLE packs (
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE objects (
        hash BLOB PRIMARY KEY,
        kind INTEGER NOT NULL,
        pack INTEGER NOT NULL REFERENCES packs(id),
        offset INTEGER NOT NULL,
        stored_len INTEGER NOT NULL,
        raw_len INTEGER NOT NULL,
        compression INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX objects_by_pack ON objects(pack);
    CREATE TABLE roots (
        record BLOB PRIMARY KEY,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        hash BLOB NOT NULL,
        size INTEGER NOT NULL,
        time_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX roots_by_path ON roots(path, time_ns);
    CREATE TABLE stat_cache (
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        hash BLOB NOT NULL,
        trusted INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX stat_cache_by_hash ON stat_cache(hash);",
    // 2: workflow runs. Every row is derived from run objects in packs (rebuilt by reindex).
    "CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        sealed_ns INTEGER,
        snapshot BLOB
    );
    CREATE INDEX runs_by_workflow ON runs(workflow, created_ns);
    CREATE TABLE run_parts (
        record BLOB PRIMARY KEY,
        run_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        time_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX run_parts_by_run ON run_parts(run_id);
    CREATE TABLE run_entries (
        record BLOB NOT NULL,
        run_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        role TEXT NOT NULL,
        lfn TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        hash BLOB NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE INDEX run_entries_by_run ON run_entries(run_id);
    CREATE INDEX run_entries_by_hash ON run_entries(hash);",
    // 3: the stat cache is looked up by hash only for files a checkout may copy from the
    // workspace (at least STAT_BY_HASH_MIN bytes): index those alone (a third of the index
    // of a tree of small files was this index).
    "DROP INDEX stat_cache_by_hash;
    CREATE INDEX stat_cache_large_by_hash ON stat_cache(hash) WHERE size >= 1048576;",
    // 4: object rows are never looked up by pack on a hot path (only by push, gc and verify,
    // which read them all in one scan): the index by pack cost a fifth of the index file and
    // an insert per object.
    "DROP INDEX objects_by_pack;",
    // 5: the stat cache is keyed by (directory, name) instead of by absolute path: a tree's
    // files share a few thousand directories, and the repeated directory part was half of the
    // stat cache (its largest table). A directory's path ends in '/' and a file's path is its
    // directory's path followed by its name; `rtrim(p, replace(p, '/', ''))` is `p` up to
    // and including its last '/'.
    "CREATE TABLE stat_dirs (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE
    );
    INSERT INTO stat_dirs (path)
        SELECT DISTINCT rtrim(path, replace(path, '/', '')) FROM stat_cache ORDER BY 1;
    CREATE TABLE stat_files (
        dir INTEGER NOT NULL REFERENCES stat_dirs(id),
        name TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        hash BLOB NOT NULL,
        trusted INTEGER NOT NULL,
        PRIMARY KEY (dir, name)
    ) WITHOUT ROWID;
    INSERT INTO stat_files
        SELECT d.id, substr(s.path, length(d.path) + 1), s.dev, s.ino, s.size, s.mtime_ns,
               s.ctime_ns, s.hash, s.trusted
        FROM stat_cache s JOIN stat_dirs d ON d.path = rtrim(s.path, replace(s.path, '/', ''));
    DROP TABLE stat_cache;
    CREATE INDEX stat_files_large_by_hash ON stat_files(hash) WHERE size >= 1048576;",
];

/// Files at least this large are found in the stat cache by hash
/// ([`Index::large_path_with_hash`]); the literal in migrations 3 and 5 and that query must
/// match it for SQLite to use the partial index.
pub const STAT_BY_HASH_MIN: u64 = 1 << 20;

/// The schema version this program writes (number of migrations).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Where an object lives.
#[derive(Clone, Debug)]
pub struct Location {
    /// The pack's id.
    pub pack: Hash,
    /// The object's entry in that pack.
    pub entry: Entry,
}

/// A stat-cache row: what a file looked like when it was last hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatEntry {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// Status-change time, ns.
    pub ctime_ns: i64,
    /// The file hash it had.
    pub hash: Hash,
    /// False when the file was modified so recently that a later change could share its
    /// timestamp (the "racy" case): such an entry is re-hashed rather than trusted.
    pub trusted: bool,
}

/// The current root of a tracked path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// Absolute path.
    pub path: String,
    /// `file`, `tree` or `symlink`.
    pub kind: String,
    /// Hash of what was added.
    pub hash: Hash,
    /// Logical size.
    pub size: u64,
    /// When, in ns since the epoch.
    pub time_ns: i64,
    /// The root record object.
    pub record: Hash,
}

impl Root {
    /// The root that root record `rec`, stored as object `record`, describes.
    pub fn from_record(rec: crate::engine::manifest::RootRecord, record: Hash) -> Result<Root> {
        Ok(Root {
            hash: rec.hash.parse()?,
            path: rec.path,
            kind: rec.kind,
            size: rec.size,
            time_ns: rec.time_ns,
            record,
        })
    }
}

/// An object row as stored (see [`Index::object_rows`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRow {
    /// The object's hash.
    pub hash: Hash,
    /// Its kind number.
    pub kind: u8,
    /// Offset in the pack.
    pub offset: i64,
    /// Stored length.
    pub stored_len: i64,
    /// Uncompressed length.
    pub raw_len: i64,
    /// Compression number.
    pub compression: u8,
}

/// Everything one operation commits, applied in a single transaction.
#[derive(Default)]
pub struct Commit {
    /// Empty the pack, object and root tables first (a rebuild from packs).
    pub reset: bool,
    /// Packs to drop (with their objects) before adding the new ones.
    pub remove_packs: Vec<Hash>,
    /// Packs written (with their tables of contents).
    pub packs: Vec<FinishedPack>,
    /// Root versions to record.
    pub roots: Vec<Root>,
    /// Root versions (by record hash) to forget.
    pub drop_roots: Vec<Hash>,
    /// Stat-cache rows to upsert.
    pub stats: Vec<(String, StatEntry)>,
    /// Stat-cache rows to delete (files gone from a tracked directory).
    pub forget: Vec<String>,
    /// Partial run manifests to record (refused if their run is sealed).
    pub run_parts: Vec<RunPartRow>,
    /// Runs to seal: (run id, snapshot hash, sealed time, parts the snapshot merged).
    pub seals: Vec<SealRow>,
}

impl Commit {
    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        !self.reset
            && self.remove_packs.is_empty()
            && self.packs.is_empty()
            && self.roots.is_empty()
            && self.drop_roots.is_empty()
            && self.stats.is_empty()
            && self.forget.is_empty()
            && self.run_parts.is_empty()
            && self.seals.is_empty()
    }
}

/// The index view of one partial run manifest.
#[derive(Clone, Debug)]
pub struct RunPartRow {
    /// Its object hash.
    pub record: Hash,
    /// Workflow name.
    pub workflow: String,
    /// Run ID.
    pub run_id: String,
    /// Job ID.
    pub job_id: String,
    /// When it was recorded.
    pub time_ns: i64,
    /// (role, lfn, path, kind, hash, size) per entry.
    pub entries: Vec<(String, String, String, String, Hash, u64)>,
}

/// The index view of a seal.
#[derive(Clone, Debug)]
pub struct SealRow {
    /// Run ID.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Hash of the run snapshot object.
    pub snapshot: Hash,
    /// When it was sealed.
    pub sealed_ns: i64,
    /// The partial manifests it merged; the seal fails if the run has others by now.
    /// `None` skips the check (reindex adopting a snapshot that exists).
    pub parts: Option<Vec<Hash>>,
}

/// A run as the index knows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunRow {
    /// Run ID.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// First record, ns.
    pub created_ns: i64,
    /// Seal time, ns, when sealed.
    pub sealed_ns: Option<i64>,
    /// Snapshot hash, when sealed.
    pub snapshot: Option<Hash>,
}

/// The open index.
pub struct Index {
    conn: Connection,
    /// The database file (named in errors).
    path: PathBuf,
    /// Where the packs this index names live; `None` for a detached in-memory index.
    packs_dir: Option<PathBuf>,
}

/// Turns a SQLite error into the store's error: a full disk (or quota) is [`Error::DiskFull`]
/// (exit 8) and a damaged database file is [`Error::Corrupt`] naming the index and the cure
/// (exit 5); anything else stays [`Error::Index`]. `db` is the connection's handle, from which
/// the OS error behind a generic "disk I/O error" is read (null when there is none).
fn classify(path: &Path, db: *mut ffi::sqlite3, context: &str, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        // SQLite reports ENOSPC on write() as SQLITE_FULL, but a failure to grow the WAL
        // index (-shm) only as an I/O error, and EDQUOT always as one: ask for the errno.
        let errno = if db.is_null() {
            0
        } else {
            // SAFETY: `db` is the handle of a connection that is still open (callers pass the
            // handle of the connection whose call just failed); the call only reads its state.
            unsafe { ffi::sqlite3_system_errno(db) }
        };
        let no_space = f.code == ffi::ErrorCode::DiskFull
            || f.extended_code == ffi::SQLITE_IOERR_SHMSIZE
            || (f.code == ffi::ErrorCode::SystemIoFailure
                && (errno == libc::ENOSPC || errno == libc::EDQUOT));
        if no_space {
            return Error::DiskFull {
                path: path.to_path_buf(),
            };
        }
        if matches!(
            f.code,
            ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase
        ) {
            return Error::corrupt(
                format!("index {}", path.display()),
                format!("{context}: {e} (run `store reindex` to rebuild the index from the packs)"),
            );
        }
    }
    Error::index(context.to_string(), e)
}

fn hash_col(b: Vec<u8>) -> rusqlite::Result<Hash> {
    Hash::from_slice(&b).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, "hash".into(), rusqlite::types::Type::Blob)
    })
}

/// What is wrong with the header of the database file at `path` that SQLite would not report
/// as corruption: bytes 18 and 19 (file format write and read versions) must be 1 (rollback
/// journal) or 2 (WAL); a larger write version silently makes the database read-only, so
/// every write would fail with "attempt to write a readonly database". `None` for a file
/// too short to have a header (a new one; SQLite judges a truncated one).
fn header_problem(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut h = [0u8; 100];
    let mut f = std::fs::File::open(path).ok()?;
    f.read_exact(&mut h).ok()?;
    let ok = |b: u8| b == 1 || b == 2;
    if h.starts_with(b"SQLite format 3\0") && !(ok(h[18]) && ok(h[19])) {
        return Some(format!(
            "header gives file format versions {}/{} (SQLite writes 1 or 2)",
            h[18], h[19]
        ));
    }
    None
}

/// A stat-cache path as stored (migration 5): its directory, up to and including the last
/// '/' (empty when there is none), and its name (the rest).
fn stat_key(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => path.split_at(i + 1),
        None => ("", path),
    }
}

/// The columns a stat-cache row is read from by [`stat_row`], then its full path, from
/// `stat_files f JOIN stat_dirs d`.
const STAT_COLUMNS: &str =
    "f.dev, f.ino, f.size, f.mtime_ns, f.ctime_ns, f.hash, f.trusted, d.path || f.name";

fn stat_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StatEntry> {
    Ok(StatEntry {
        dev: r.get::<_, i64>(0)? as u64,
        ino: r.get::<_, i64>(1)? as u64,
        size: r.get::<_, i64>(2)? as u64,
        mtime_ns: r.get(3)?,
        ctime_ns: r.get(4)?,
        hash: hash_col(r.get(5)?)?,
        trusted: r.get(6)?,
    })
}
