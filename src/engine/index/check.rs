//! Integrity and totals: SQLite's own checks, rows per pack, dangling objects, and the sums `stats` reports.

use std::collections::HashMap;

use super::*;

impl Index {
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

    /// How many object rows name each pack (one scan; memory per pack, not per object).
    pub fn rows_per_pack(&self) -> Result<HashMap<Hash, u64>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT p.hash, count(*) FROM objects o JOIN packs p ON p.id = o.pack GROUP BY o.pack",
            )
            .map_err(self.sql("prepare rows per pack"))?;
        let rows = st
            .query_map([], |r| {
                Ok((hash_col(r.get(0)?)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.sql("rows per pack"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("rows per pack"))
    }

    /// The object rows among those of `hashes` (looked up by hash) that name pack `pack`, as
    /// they are stored (kind and compression as raw numbers, so that a damaged value is seen
    /// rather than mapped).
    pub fn rows_in_pack_of(&self, pack: &Hash, hashes: &[Hash]) -> Result<Vec<ObjectRow>> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.sql("begin read"))?;
        let id: Option<i64> = self
            .conn
            .query_row("SELECT id FROM packs WHERE hash = ?1", [&pack.0[..]], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql("pack id"))?;
        let mut out = Vec::new();
        if let Some(id) = id {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT hash, kind, offset, stored_len, raw_len, compression FROM objects
                     WHERE hash = ?1 AND pack = ?2",
                )
                .map_err(self.sql("prepare object rows"))?;
            for h in hashes {
                let row = st
                    .query_row(params![&h.0[..], id], |r| object_row(r, 0))
                    .optional()
                    .map_err(self.sql("object rows"))?;
                out.extend(row);
            }
        }
        tx.finish().map_err(self.sql("end read"))?;
        Ok(out)
    }

    /// Every object row naming pack `pack`, as it is stored. A scan of all rows (they have no
    /// index by pack since migration 4): `verify` calls it only for a pack that more rows
    /// name than its table of contents finds.
    pub fn object_rows(&self, pack: &Hash) -> Result<Vec<ObjectRow>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT o.hash, o.kind, o.offset, o.stored_len, o.raw_len, o.compression
                 FROM objects o JOIN packs p ON p.id = o.pack WHERE p.hash = ?1",
            )
            .map_err(self.sql("prepare object rows"))?;
        let rows = st
            .query_map([&pack.0[..]], |r| object_row(r, 0))
            .map_err(self.sql("object rows"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("object rows"))
    }

    /// Totals: (objects, chunks, stored bytes of objects (a group frame once), raw bytes of
    /// objects, pack bytes).
    pub fn totals(&self) -> Result<(u64, u64, u64, u64, u64)> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM objects),
                        (SELECT count(*) FROM objects WHERE kind = 1),
                        (SELECT coalesce(sum(n), 0) FROM (SELECT max(stored_len) AS n
                            FROM objects GROUP BY pack, offset)),
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
}

/// An object row from columns `at..at + 6` (hash, kind, offset, stored_len, raw_len,
/// compression).
fn object_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        hash: hash_col(r.get(at)?)?,
        kind: r.get(at + 1)?,
        offset: r.get(at + 2)?,
        stored_len: r.get(at + 3)?,
        raw_len: r.get(at + 4)?,
        compression: r.get(at + 5)?,
    })
}
