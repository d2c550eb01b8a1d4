//! The run tables: runs, their partial manifests and seals, entries by hash (lineage), environments and counts.

use super::*;

impl Index {
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

    /// The distinct (run, job, role, path, hash, size) of every run's entries (what the
    /// run layer counts jobs, files and records from).
    pub fn run_count_rows(&self) -> Result<Vec<RunCountRow>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT run_id, job_id, role, path, hash, size FROM run_entries",
            )
            .map_err(self.sql("prepare run counts"))?;
        let rows = st
            .query_map([], |r| {
                Ok(RunCountRow {
                    run_id: r.get(0)?,
                    job_id: r.get(1)?,
                    role: r.get(2)?,
                    path: r.get(3)?,
                    hash: hash_col(r.get(4)?)?,
                    size: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(self.sql("run counts"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("run counts"))
    }

    /// Bytes of every run's files, each distinct (path, version) of a run counted once per
    /// run, and the number of runs.
    pub fn run_file_bytes(&self) -> Result<(u64, u64)> {
        self.conn
            .query_row(
                "SELECT (SELECT coalesce(sum(size), 0) FROM
                            (SELECT DISTINCT run_id, path, hash, size FROM run_entries)),
                        (SELECT count(*) FROM runs)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.sql("run file bytes"))
    }
}

/// One distinct entry of a run, as [`Index::run_count_rows`] returns it.
#[derive(Clone, Debug)]
pub struct RunCountRow {
    /// Run ID.
    pub run_id: String,
    /// The job that recorded it.
    pub job_id: String,
    /// Its role, as stored.
    pub role: String,
    /// Its path in the run.
    pub path: String,
    /// Its version.
    pub hash: Hash,
    /// Its size in bytes.
    pub size: u64,
}
