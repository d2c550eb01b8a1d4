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

    /// Every object row, by the pack it names, as it is stored (kind and compression as raw
    /// numbers, so that a damaged value is seen rather than mapped). One scan: rows have no
    /// index by pack (migration 4).
    pub fn object_rows_by_pack(&self) -> Result<HashMap<Hash, Vec<ObjectRow>>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT p.hash, o.hash, o.kind, o.offset, o.stored_len, o.raw_len, o.compression
                 FROM objects o JOIN packs p ON p.id = o.pack",
            )
            .map_err(self.sql("prepare object rows"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    hash_col(r.get(0)?)?,
                    ObjectRow {
                        hash: hash_col(r.get(1)?)?,
                        kind: r.get(2)?,
                        offset: r.get(3)?,
                        stored_len: r.get(4)?,
                        raw_len: r.get(5)?,
                        compression: r.get(6)?,
                    },
                ))
            })
            .map_err(self.sql("object rows"))?;
        let mut by_pack: HashMap<Hash, Vec<ObjectRow>> = HashMap::new();
        for row in rows {
            let (pack, row) = row.map_err(self.sql("object rows"))?;
            by_pack.entry(pack).or_default().push(row);
        }
        Ok(by_pack)
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
