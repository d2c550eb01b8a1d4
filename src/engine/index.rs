//! The SQLite index (the only module that touches rusqlite). It maps objects to their place
//! in packs, records the current root of each tracked path, and keeps the stat cache. It holds
//! nothing that cannot be rebuilt from packs except the stat cache, which is only a speed-up.
//!
//! Size: this is rusqlite's one home, so every table, migration and query of the index is
//! here (about 1,200 lines); splitting it would spread SQL and the schema over several files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{ffi, params, Connection, OptionalExtension, TransactionBehavior};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::pack::{Compression, Entry, FinishedPack};
use crate::error::{Error, Result};

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
];

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

impl Index {
    /// Opens (creating and migrating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Index> {
        match Index::open_with(path, false) {
            // At 0 bytes free SQLite cannot grow the `-shm` file that WAL readers share, even
            // for a read. In EXCLUSIVE locking mode, set before the first access, it keeps
            // the WAL index in heap memory instead, so reading (and commits that fit in the
            // WAL) still work; the price is that this process keeps other processes out of
            // the index until it exits, which only applies on a full disk.
            Err(Error::DiskFull { .. }) => Index::open_with(path, true),
            r => r,
        }
    }

    fn open_with(path: &Path, exclusive: bool) -> Result<Index> {
        if let Some(bad) = header_problem(path) {
            return Err(Error::corrupt(
                format!("index {}", path.display()),
                format!("{bad} (run `store reindex` to rebuild the index from the packs)"),
            ));
        }
        let conn = Connection::open(path).map_err(|e| {
            classify(
                path,
                std::ptr::null_mut(),
                &format!("open {}", path.display()),
                e,
            )
        })?;
        let mut idx = Index {
            conn,
            path: path.to_path_buf(),
            packs_dir: path.parent().map(|d| d.join("packs")),
        };
        idx.conn
            .busy_timeout(Duration::from_secs(120))
            .map_err(idx.sql("busy timeout"))?;
        if exclusive {
            idx.conn
                .pragma_update(None, "locking_mode", "EXCLUSIVE")
                .map_err(idx.sql("exclusive locking"))?;
        }
        idx.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(idx.sql("enable WAL"))?;
        idx.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(idx.sql("synchronous"))?;
        idx.migrate()?;
        Ok(idx)
    }

    /// Creates a new index file at `path` (which must not exist) for a rebuild: no journal
    /// and no syncing while it fills, since a failed rebuild deletes the file; the caller
    /// fsyncs it once it is complete (see [`Index::close`]).
    pub(crate) fn create_for_rebuild(path: &Path, packs_dir: &Path) -> Result<Index> {
        let conn = Connection::open(path).map_err(|e| {
            classify(
                path,
                std::ptr::null_mut(),
                &format!("create {}", path.display()),
                e,
            )
        })?;
        let mut idx = Index {
            conn,
            path: path.to_path_buf(),
            packs_dir: Some(packs_dir.to_path_buf()),
        };
        idx.conn
            .pragma_update(None, "journal_mode", "OFF")
            .map_err(idx.sql("journal off"))?;
        idx.conn
            .pragma_update(None, "synchronous", "OFF")
            .map_err(idx.sql("synchronous off"))?;
        idx.migrate()?;
        Ok(idx)
    }

    /// An empty index in memory, standing in for one that cannot be opened (so `verify` can
    /// still check the packs and `reindex` can replace the file).
    pub(crate) fn detached() -> Result<Index> {
        let conn = Connection::open_in_memory().map_err(|e| Error::index("open in memory", e))?;
        let mut idx = Index {
            conn,
            path: PathBuf::from(":memory:"),
            packs_dir: None,
        };
        idx.migrate()?;
        Ok(idx)
    }

    /// Closes the connection, reporting what closing it reports (a WAL checkpoint can fail).
    pub(crate) fn close(self) -> Result<()> {
        let path = self.path;
        self.conn
            .close()
            .map_err(|(_, e)| classify(&path, std::ptr::null_mut(), "close", e))
    }

    /// The raw handle, only for [`classify`] to read the OS error of a failed call.
    fn raw(&self) -> *mut ffi::sqlite3 {
        // SAFETY: only the pointer is taken here; it is dereferenced (by SQLite) only while
        // `self.conn` is alive, inside `classify` called from this index's own methods.
        unsafe { self.conn.handle() }
    }

    /// Maps a SQLite error of this index (see [`classify`]).
    fn sql(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        let db = self.raw();
        move |e| classify(&self.path, db, context, e)
    }

    fn migrate(&mut self) -> Result<()> {
        // Read first: a store opened at its current version (the common case, and the only
        // one on a full disk) takes no write lock and writes nothing.
        let v: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.sql("read user_version"))?;
        self.check_version(v)?;
        if v == i64::from(SCHEMA_VERSION) {
            return Ok(());
        }
        let (path, db) = (self.path.clone(), self.raw());
        let sql = |c: &'static str| {
            let path = &path;
            move |e| classify(path, db, c, e)
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin migration"))?;
        // Again under the write lock: another process may have migrated meanwhile.
        let v: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql("read user_version"))?;
        if v < 0 || v > i64::from(SCHEMA_VERSION) {
            // Checked again below (for the error), with the lock released.
            drop(tx);
            return self.check_version(v);
        }
        let v = v as usize;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(v) {
            tx.execute_batch(m)
                .map_err(|e| classify(&path, db, &format!("migration {}", i + 1), e))?;
        }
        if v < MIGRATIONS.len() {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sql("set user_version"))?;
        }
        tx.commit().map_err(sql("commit migration"))
    }

    fn check_version(&self, v: i64) -> Result<()> {
        if v < 0 {
            // Every version this program ever wrote is a small count of migrations.
            return Err(Error::corrupt(
                format!("index {}", self.path.display()),
                format!("schema version {v} is not one (run `store reindex` to rebuild the index from the packs)"),
            ));
        }
        if v > i64::from(SCHEMA_VERSION) {
            return Err(Error::NewerFormat {
                what: format!("index {}", self.path.display()),
                found: u32::try_from(v).unwrap_or(u32::MAX),
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Where `hash` is stored, if anywhere.
    pub fn locate(&self, hash: &Hash) -> Result<Option<Location>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT p.hash, o.kind, o.offset, o.stored_len, o.raw_len, o.compression
                 FROM objects o JOIN packs p ON p.id = o.pack WHERE o.hash = ?1",
            )
            .map_err(self.sql("prepare locate"))?;
        st.query_row([&hash.0[..]], |r| {
            let pack = hash_col(r.get(0)?)?;
            let kind: u8 = r.get(1)?;
            let comp: u8 = r.get(5)?;
            Ok((
                pack,
                kind,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                comp,
            ))
        })
        .optional()
        .map_err(self.sql("locate object"))?
        .map(|(pack, kind, offset, stored, raw, comp)| {
            let kind = ObjectKind::from_u8(kind).ok_or_else(|| {
                Error::corrupt("index", format!("object {hash} has unknown kind {kind}"))
            })?;
            let compression = if comp == 0 {
                Compression::Raw
            } else {
                Compression::Zstd
            };
            Ok(Location {
                pack,
                entry: Entry {
                    hash: *hash,
                    kind,
                    compression,
                    raw_len: raw as u32,
                    stored_len: stored as u32,
                    offset: offset as u64,
                },
            })
        })
        .transpose()
    }

    /// Locations of many objects in one read transaction (one snapshot, one lock round trip
    /// instead of one per object).
    pub fn locate_many(&self, hashes: &[Hash]) -> Result<Vec<Option<Location>>> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.sql("begin read"))?;
        let out = hashes
            .iter()
            .map(|h| self.locate(h))
            .collect::<Result<Vec<_>>>()?;
        tx.finish().map_err(self.sql("end read"))?;
        Ok(out)
    }

    /// True when the index knows `hash`.
    pub fn contains(&self, hash: &Hash) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM objects WHERE hash = ?1")
            .map_err(self.sql("prepare contains"))?;
        st.exists([&hash.0[..]]).map_err(self.sql("contains"))
    }

    /// The stat-cache row for an absolute path.
    pub fn stat(&self, path: &str) -> Result<Option<StatEntry>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT dev, ino, size, mtime_ns, ctime_ns, hash, trusted FROM stat_cache WHERE path = ?1")
            .map_err(self.sql("prepare stat"))?;
        st.query_row([path], stat_row)
            .optional()
            .map_err(self.sql("read stat cache"))
    }

    /// Stat-cache rows for every path strictly under directory `dir` (absolute).
    pub fn stats_under(&self, dir: &str) -> Result<Vec<(String, StatEntry)>> {
        let lo = format!("{}/", dir.trim_end_matches('/'));
        let hi = format!("{}0", dir.trim_end_matches('/'));
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, hash, trusted, path FROM stat_cache
                 WHERE path >= ?1 AND path < ?2 ORDER BY path",
            )
            .map_err(self.sql("prepare stats_under"))?;
        let rows = st
            .query_map([lo, hi], |r| Ok((r.get::<_, String>(7)?, stat_row(r)?)))
            .map_err(self.sql("stats under"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("stats under"))
    }

    /// Applies one operation's results atomically.
    pub fn commit(&mut self, c: &Commit) -> Result<()> {
        if c.is_empty() {
            // Nothing to write: not even a write lock, so an operation with nothing to
            // record (e.g. `gc --yes` with nothing dead) also works on a full disk.
            return Ok(());
        }
        let (path, db) = (self.path.clone(), self.raw());
        let sql = |c: &'static str| {
            let path = &path;
            move |e| classify(path, db, c, e)
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin commit"))?;
        // Under the write lock, every new pack must still be on disk: a writer whose commit
        // failed unlinks the packs it renamed (`discard_unindexed_packs`) under this same lock,
        // and an identical pack (same content, same name) renamed by another writer would
        // otherwise be indexed after that unlink. Failing here loses nothing: the packs are
        // not named yet.
        if let Some(dir) = &self.packs_dir {
            for p in &c.packs {
                let f = crate::engine::pack::pack_path(dir, &p.id);
                if !f.is_file() {
                    return Err(Error::Busy(format!(
                        "pack {} vanished before it was indexed (a concurrent writer of the same \
                         content failed and removed it); nothing was committed, run the command again",
                        f.display()
                    )));
                }
            }
        }
        if c.reset {
            tx.execute_batch(
                "DELETE FROM objects; DELETE FROM packs; DELETE FROM roots;
                 DELETE FROM run_entries; DELETE FROM run_parts; DELETE FROM runs;",
            )
            .map_err(sql("clear for reindex"))?;
        }
        {
            let mut del_obj = tx
                .prepare_cached(
                    "DELETE FROM objects WHERE pack = (SELECT id FROM packs WHERE hash = ?1)",
                )
                .map_err(sql("prepare delete objects"))?;
            let mut del_pack = tx
                .prepare_cached("DELETE FROM packs WHERE hash = ?1")
                .map_err(sql("prepare delete pack"))?;
            for p in &c.remove_packs {
                del_obj.execute([&p.0[..]]).map_err(sql("delete objects"))?;
                del_pack.execute([&p.0[..]]).map_err(sql("delete pack"))?;
            }
            let mut del_stat = tx
                .prepare_cached("DELETE FROM stat_cache WHERE path = ?1")
                .map_err(sql("prepare forget"))?;
            for p in &c.forget {
                del_stat.execute([p]).map_err(sql("forget stat"))?;
            }
        }
        {
            let mut ins_pack = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO packs (hash, size, created_ns) VALUES (?1, ?2, ?3)",
                )
                .map_err(sql("prepare pack insert"))?;
            let mut pack_id = tx
                .prepare_cached("SELECT id FROM packs WHERE hash = ?1")
                .map_err(sql("prepare pack id"))?;
            let mut ins_obj = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO objects (hash, kind, pack, offset, stored_len, raw_len, compression)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql("prepare object insert"))?;
            for p in &c.packs {
                ins_pack
                    .execute(params![
                        &p.id.0[..],
                        p.size as i64,
                        crate::engine::util::now_ns()
                    ])
                    .map_err(sql("insert pack"))?;
                let id: i64 = pack_id
                    .query_row([&p.id.0[..]], |r| r.get(0))
                    .map_err(sql("pack id"))?;
                for e in &p.entries {
                    ins_obj
                        .execute(params![
                            &e.hash.0[..],
                            e.kind as u8,
                            id,
                            e.offset as i64,
                            i64::from(e.stored_len),
                            i64::from(e.raw_len),
                            e.compression as u8
                        ])
                        .map_err(sql("insert object"))?;
                }
            }
            let mut ins_root = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO roots (path, kind, hash, size, time_ns, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql("prepare root upsert"))?;
            for r in &c.roots {
                ins_root
                    .execute(params![
                        r.path,
                        r.kind,
                        &r.hash.0[..],
                        r.size as i64,
                        r.time_ns,
                        &r.record.0[..]
                    ])
                    .map_err(sql("upsert root"))?;
            }
            let mut del_root = tx
                .prepare_cached("DELETE FROM roots WHERE record = ?1")
                .map_err(sql("prepare root delete"))?;
            for r in &c.drop_roots {
                del_root.execute([&r.0[..]]).map_err(sql("delete root"))?;
            }
            let mut ins_stat = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, hash, trusted)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql("prepare stat upsert"))?;
            for (path, s) in &c.stats {
                ins_stat
                    .execute(params![
                        path,
                        s.dev as i64,
                        s.ino as i64,
                        s.size as i64,
                        s.mtime_ns,
                        s.ctime_ns,
                        &s.hash.0[..],
                        s.trusted
                    ])
                    .map_err(sql("upsert stat"))?;
            }
        }
        for p in &c.run_parts {
            let sealed: Option<Option<i64>> = tx
                .query_row(
                    "SELECT sealed_ns FROM runs WHERE run_id = ?1",
                    [&p.run_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql("read run"))?;
            if let Some(Some(_)) = sealed {
                return Err(Error::RunSealed(p.run_id.clone()));
            }
            tx.execute(
                "INSERT OR IGNORE INTO runs (run_id, workflow, created_ns) VALUES (?1, ?2, ?3)",
                params![p.run_id, p.workflow, p.time_ns],
            )
            .map_err(sql("insert run"))?;
            tx.execute(
                "UPDATE runs SET created_ns = min(created_ns, ?2) WHERE run_id = ?1",
                params![p.run_id, p.time_ns],
            )
            .map_err(sql("update run"))?;
            let fresh = tx
                .execute(
                    "INSERT OR IGNORE INTO run_parts (record, run_id, job_id, time_ns) VALUES (?1, ?2, ?3, ?4)",
                    params![&p.record.0[..], p.run_id, p.job_id, p.time_ns],
                )
                .map_err(sql("insert run part"))?;
            if fresh == 0 {
                continue;
            }
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO run_entries (record, run_id, job_id, role, lfn, path, kind, hash, size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sql("prepare run entry"))?;
            for (role, lfn, path, kind, hash, size) in &p.entries {
                ins.execute(params![
                    &p.record.0[..],
                    p.run_id,
                    p.job_id,
                    role,
                    lfn,
                    path,
                    kind,
                    &hash.0[..],
                    *size as i64
                ])
                .map_err(sql("insert run entry"))?;
            }
        }
        for s in &c.seals {
            let mut now: Vec<Vec<u8>> = tx
                .prepare("SELECT record FROM run_parts WHERE run_id = ?1 ORDER BY record")
                .and_then(|mut st| st.query_map([&s.run_id], |r| r.get(0))?.collect())
                .map_err(sql("read run parts"))?;
            let mut want: Vec<Vec<u8>> = s
                .parts
                .as_ref()
                .map(|p| p.iter().map(|h| h.0.to_vec()).collect())
                .unwrap_or_else(|| now.clone());
            now.sort();
            want.sort();
            if now != want {
                return Err(Error::Busy(format!(
                    "run {} received new records while sealing; seal again",
                    s.run_id
                )));
            }
            tx.execute(
                "INSERT OR IGNORE INTO runs (run_id, workflow, created_ns) VALUES (?1, ?2, ?3)",
                params![s.run_id, s.workflow, s.sealed_ns],
            )
            .map_err(sql("insert run"))?;
            tx.execute(
                "UPDATE runs SET sealed_ns = ?2, snapshot = ?3 WHERE run_id = ?1 AND sealed_ns IS NULL",
                params![s.run_id, s.sealed_ns, &s.snapshot.0[..]],
            )
            .map_err(sql("seal run"))?;
        }
        tx.commit().map_err(sql("commit"))
    }

    /// Runs, newest first, optionally of one workflow.
    pub fn runs(&self, workflow: Option<&str>) -> Result<Vec<RunRow>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT run_id, workflow, created_ns, sealed_ns, snapshot FROM runs
                 WHERE ?1 IS NULL OR workflow = ?1 ORDER BY created_ns DESC, run_id",
            )
            .map_err(self.sql("prepare runs"))?;
        let rows = st
            .query_map([workflow], |r| {
                let snap: Option<Vec<u8>> = r.get(4)?;
                Ok(RunRow {
                    run_id: r.get(0)?,
                    workflow: r.get(1)?,
                    created_ns: r.get(2)?,
                    sealed_ns: r.get(3)?,
                    snapshot: snap.map(hash_col).transpose()?,
                })
            })
            .map_err(self.sql("runs"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("runs"))
    }

    /// The partial manifests of a run.
    pub fn run_parts(&self, run_id: &str) -> Result<Vec<Hash>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT record FROM run_parts WHERE run_id = ?1 ORDER BY time_ns, record",
            )
            .map_err(self.sql("prepare run parts"))?;
        let rows = st
            .query_map([run_id], |r| hash_col(r.get(0)?))
            .map_err(self.sql("run parts"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("run parts"))
    }

    /// Every run part and snapshot (roots for gc).
    pub fn run_objects(&self) -> Result<Vec<Hash>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT record FROM run_parts UNION SELECT snapshot FROM runs WHERE snapshot IS NOT NULL")
            .map_err(self.sql("prepare run objects"))?;
        let rows = st
            .query_map([], |r| hash_col(r.get(0)?))
            .map_err(self.sql("run objects"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("run objects"))
    }

    /// (run id, workflow, job id, role, path) of every run entry holding `hash`.
    pub fn runs_with_hash(&self, hash: &Hash) -> Result<Vec<[String; 5]>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT e.run_id, r.workflow, e.job_id, e.role, e.path FROM run_entries e
                 JOIN runs r ON r.run_id = e.run_id WHERE e.hash = ?1 ORDER BY r.created_ns, e.run_id, e.job_id",
            )
            .map_err(self.sql("prepare lineage"))?;
        let rows = st
            .query_map([&hash.0[..]], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
            })
            .map_err(self.sql("lineage"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("lineage"))
    }

    /// The environment record already captured for a job of a run, if any.
    pub fn environment_of(&self, run_id: &str, job_id: &str) -> Result<Option<Hash>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT hash FROM run_entries WHERE run_id = ?1 AND job_id = ?2 AND role = 'environment' LIMIT 1",
            )
            .map_err(self.sql("prepare environment_of"))?;
        st.query_row([run_id, job_id], |r| hash_col(r.get(0)?))
            .optional()
            .map_err(self.sql("environment_of"))
    }

    /// (role, lfn, hash, size) of every entry one job recorded into a run, in recording order
    /// (what the job's MLflow run is told about).
    pub fn job_entries(
        &self,
        run_id: &str,
        job_id: &str,
    ) -> Result<Vec<(String, String, Hash, u64)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT role, lfn, hash, size FROM run_entries WHERE run_id = ?1 AND job_id = ?2 ORDER BY rowid",
            )
            .map_err(self.sql("prepare job_entries"))?;
        let rows = st
            .query_map([run_id, job_id], |r| {
                Ok((r.get(0)?, r.get(1)?, hash_col(r.get(2)?)?, r.get(3)?))
            })
            .map_err(self.sql("job_entries"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("job_entries"))
    }

    /// (files, bytes, jobs) recorded per run.
    pub fn run_counts(&self) -> Result<std::collections::HashMap<String, (u64, u64, u64)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT run_id, count(*), coalesce(sum(size), 0), count(DISTINCT job_id) FROM run_entries GROUP BY run_id",
            )
            .map_err(self.sql("prepare run counts"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? as u64,
                    ),
                ))
            })
            .map_err(self.sql("run counts"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("run counts"))
    }

    /// The current root of every tracked path (its newest version), by path.
    pub fn roots(&self) -> Result<Vec<Root>> {
        self.query_roots(
            "SELECT path, kind, hash, size, time_ns, record FROM roots r WHERE NOT EXISTS (
                SELECT 1 FROM roots n WHERE n.path = r.path
                  AND (n.time_ns > r.time_ns OR (n.time_ns = r.time_ns AND n.record > r.record)))
             ORDER BY path",
            None,
        )
    }

    /// Every version of every tracked path (or of `path`), newest first within a path.
    pub fn root_history(&self, path: Option<&str>) -> Result<Vec<Root>> {
        match path {
            None => self.query_roots(
                "SELECT path, kind, hash, size, time_ns, record FROM roots ORDER BY path, time_ns DESC, record DESC",
                None,
            ),
            Some(p) => self.query_roots(
                "SELECT path, kind, hash, size, time_ns, record FROM roots WHERE path = ?1
                 ORDER BY time_ns DESC, record DESC",
                Some(p),
            ),
        }
    }

    fn query_roots(&self, q: &str, arg: Option<&str>) -> Result<Vec<Root>> {
        let mut st = self
            .conn
            .prepare_cached(q)
            .map_err(self.sql("prepare roots"))?;
        let params: Vec<&dyn rusqlite::ToSql> = match &arg {
            Some(a) => vec![a as &dyn rusqlite::ToSql],
            None => vec![],
        };
        let rows = st
            .query_map(params.as_slice(), |r| {
                Ok(Root {
                    path: r.get(0)?,
                    kind: r.get(1)?,
                    hash: hash_col(r.get(2)?)?,
                    size: r.get::<_, i64>(3)? as u64,
                    time_ns: r.get(4)?,
                    record: hash_col(r.get(5)?)?,
                })
            })
            .map_err(self.sql("roots"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("roots"))
    }

    /// All packs: (id, size).
    pub fn packs(&self) -> Result<Vec<(Hash, u64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT hash, size FROM packs ORDER BY hash")
            .map_err(self.sql("prepare packs"))?;
        let rows = st
            .query_map([], |r| {
                Ok((hash_col(r.get(0)?)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.sql("packs"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("packs"))
    }

    /// Objects indexed in pack `pack`: (hash, kind, stored_len, raw_len).
    pub fn objects_in_pack(&self, pack: &Hash) -> Result<Vec<(Hash, u8, u64, u64)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT o.hash, o.kind, o.stored_len, o.raw_len FROM objects o JOIN packs p ON p.id = o.pack
                 WHERE p.hash = ?1",
            )
            .map_err(self.sql("prepare objects_in_pack"))?;
        let rows = st
            .query_map([&pack.0[..]], |r| {
                Ok((
                    hash_col(r.get(0)?)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .map_err(self.sql("objects_in_pack"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("objects_in_pack"))
    }

    /// SQLite's own check of the database file: `PRAGMA integrity_check` (every page, b-tree
    /// and index entry), or the cheaper `quick_check` (no index-vs-table comparison). Returns
    /// what it found wrong (at most 100 lines); empty means sound.
    pub fn check(&self, thorough: bool) -> Result<Vec<String>> {
        let q = if thorough {
            "PRAGMA integrity_check(100)"
        } else {
            "PRAGMA quick_check(100)"
        };
        let mut st = self.conn.prepare(q).map_err(self.sql("prepare check"))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.sql("integrity check"))?;
        let lines: Vec<String> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(self.sql("integrity check"))?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    /// Every object row naming pack `pack`, as it is stored (kind and compression as raw
    /// numbers, so that a damaged value is seen rather than mapped).
    pub fn object_rows(&self, pack: &Hash) -> Result<Vec<ObjectRow>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT o.hash, o.kind, o.offset, o.stored_len, o.raw_len, o.compression
                 FROM objects o JOIN packs p ON p.id = o.pack WHERE p.hash = ?1",
            )
            .map_err(self.sql("prepare object rows"))?;
        let rows = st
            .query_map([&pack.0[..]], |r| {
                Ok(ObjectRow {
                    hash: hash_col(r.get(0)?)?,
                    kind: r.get(1)?,
                    offset: r.get(2)?,
                    stored_len: r.get(3)?,
                    raw_len: r.get(4)?,
                    compression: r.get(5)?,
                })
            })
            .map_err(self.sql("object rows"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("object rows"))
    }

    /// How many object rows name a pack id that has no row in `packs`.
    pub fn dangling_objects(&self) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM objects WHERE pack NOT IN (SELECT id FROM packs)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql("dangling objects"))
    }

    /// Every stat-cache row (carried over by a rebuild).
    pub fn stat_rows(&self) -> Result<Vec<(String, StatEntry)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, hash, trusted, path FROM stat_cache",
            )
            .map_err(self.sql("prepare stat rows"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(7)?, stat_row(r)?)))
            .map_err(self.sql("stat rows"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("stat rows"))
    }

    /// Unlinks those of `packs` (files this process renamed into place, named by their id)
    /// that the index does not name, holding the index's write lock so that no commit naming
    /// one of them can interleave (see the check in [`Index::commit`]). Best effort: a pack
    /// that cannot be checked or removed is left for `gc`, which removes unindexed packs.
    pub(crate) fn discard_unindexed(&mut self, packs: &[Hash]) {
        let Some(dir) = self.packs_dir.clone() else {
            return;
        };
        if packs.is_empty() {
            return;
        }
        let Ok(tx) = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        else {
            return;
        };
        for id in packs {
            let indexed = tx
                .prepare_cached("SELECT 1 FROM packs WHERE hash = ?1")
                .and_then(|mut st| st.exists([&id.0[..]]));
            if indexed == Ok(false) {
                let _ = std::fs::remove_file(crate::engine::pack::pack_path(&dir, id));
            }
        }
        // Nothing was written: ending the transaction only releases the lock.
        let _ = tx.finish();
    }

    /// Totals: (objects, chunks, stored bytes of objects, raw bytes of objects, pack bytes).
    pub fn totals(&self) -> Result<(u64, u64, u64, u64, u64)> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM objects),
                        (SELECT count(*) FROM objects WHERE kind = 1),
                        (SELECT coalesce(sum(stored_len), 0) FROM objects),
                        (SELECT coalesce(sum(raw_len), 0) FROM objects),
                        (SELECT coalesce(sum(size), 0) FROM packs)",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? as u64,
                        r.get::<_, i64>(4)? as u64,
                    ))
                },
            )
            .map_err(self.sql("totals"))
    }

    /// A path whose stat-cache row holds `hash` (a candidate source for reflinks).
    pub fn path_with_hash(&self, hash: &Hash) -> Result<Option<(String, StatEntry)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, hash, trusted, path FROM stat_cache
                 WHERE hash = ?1 AND trusted = 1 LIMIT 1",
            )
            .map_err(self.sql("prepare path_with_hash"))?;
        st.query_row([&hash.0[..]], |r| {
            Ok((r.get::<_, String>(7)?, stat_row(r)?))
        })
        .optional()
        .map_err(self.sql("path with hash"))
    }

    /// Bytes of unique chunk data (uncompressed).
    pub fn chunk_bytes(&self) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT coalesce(sum(raw_len), 0) FROM objects WHERE kind = 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(self.sql("chunk bytes"))
    }

    /// Object hashes whose hex form starts with `prefix` (at most `limit`).
    pub fn by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Hash>> {
        let lo = format!("{prefix:0<64}").parse::<Hash>()?;
        let hi = format!("{prefix:f<64}").parse::<Hash>()?;
        let mut st = self
            .conn
            .prepare_cached("SELECT hash FROM objects WHERE hash >= ?1 AND hash <= ?2 AND kind IN (2, 3) LIMIT ?3")
            .map_err(self.sql("prepare prefix"))?;
        let rows = st
            .query_map(params![&lo.0[..], &hi.0[..], limit as i64], |r| {
                hash_col(r.get(0)?)
            })
            .map_err(self.sql("prefix"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("prefix"))
    }
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
