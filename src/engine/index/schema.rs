//! Opening the index: the database file, its pragmas, the schema migrations and the checks of its version and header.

use super::*;

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

    pub(super) fn open_with(path: &Path, exclusive: bool) -> Result<Index> {
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
    pub(super) fn raw(&self) -> *mut ffi::sqlite3 {
        // SAFETY: only the pointer is taken here; it is dereferenced (by SQLite) only while
        // `self.conn` is alive, inside `classify` called from this index's own methods.
        unsafe { self.conn.handle() }
    }

    /// Maps a SQLite error of this index (see [`classify`]).
    pub(super) fn sql(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        let db = self.raw();
        move |e| classify(&self.path, db, context, e)
    }

    pub(super) fn migrate(&mut self) -> Result<()> {
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

    pub(super) fn check_version(&self, v: i64) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_row(conn: &Connection, path: &str, size: u64, hash: u8) {
        conn.execute(
            "INSERT INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, hash, trusted)
             VALUES (?1, 1, 2, ?2, 3, 4, ?3, 1)",
            params![path, size, vec![hash; 32]],
        )
        .expect("insert");
    }

    /// An index of schema 2 is migrated in place: its stat cache keeps every row, and only
    /// files of at least 1 MiB are indexed (and found) by hash, through the partial index
    /// (migration 3's, rebuilt on the new table by migration 5).
    #[test]
    fn migration_3_indexes_only_large_files_by_hash() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("migration 1");
            conn.execute_batch(MIGRATIONS[1]).expect("migration 2");
            conn.pragma_update(None, "user_version", 2)
                .expect("version");
            stat_row(&conn, "/w/small.txt", 100, 7);
            stat_row(&conn, "/w/big.bin", STAT_BY_HASH_MIN, 9);
        }
        let idx = Index::open(&path).expect("migrate");
        let v: i64 = idx
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, i64::from(SCHEMA_VERSION));
        let names: Vec<String> = idx
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'stat_files' AND type = 'index'",
            )
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert!(
            names.contains(&"stat_files_large_by_hash".to_string()),
            "{names:?}"
        );
        let old_index: i64 = idx
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'stat_cache%'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(old_index, 0);
        assert_eq!(
            idx.stat("/w/small.txt").expect("stat").map(|s| s.size),
            Some(100)
        );
        let big = idx
            .large_path_with_hash(&Hash([9; 32]))
            .expect("lookup")
            .map(|(p, _)| p);
        assert_eq!(big.as_deref(), Some("/w/big.bin"));
        assert!(idx
            .large_path_with_hash(&Hash([7; 32]))
            .expect("lookup")
            .is_none());
        let plan: Vec<String> = idx
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                super::queries::LARGE_PATH_WITH_HASH
            ))
            .expect("prepare")
            .query_map([vec![9u8; 32]], |r| r.get(3))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert!(
            plan.iter().any(|p| p.contains("stat_files_large_by_hash")),
            "{plan:?}"
        );
    }

    /// An index of schema 3 loses its index of objects by pack, keeps every row, and the
    /// queries that used that index still answer by pack: rows and row counts by pack, every
    /// hash, rows by hash within a pack, and a commit removing two packs deletes exactly
    /// their rows.
    #[test]
    fn migration_4_drops_the_index_by_pack() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            for m in &MIGRATIONS[..3] {
                conn.execute_batch(m).expect("migration");
            }
            conn.pragma_update(None, "user_version", 3)
                .expect("version");
            for p in 1..=3u8 {
                conn.execute(
                    "INSERT INTO packs (id, hash, size, created_ns) VALUES (?1, ?2, 100, 0)",
                    params![p, vec![p; 32]],
                )
                .expect("pack");
                for o in 0..4u8 {
                    conn.execute(
                        "INSERT INTO objects (hash, kind, pack, offset, stored_len, raw_len, compression)
                         VALUES (?1, 1, ?2, ?3, 10, 10, 0)",
                        params![vec![p * 16 + o; 32], p, i64::from(o) * 10],
                    )
                    .expect("object");
                }
            }
        }
        let mut idx = Index::open(&path).expect("migrate");
        let by_pack_index: i64 = idx
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'objects_by_pack'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(by_pack_index, 0);
        let counts = idx.rows_per_pack().expect("counts");
        assert_eq!(counts.len(), 3);
        for p in 1..=3u8 {
            assert_eq!(counts[&Hash([p; 32])], 4, "pack {p}");
            let mut hashes: Vec<Hash> = idx
                .object_rows(&Hash([p; 32]))
                .expect("rows")
                .iter()
                .map(|r| r.hash)
                .collect();
            hashes.sort();
            let want: Vec<Hash> = (0..4u8).map(|o| Hash([p * 16 + o; 32])).collect();
            assert_eq!(hashes, want, "pack {p}");
            let found = idx.rows_in_pack_of(&Hash([p; 32]), &want).expect("by hash");
            assert_eq!(found.len(), 4, "pack {p}");
            let other = Hash([p % 3 + 1; 32]);
            assert!(idx
                .rows_in_pack_of(&other, &want)
                .expect("by hash")
                .is_empty());
        }
        assert_eq!(idx.object_hashes().expect("hashes").len(), 12);
        idx.commit(&Commit {
            remove_packs: vec![Hash([1; 32]), Hash([3; 32]), Hash([9; 32])],
            ..Commit::default()
        })
        .expect("commit");
        let counts = idx.rows_per_pack().expect("counts");
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![(Hash([2; 32]), 4)]
        );
        assert_eq!(idx.object_rows(&Hash([2; 32])).expect("rows").len(), 4);
        let left: i64 = idx
            .conn
            .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 4);
        assert_eq!(idx.packs().expect("packs").len(), 1);
    }

    /// An index of schema 4 moves its stat cache to (directory, name) rows: every row keeps
    /// its path and fields, `stats_under` still finds exactly the paths strictly under a
    /// directory (not a sibling sharing its prefix), and commits add rows to known and new
    /// directories and drop a directory with its last forgotten file.
    #[test]
    fn migration_5_keys_the_stat_cache_by_directory_and_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("index.sqlite");
        let paths = [
            "/w/a.txt",
            "/w/sub/b.txt",
            "/w/sub/deeper/c é.txt",
            "/w2/d.txt",
            "/top",
            "relative",
        ];
        {
            let conn = Connection::open(&path).expect("open");
            for m in &MIGRATIONS[..4] {
                conn.execute_batch(m).expect("migration");
            }
            conn.pragma_update(None, "user_version", 4)
                .expect("version");
            for (i, p) in paths.iter().enumerate() {
                stat_row(&conn, p, 10 + i as u64, i as u8);
            }
        }
        let mut idx = Index::open(&path).expect("migrate");
        for (i, p) in paths.iter().enumerate() {
            let s = idx.stat(p).expect("stat").expect(p);
            assert_eq!(
                (s.size, s.hash, s.ino),
                (10 + i as u64, Hash([i as u8; 32]), 2)
            );
        }
        assert!(idx.stat("/w/sub").expect("stat").is_none());
        let mut all: Vec<String> = idx
            .stat_rows()
            .expect("rows")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        all.sort();
        let mut want: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        want.sort();
        assert_eq!(all, want);
        let under = |idx: &Index, d: &str| {
            let mut v: Vec<String> = idx
                .stats_under(d)
                .expect("under")
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            under(&idx, "/w"),
            ["/w/a.txt", "/w/sub/b.txt", "/w/sub/deeper/c é.txt"]
        );
        assert_eq!(
            under(&idx, "/w/sub/"),
            ["/w/sub/b.txt", "/w/sub/deeper/c é.txt"]
        );
        let entry = |n: u8| StatEntry {
            dev: 5,
            ino: 6,
            size: 7,
            mtime_ns: 8,
            ctime_ns: 9,
            hash: Hash([n; 32]),
            trusted: true,
        };
        idx.commit(&Commit {
            forget: vec!["/w/sub/deeper/c é.txt".into(), "/w2/d.txt".into()],
            stats: vec![
                ("/w/sub/e.txt".into(), entry(40)),
                ("/w/a.txt".into(), entry(41)),
                ("/w3/f.txt".into(), entry(42)),
            ],
            ..Commit::default()
        })
        .expect("commit");
        assert_eq!(under(&idx, "/w/sub"), ["/w/sub/b.txt", "/w/sub/e.txt"]);
        assert_eq!(idx.stat("/w/a.txt").expect("stat"), Some(entry(41)));
        assert_eq!(idx.stat("/w3/f.txt").expect("stat"), Some(entry(42)));
        assert!(idx.stat("/w2/d.txt").expect("stat").is_none());
        let dirs: Vec<String> = idx
            .conn
            .prepare("SELECT path FROM stat_dirs ORDER BY path")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(dirs, ["", "/", "/w/", "/w/sub/", "/w3/"]);
    }
}
