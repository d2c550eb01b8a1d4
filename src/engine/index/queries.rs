//! Lookups: where an object is, the stat cache, roots and their history, packs and their objects, hash prefixes.

use super::*;

/// [`Index::large_path_with_hash`]: its `size` bound is migration 5's literal, so SQLite uses
/// the partial index `stat_files_large_by_hash`.
pub(super) const LARGE_PATH_WITH_HASH: &str =
    "SELECT f.dev, f.ino, f.size, f.mtime_ns, f.ctime_ns, f.hash, f.trusted, d.path || f.name
     FROM stat_files f JOIN stat_dirs d ON d.id = f.dir
     WHERE f.hash = ?1 AND f.trusted = 1 AND f.size >= 1048576 LIMIT 1";

impl Index {
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
            let compression = Compression::from_u8(comp).ok_or_else(|| {
                Error::corrupt(
                    "index",
                    format!("object {hash} has unknown compression {comp}"),
                )
            })?;
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

    /// For each of `hashes`, whether the index knows it, in one read transaction. They are
    /// looked up in hash order, so each b-tree page is read once, not once per lookup.
    pub fn contains_many(&self, hashes: &[Hash]) -> Result<Vec<bool>> {
        let mut order: Vec<usize> = (0..hashes.len()).collect();
        order.sort_unstable_by_key(|&i| hashes[i]);
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.sql("begin read"))?;
        let mut out = vec![false; hashes.len()];
        for i in order {
            out[i] = self.contains(&hashes[i])?;
        }
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
            .prepare_cached(&format!(
                "SELECT {STAT_COLUMNS} FROM stat_dirs d JOIN stat_files f ON f.dir = d.id
                 WHERE d.path = ?1 AND f.name = ?2"
            ))
            .map_err(self.sql("prepare stat"))?;
        let (dir, name) = stat_key(path);
        st.query_row([dir, name], stat_row)
            .optional()
            .map_err(self.sql("read stat cache"))
    }

    /// Stat-cache rows for every path strictly under directory `dir` (absolute).
    pub fn stats_under(&self, dir: &str) -> Result<Vec<(String, StatEntry)>> {
        let lo = format!("{}/", dir.trim_end_matches('/'));
        let hi = format!("{}0", dir.trim_end_matches('/'));
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {STAT_COLUMNS} FROM stat_dirs d JOIN stat_files f ON f.dir = d.id
                 WHERE d.path >= ?1 AND d.path < ?2"
            ))
            .map_err(self.sql("prepare stats_under"))?;
        let rows = st
            .query_map([lo, hi], |r| Ok((r.get::<_, String>(7)?, stat_row(r)?)))
            .map_err(self.sql("stats under"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("stats under"))
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

    pub(super) fn query_roots(&self, q: &str, arg: Option<&str>) -> Result<Vec<Root>> {
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

    /// Every indexed object (one scan).
    pub fn object_hashes(&self) -> Result<Vec<Hash>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT o.hash FROM objects o JOIN packs p ON p.id = o.pack")
            .map_err(self.sql("prepare object hashes"))?;
        let rows = st
            .query_map([], |r| hash_col(r.get(0)?))
            .map_err(self.sql("object hashes"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("object hashes"))
    }

    /// Every stat-cache row (carried over by a rebuild).
    pub fn stat_rows(&self) -> Result<Vec<(String, StatEntry)>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {STAT_COLUMNS} FROM stat_dirs d JOIN stat_files f ON f.dir = d.id"
            ))
            .map_err(self.sql("prepare stat rows"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(7)?, stat_row(r)?)))
            .map_err(self.sql("stat rows"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("stat rows"))
    }

    /// A path whose stat-cache row holds `hash` (a candidate source for reflinks), among files
    /// of at least [`STAT_BY_HASH_MIN`] bytes (the only ones indexed by hash).
    pub fn large_path_with_hash(&self, hash: &Hash) -> Result<Option<(String, StatEntry)>> {
        let mut st = self
            .conn
            .prepare_cached(LARGE_PATH_WITH_HASH)
            .map_err(self.sql("prepare path_with_hash"))?;
        st.query_row([&hash.0[..]], |r| {
            Ok((r.get::<_, String>(7)?, stat_row(r)?))
        })
        .optional()
        .map_err(self.sql("path with hash"))
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
