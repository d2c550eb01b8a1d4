//! The one write path: a commit (new packs and objects, roots, stat-cache rows, run parts and seals) in one transaction.

use super::*;

impl Index {
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
            // Object rows have no index by pack (migration 4): the rows of every removed pack
            // go in one scan, by the packs' integer ids, before the packs themselves (rows
            // reference packs, and foreign keys are enforced).
            let mut pack_id = tx
                .prepare_cached("SELECT id FROM packs WHERE hash = ?1")
                .map_err(sql("prepare pack id"))?;
            let mut ids = Vec::new();
            for p in &c.remove_packs {
                let id: Option<i64> = pack_id
                    .query_row([&p.0[..]], |r| r.get(0))
                    .optional()
                    .map_err(sql("pack id"))?;
                ids.extend(id.map(|i| i.to_string()));
            }
            if !ids.is_empty() {
                tx.execute(
                    &format!("DELETE FROM objects WHERE pack IN ({})", ids.join(",")),
                    [],
                )
                .map_err(sql("delete objects"))?;
            }
            let mut del_pack = tx
                .prepare_cached("DELETE FROM packs WHERE hash = ?1")
                .map_err(sql("prepare delete pack"))?;
            for p in &c.remove_packs {
                del_pack.execute([&p.0[..]]).map_err(sql("delete pack"))?;
            }
            // A directory whose last file is forgotten goes with it.
            let mut del_stat = tx
                .prepare_cached(
                    "DELETE FROM stat_files
                     WHERE dir = (SELECT id FROM stat_dirs WHERE path = ?1) AND name = ?2",
                )
                .map_err(sql("prepare forget"))?;
            let mut del_dir = tx
                .prepare_cached(
                    "DELETE FROM stat_dirs WHERE path = ?1
                     AND NOT EXISTS (SELECT 1 FROM stat_files f WHERE f.dir = stat_dirs.id)",
                )
                .map_err(sql("prepare forget dir"))?;
            for p in &c.forget {
                let (dir, name) = stat_key(p);
                del_stat.execute([dir, name]).map_err(sql("forget stat"))?;
                del_dir.execute([dir]).map_err(sql("forget stat dir"))?;
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
            let mut ins_dir = tx
                .prepare_cached("INSERT OR IGNORE INTO stat_dirs (path) VALUES (?1)")
                .map_err(sql("prepare stat dir insert"))?;
            let mut dir_id = tx
                .prepare_cached("SELECT id FROM stat_dirs WHERE path = ?1")
                .map_err(sql("prepare stat dir id"))?;
            let mut ins_stat = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO stat_files (dir, name, dev, ino, size, mtime_ns, ctime_ns, hash, trusted)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sql("prepare stat upsert"))?;
            // Rows come directory by directory: the last directory's id is reused.
            let mut last: Option<(&str, i64)> = None;
            for (path, s) in &c.stats {
                let (dir, name) = stat_key(path);
                let id = match last {
                    Some((d, id)) if d == dir => id,
                    _ => {
                        ins_dir.execute([dir]).map_err(sql("insert stat dir"))?;
                        let id: i64 = dir_id
                            .query_row([dir], |r| r.get(0))
                            .map_err(sql("stat dir id"))?;
                        last = Some((dir, id));
                        id
                    }
                };
                ins_stat
                    .execute(params![
                        id,
                        name,
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
}
