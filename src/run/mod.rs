//! Workflow runs: every tracked file of a run, keyed by workflow name and run ID.
//!
//! Each `store add --role ...` invocation (one job) writes one *partial manifest* object
//! ([`RunPart`]) and commits its index rows in one transaction, so any number of jobs on any
//! number of processes record into one run without a shared file or a lock failure. `seal`
//! merges the partial manifests into one immutable *run snapshot* ([`RunSnapshot`]), marks the
//! run complete, and refuses further records. Both are JSON objects in packs (readable by a
//! person, rebuilt into the index by `reindex`), in their own hash domains.
//!
//! Layer: above the [workspace](crate::workspace) (recording is an `add` with a commit hook;
//! a run checkout restores through it) and the engine, whose `run_object` holds the run
//! objects' byte format. Here: record, seal, the snapshot, diff and lineage, run checkout, the
//! job environment ([`env`](mod@env)) and code in git ([`git`](mod@git), the only user of `git2`).

pub mod compare;
pub mod counts;
pub mod dag;
pub mod env;
pub mod git;
pub mod pending;
pub mod published;
pub mod record;

pub use compare::{JobComparison, RoleDiff, RunDiff};
pub use counts::RunCounts;
pub use pending::{PendingGit, PendingPush};

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Commit, RunRow, SealRow};
use crate::engine::store::{LockMode, Store};
use crate::engine::util::now_ns;

pub(crate) use crate::engine::run_object::{
    check_name, entry_refs, name_problem, parse_run_object,
};
pub use crate::engine::run_object::{
    new_run_id, valid_name, CodeVersion, Direction, Role, RunEntry, RunId, RunPart, RunSnapshot,
    RUN_FORMAT,
};
use crate::error::{Error, Result};
use crate::workspace::add::{AddOptions, Sink};
use crate::workspace::checkout::{CheckoutOptions, CheckoutReport, Restore};

/// Which run, and which job in it, a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunContext {
    /// Workflow name (Pegasus `PEGASUS_WF_LABEL`).
    pub workflow: String,
    /// Run ID (Pegasus `PEGASUS_WF_UUID`).
    pub run_id: String,
    /// Job ID (Pegasus `PEGASUS_DAG_JOB_ID`); `cli` when recorded by hand.
    pub job_id: String,
}

fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl RunContext {
    /// The run ID from `PEGASUS_WF_UUID` or `STORE_RUN_ID`, if set.
    pub fn run_id_from_env() -> Option<String> {
        first_env(&["PEGASUS_WF_UUID", "STORE_RUN_ID"])
    }

    /// Builds the context from flags, falling back to the variables Pegasus sets in every job
    /// (`PEGASUS_WF_LABEL`, `PEGASUS_WF_UUID`, `PEGASUS_DAG_JOB_ID`), then to the generic
    /// `STORE_WF_NAME`, `STORE_RUN_ID`, `STORE_JOB_ID`.
    pub fn resolve(
        wf: Option<String>,
        run: Option<String>,
        job: Option<String>,
    ) -> Result<RunContext> {
        let workflow = wf
            .or_else(|| first_env(&["PEGASUS_WF_LABEL", "STORE_WF_NAME"]))
            .ok_or_else(|| {
                Error::Invalid(
                    "no workflow name: give --wf or set PEGASUS_WF_LABEL / STORE_WF_NAME".into(),
                )
            })?;
        let run_id = run
            .or_else(|| first_env(&["PEGASUS_WF_UUID", "STORE_RUN_ID"]))
            .ok_or_else(|| {
                Error::Invalid("no run ID: give --run or set PEGASUS_WF_UUID / STORE_RUN_ID".into())
            })?;
        let job_id = job
            .or_else(|| first_env(&["PEGASUS_DAG_JOB_ID", "STORE_JOB_ID"]))
            .unwrap_or_else(|| "cli".to_string());
        check_name("workflow name", &workflow)?;
        check_name("run ID", &run_id)?;
        check_name("job ID", &job_id)?;
        Ok(RunContext {
            workflow,
            run_id,
            job_id,
        })
    }
}

/// Options to record the paths of an `add` into a run.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    /// The run and job.
    pub ctx: RunContext,
    /// The role of every path added (unless `roles` names another for it).
    pub role: Role,
    /// Per-path roles (`store track ROLE:PATH...`), by the path as given.
    pub roles: Vec<(PathBuf, Role)>,
    /// Logical name (only with a single path).
    pub lfn: Option<String>,
    /// Capture the job's environment if not yet captured for this run and job.
    pub capture_env: bool,
    /// The URL of the job's MLflow run, recorded as every entry's `mlflow_url`.
    pub mlflow_url: Option<String>,
    /// Whether the job read (before it ran) or wrote (after) every path recorded.
    pub direction: Option<Direction>,
}

/// A run with its summary, for `store runs`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The index row.
    #[serde(flatten)]
    pub run: RunRow,
    /// `sealed` or `open`.
    pub status: &'static str,
    /// Jobs, files, records and bytes ([`counts`](mod@counts) says what each counts).
    #[serde(flatten)]
    pub counts: RunCounts,
    /// What its seal left pending (a push to a remote, a code push to git), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingPush>,
}

/// Who consumed or produced some content.
#[derive(Clone, Debug, Serialize)]
pub struct LineageRow {
    /// Workflow name.
    pub workflow: String,
    /// Run ID.
    pub run_id: String,
    /// Job ID.
    pub job_id: String,
    /// Role of the content in the run.
    pub role: String,
    /// `consumed` or `produced` by the job; `recorded` for code, workflow and environment
    /// entries; `unknown` for an intermediate file recorded by hand.
    pub direction: String,
    /// Path recorded.
    pub path: String,
}

/// Where an added path is recorded (16.3): relative to the workspace `ws`, or, outside it,
/// under `_external/` by its whole absolute path, which is returned as the origin too.
fn recorded_path(abs: &Path, ws: &Path) -> (String, Option<String>) {
    let canon = std::fs::canonicalize(abs).unwrap_or_else(|_| abs.to_path_buf());
    match canon.strip_prefix(ws) {
        Ok(r) if !r.as_os_str().is_empty() => (r.to_string_lossy().into_owned(), None),
        _ => {
            let inner: PathBuf = canon
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            (
                Path::new(crate::engine::run_object::EXTERNAL_DIR)
                    .join(inner)
                    .to_string_lossy()
                    .into_owned(),
                Some(canon.to_string_lossy().into_owned()),
            )
        }
    }
}

/// Checks that a manifest path stays inside the checkout directory.
pub fn safe_relative(p: &str) -> Result<PathBuf> {
    let path = Path::new(p);
    let ok = !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(path.to_path_buf())
    } else {
        Err(Error::UnsafePath(p.to_string()))
    }
}

impl Store {
    /// Finds a run by exact ID or unique prefix.
    pub fn resolve_run(&self, id: &str) -> Result<RunRow> {
        let runs = self.index().runs(None)?;
        if let Some(r) = runs.iter().find(|r| r.run_id == id) {
            return Ok(r.clone());
        }
        let found: Vec<&RunRow> = runs.iter().filter(|r| r.run_id.starts_with(id)).collect();
        match found.as_slice() {
            [] => Err(Error::RunNotFound(format!(
                "no run with ID or prefix {id:?}"
            ))),
            [r] => Ok((*r).clone()),
            many => Err(Error::RunNotFound(format!(
                "run ID prefix {id:?} is ambiguous; candidates: {}",
                many.iter()
                    .map(|r| format!("{} ({})", r.run_id, r.workflow))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Adds `paths` and records them into a run with `spec.role`, in one commit.
    pub fn record(
        &self,
        paths: &[PathBuf],
        spec: RecordSpec,
        opts: &AddOptions,
    ) -> Result<crate::AddReport> {
        if spec.lfn.is_some() && paths.len() != 1 {
            return Err(Error::Invalid(
                "--lfn names one path; give one path per --lfn".into(),
            ));
        }
        let sealed = self
            .index()
            .runs(None)?
            .into_iter()
            .any(|r| r.run_id == spec.ctx.run_id && r.sealed_ns.is_some());
        if sealed {
            return Err(Error::RunSealed(spec.ctx.run_id.clone()));
        }
        let hook = |sink: &Sink<'_>,
                    added: &[(PathBuf, PathBuf, crate::Added)],
                    start_ns: i64,
                    commit: &mut Commit| {
            self.build_run_part(sink, &spec, added, start_ns, commit)
        };
        self.add_with(paths, opts, Some(&hook))
    }

    /// Builds one job's partial manifest inside an `add` (called before its commit).
    pub(crate) fn build_run_part(
        &self,
        sink: &Sink<'_>,
        spec: &RecordSpec,
        added: &[(PathBuf, PathBuf, crate::Added)],
        start_ns: i64,
        commit: &mut Commit,
    ) -> Result<()> {
        let ctx = &spec.ctx;
        let ws = self.workspace();
        let mut env = self.index().environment_of(&ctx.run_id, &ctx.job_id)?;
        let mut entries = Vec::new();
        if env.is_none() && spec.capture_env {
            let json = serde_json::to_vec_pretty(&crate::run::env::capture_cached(
                &self.dir().join("cache").join("env"),
            ))
            .map_err(|e| Error::Invalid(e.to_string()))?;
            let m = self.store_bytes(sink, &json)?;
            let path = format!("environment/{}.json", ctx.job_id);
            entries.push(RunEntry {
                role: Role::Environment,
                lfn: path.clone(),
                path,
                kind: "file".into(),
                hash: m,
                size: json.len() as u64,
                mtime_ns: start_ns,
                recorded_ns: start_ns,
                job_id: ctx.job_id.clone(),
                environment: Some(m),
                remote_urls: Vec::new(),
                mlflow_url: spec.mlflow_url.clone(),
                mode: Some(0o644),
                origin: None,
                direction: None,
            });
            env = Some(m);
        }
        for (given, abs, a) in added {
            let (rel, origin) = recorded_path(abs, &ws);
            safe_relative(&rel)?;
            let meta = std::fs::metadata(abs).ok();
            let mtime_ns = meta
                .as_ref()
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.mtime() * 1_000_000_000 + m.mtime_nsec()
                })
                .unwrap_or(0);
            let mode = meta.as_ref().filter(|m| m.is_file()).map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o7777
            });
            entries.push(RunEntry {
                role: spec
                    .roles
                    .iter()
                    .find(|(p, _)| p == given)
                    .map_or(spec.role, |(_, r)| *r),
                lfn: spec
                    .lfn
                    .clone()
                    .unwrap_or_else(|| given.to_string_lossy().into_owned()),
                path: rel,
                kind: a.kind.as_str().into(),
                hash: a.hash,
                size: a.size,
                mtime_ns,
                recorded_ns: start_ns,
                job_id: ctx.job_id.clone(),
                environment: env,
                remote_urls: Vec::new(),
                mlflow_url: spec.mlflow_url.clone(),
                mode,
                origin,
                direction: spec.direction,
            });
        }
        let part = RunPart {
            format: RUN_FORMAT,
            workflow: ctx.workflow.clone(),
            run_id: ctx.run_id.clone(),
            job_id: ctx.job_id.clone(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string()),
            time_ns: start_ns,
            entries,
        };
        let json = serde_json::to_vec(&part).map_err(|e| Error::Invalid(e.to_string()))?;
        let record = Hash::of(ObjectKind::RunPart, &json);
        sink.put(ObjectKind::RunPart, record, &json)?;
        commit.run_parts.push(part.index_row(record));
        Ok(())
    }

    /// Stores bytes as a file object (chunked like any file); returns the file hash.
    fn store_bytes(&self, sink: &Sink<'_>, data: &[u8]) -> Result<Hash> {
        let per_batch = crate::engine::chunker::chunk_stream(
            &mut &data[..],
            self.config().chunking,
            Path::new("<memory>"),
            |b| {
                (0..b.cuts.len())
                    .map(|i| {
                        let c = b.chunk(i);
                        let h = Hash::of(ObjectKind::Chunk, c);
                        sink.put(ObjectKind::Chunk, h, c)?;
                        Ok((h, c.len() as u32))
                    })
                    .collect::<Result<Vec<_>>>()
            },
        )?;
        let m = crate::engine::manifest::FileManifest {
            size: data.len() as u64,
            chunks: per_batch.into_iter().flatten().collect(),
        };
        let h = m.hash();
        sink.put(ObjectKind::File, h, &m.encode())?;
        Ok(h)
    }

    fn read_part(&self, h: &Hash) -> Result<RunPart> {
        let b = self.read_kind(h, ObjectKind::RunPart)?;
        parse_run_object(ObjectKind::RunPart, &b, h)
    }

    /// The run's snapshot (sealed) or the merge of its partial manifests so far (open).
    pub fn run_snapshot(&self, run: &RunRow) -> Result<RunSnapshot> {
        if let Some(s) = run.snapshot {
            let b = self.read_kind(&s, ObjectKind::Run)?;
            return parse_run_object(ObjectKind::Run, &b, &s);
        }
        let parts = self.index().run_parts(&run.run_id)?;
        self.merge(run, &parts, 0)
    }

    fn merge(&self, run: &RunRow, parts: &[Hash], sealed_ns: i64) -> Result<RunSnapshot> {
        let mut entries = Vec::new();
        let mut created = run.created_ns;
        for h in parts {
            let p = self.read_part(h)?;
            created = created.min(p.time_ns);
            entries.extend(p.entries);
        }
        entries.sort_by(|a, b| {
            (a.role, &a.path, &a.job_id, &a.lfn, a.hash)
                .cmp(&(b.role, &b.path, &b.job_id, &b.lfn, b.hash))
        });
        entries.dedup();
        // Two processes of one job may both have captured its environment: keep the first.
        let mut seen_env = std::collections::HashSet::new();
        entries.retain(|e| e.role != Role::Environment || seen_env.insert(e.job_id.clone()));
        let mut parts = parts.to_vec();
        parts.sort();
        Ok(RunSnapshot {
            format: RUN_FORMAT,
            workflow: run.workflow.clone(),
            run_id: run.run_id.clone(),
            created_ns: created,
            sealed_ns,
            parts,
            entries,
            code: None,
        })
    }

    /// Commits the run's code files to `code.repo` (branch named after the workflow).
    fn commit_code(&self, snap: &RunSnapshot) -> Result<Option<CodeVersion>> {
        let Some(repo) = self.config().code_repo.clone() else {
            return Ok(None);
        };
        // One version per path: several jobs may record the same script, or a directory and a
        // file inside it; the most recently recorded wins.
        let mut by_path: BTreeMap<String, (i64, Hash, u64, u32)> = BTreeMap::new();
        let mut offer = |path: String, recorded: i64, hash: Hash, size: u64, mode: u32| {
            let slot = by_path.entry(path).or_insert((recorded, hash, size, mode));
            if recorded > slot.0 {
                *slot = (recorded, hash, size, mode);
            }
        };
        for e in snap.entries.iter().filter(|e| e.role == Role::Code) {
            safe_relative(&e.path)?;
            if e.kind == "tree" {
                let mut stack = vec![(e.path.clone(), e.hash)];
                while let Some((dir, h)) = stack.pop() {
                    for t in self.tree_manifest(&h)?.entries {
                        let p = format!("{dir}/{}", String::from_utf8_lossy(&t.name));
                        match t.kind {
                            crate::engine::manifest::EntryKind::File(f) => {
                                offer(p, e.recorded_ns, f, t.size, t.mode)
                            }
                            crate::engine::manifest::EntryKind::Dir(d) => stack.push((p, d)),
                            crate::engine::manifest::EntryKind::Symlink(_) => {}
                        }
                    }
                }
            } else {
                offer(
                    e.path.clone(),
                    e.recorded_ns,
                    e.hash,
                    e.size,
                    e.mode.unwrap_or(0o644),
                );
            }
        }
        let mut files = Vec::new();
        let mut listed = Vec::new();
        let mut store_only = Vec::new();
        for (path, (_, hash, size, mode)) in by_path {
            if size > self.config().code_max_git_bytes {
                store_only.push(path);
                continue;
            }
            let mut content = Vec::with_capacity(size as usize);
            self.cat_unlocked(&hash, &mut content)?;
            listed.push((path.clone(), hash));
            files.push(crate::run::git::GitFile {
                path,
                content,
                executable: mode & 0o111 != 0,
            });
        }
        if files.is_empty() && store_only.is_empty() {
            return Ok(None);
        }
        let message = format!("store: workflow {} run {}", snap.workflow, snap.run_id);
        let commit = crate::run::git::commit_files(
            Path::new(&repo),
            &crate::run::git::branch_name(&snap.workflow),
            &files,
            &message,
            std::time::Duration::from_secs(self.config().push_timeout_secs),
        )?;
        Ok(Some(CodeVersion {
            repo,
            commit,
            files: listed,
            store_only,
        }))
    }

    /// Seals a run: merges its partial manifests into one immutable snapshot. Idempotent:
    /// sealing a sealed run returns its snapshot.
    pub fn seal(&self, run_id: &str) -> Result<(RunRow, Hash, bool)> {
        let _lock = self.lock(LockMode::Shared)?;
        for _ in 0..20 {
            let run = self.resolve_run(run_id)?;
            if let Some(s) = run.snapshot {
                return Ok((run, s, false));
            }
            let parts = self.index().run_parts(&run.run_id)?;
            let mut snap = self.merge(&run, &parts, now_ns())?;
            snap.code = self.commit_code(&snap)?;
            let json = serde_json::to_vec(&snap).map_err(|e| Error::Invalid(e.to_string()))?;
            let h = Hash::of(ObjectKind::Run, &json);
            let sink = Sink::new(self);
            sink.put(ObjectKind::Run, h, &json)?;
            let (packs, _, _) = sink.finish()?;
            let commit = Commit {
                packs,
                seals: vec![SealRow {
                    run_id: run.run_id.clone(),
                    workflow: run.workflow.clone(),
                    snapshot: h,
                    sealed_ns: snap.sealed_ns,
                    parts: Some(parts),
                }],
                ..Commit::default()
            };
            match self.index().commit(&commit) {
                Ok(()) => {
                    // The code commit stands; its push to origin is left for later.
                    if let Some(code) = &snap.code {
                        if let Some(why) = &code.commit.push_error {
                            self.mark_push_pending(
                                &run.run_id,
                                None,
                                Some(pending::PendingGit {
                                    repo: code.repo.clone(),
                                    branch: code.commit.branch.clone(),
                                    error: why.clone(),
                                }),
                            )?;
                        }
                    }
                }
                // A job recorded while we merged: merge again.
                Err(Error::Busy(_)) => continue,
                Err(e) => return Err(e),
            }
            let run = self.resolve_run(&run.run_id)?;
            let sealed = run.snapshot.unwrap_or(h);
            return Ok((run, sealed, true));
        }
        Err(Error::Busy(format!(
            "run {run_id} keeps receiving records; seal it when its jobs are done"
        )))
    }

    /// All runs (of one workflow), newest first, with counts.
    pub fn runs(&self, workflow: Option<&str>) -> Result<Vec<RunSummary>> {
        let idx = self.index();
        let rows = idx.run_count_rows()?;
        let mut counters: BTreeMap<&str, counts::Counter<'_>> = BTreeMap::new();
        for r in &rows {
            counters
                .entry(&r.run_id)
                .or_default()
                .add(&r.job_id, &r.role, &r.path, r.hash, r.size);
        }
        let mut pending: BTreeMap<String, PendingPush> = self
            .pending_pushes()?
            .into_iter()
            .map(|p| (p.run_id.clone(), p))
            .collect();
        Ok(idx
            .runs(workflow)?
            .into_iter()
            .map(|run| RunSummary {
                pending: pending.remove(&run.run_id),
                status: if run.sealed_ns.is_some() {
                    "sealed"
                } else {
                    "open"
                },
                counts: counters
                    .get(run.run_id.as_str())
                    .map(counts::Counter::counts)
                    .unwrap_or_default(),
                run,
            })
            .collect())
    }

    /// Which runs and jobs consumed or produced `hash`, each with its direction: what the
    /// tracking job recorded (before the job: consumed; after: produced), else what the role
    /// says (an input is consumed, an output produced; an intermediate recorded by hand is
    /// `unknown`; code, workflow and environment entries are `recorded`).
    pub fn lineage(&self, hash: &Hash) -> Result<Vec<LineageRow>> {
        let mut snaps: BTreeMap<String, Option<RunSnapshot>> = BTreeMap::new();
        let mut out = Vec::new();
        // (the index guard is released before the snapshots are read)
        let rows = self.index().runs_with_hash(hash)?;
        for [run_id, workflow, job_id, role, path] in rows {
            if !snaps.contains_key(&run_id) {
                let snap = self
                    .resolve_run(&run_id)
                    .and_then(|r| self.run_snapshot(&r))
                    .ok();
                snaps.insert(run_id.clone(), snap);
            }
            let recorded = snaps[&run_id].as_ref().and_then(|s| {
                s.entries
                    .iter()
                    .find(|e| {
                        e.hash == *hash
                            && e.job_id == job_id
                            && e.path == path
                            && e.role.as_str() == role
                    })
                    .and_then(|e| e.direction)
            });
            let direction = match (recorded, role.as_str()) {
                (Some(d), _) => d.as_str(),
                (None, "input") => "consumed",
                (None, "output") => "produced",
                (None, "intermediate") => "unknown",
                (None, _) => "recorded",
            };
            out.push(LineageRow {
                workflow,
                run_id,
                job_id,
                role,
                direction: direction.to_string(),
                path,
            });
        }
        Ok(out)
    }

    /// Restores every entry of a run (of the given roles; all when empty) under `to`, each at
    /// its recorded relative path, verifying every chunk. Existing files with other content are
    /// refused unless `force`.
    pub fn checkout_run(
        &self,
        run_id: &str,
        to: &Path,
        roles: &[Role],
        force: bool,
        opts: &CheckoutOptions,
    ) -> Result<(RunRow, CheckoutReport)> {
        let _lock = self.lock(LockMode::Shared)?;
        let run = self.resolve_run(run_id)?;
        let snap = self.run_snapshot(&run)?;
        let wanted: Vec<&RunEntry> = snap
            .entries
            .iter()
            .filter(|e| roles.is_empty() || roles.contains(&e.role))
            .collect();
        // A clone fetches the manifests it lacks from its default remote now, file content
        // while the files are written.
        let content: Vec<Hash> = wanted
            .iter()
            .filter(|e| e.kind == "file" || e.kind == "tree")
            .map(|e| e.hash)
            .collect();
        self.ensure_manifests(&content)?;
        // Code restored from the store must be what git holds for the run, where git is at hand.
        let wants_code = roles.is_empty() || roles.contains(&Role::Code);
        if let Some(code) = snap.code.as_ref().filter(|_| wants_code) {
            let repo = Path::new(&code.repo);
            if repo.exists() {
                let hashes: Vec<Hash> = code.files.iter().map(|(_, h)| *h).collect();
                self.ensure_local(&hashes)?;
                for (path, hash) in &code.files {
                    let mut ours = Vec::new();
                    self.cat_unlocked(hash, &mut ours)?;
                    let theirs = crate::run::git::read_file(repo, &code.commit.commit, path)?;
                    if theirs.as_deref() != Some(&ours[..]) {
                        return Err(Error::corrupt(
                            format!("code {path} of run {}", run.run_id),
                            format!(
                                "differs from git commit {} in {}",
                                code.commit.commit, code.repo
                            ),
                        ));
                    }
                }
            }
        }
        // Check every path before writing anything. A file several jobs recorded (an input
        // each of them read) is restored once.
        let mut plan = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for e in &wanted {
            let rel = safe_relative(&e.path)?;
            if !seen.insert((rel.clone(), e.hash)) {
                continue;
            }
            let dest = to.join(rel);
            if e.kind == "file" && dest.exists() && !force {
                let same = std::fs::File::open(&dest)
                    .ok()
                    .and_then(|f| {
                        self.chunk_file(&f, &dest, None, &crate::engine::progress::hidden())
                            .ok()
                    })
                    .is_some_and(|m| m.hash() == e.hash);
                if !same {
                    return Err(Error::WouldOverwrite(dest));
                }
            }
            plan.push((e, dest));
        }
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        let items: Vec<Restore<'_>> = plan
            .into_iter()
            .map(|(e, dest)| Restore {
                hash: e.hash,
                kind: if e.kind == "tree" {
                    ObjectKind::Tree
                } else {
                    ObjectKind::File
                },
                root: to,
                dest,
                mode: e.mode,
            })
            .collect();
        let mut total = self.restore_many(&items, opts)?;
        total.path = to.to_path_buf();
        Ok((run, total))
    }
}

/// The per-file metadata record of one run entry (the catalog's and the remote run
/// manifest's shape).
/// The records of `entries` keyed by logical name (`lfn`, then `lfn@job`, then `lfn@job#2`...
/// where names repeat): the `files` of a run in the central catalog and in MLflow's
/// `metadata.json`.
pub(crate) fn files_metadata<'a>(
    workflow: &str,
    run_id: &str,
    entries: impl IntoIterator<Item = &'a RunEntry>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut files = serde_json::Map::new();
    for e in entries {
        let mut key = e.lfn.clone();
        if files.contains_key(&key) {
            key = format!("{}@{}", e.lfn, e.job_id);
        }
        let mut n = 2;
        while files.contains_key(&key) {
            key = format!("{}@{}#{n}", e.lfn, e.job_id);
            n += 1;
        }
        files.insert(key, entry_metadata(workflow, run_id, e));
    }
    files
}

pub(crate) fn entry_metadata(workflow: &str, run_id: &str, e: &RunEntry) -> serde_json::Value {
    let name = Path::new(&e.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    serde_json::json!({
        "workflow": workflow,
        "run_id": run_id,
        "job_id": e.job_id,
        "file_name": name,
        "lfn": e.lfn,
        "path": e.path,
        "size": e.size,
        "mtime_ns": e.mtime_ns,
        "recorded_ns": e.recorded_ns,
        "role": e.role,
        "kind": e.kind,
        "version": e.hash,
        "remote_urls": e.remote_urls,
        "bucket_url": e.remote_urls.iter().find(|u| {
            ["s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://"]
                .iter()
                .any(|s| u.starts_with(s))
        }),
        "drive_url": e.remote_urls.iter().find(|u| u.starts_with("https://drive.google.com/")),
        "environment": e.environment,
        "mlflow_url": e.mlflow_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../b", "", "a/.."] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        for good in ["a", "a/b.txt", "./a/b"] {
            assert!(safe_relative(good).is_ok(), "{good}");
        }
    }

    /// Decoding holds a run object's names to the rule of local input, as corrupt data;
    /// gc's reference walk still reads it (it must keep what it references).
    #[test]
    fn decoded_run_names_follow_the_local_rule() {
        let h = Hash::of(ObjectKind::RunPart, b"x");
        let part = |wf: &str, run: &str, job: &str, entry_job: &str| {
            serde_json::to_vec(&serde_json::json!({
                "format": 1, "workflow": wf, "run_id": run, "job_id": job, "host": null,
                "time_ns": 1, "entries": [{
                    "role": "input", "lfn": "a", "path": "a", "kind": "file", "hash": h.to_hex(),
                    "size": 0, "mtime_ns": 0, "recorded_ns": 1, "job_id": entry_job,
                    "environment": null
                }]
            }))
            .expect("json")
        };
        let ok = part("wf", "run-1", "j", "j");
        assert!(parse_run_object::<RunPart>(ObjectKind::RunPart, &ok, &h).is_ok());
        for bad in [
            part("wf", "../../x", "j", "j"),
            part("wf\u{1b}[2J", "run-1", "j", "j"),
            part("wf", "run-1", "a/b", "j"),
            part("wf", "run-1", "j", "j\nk"),
            part("wf", "..", "j", "j"),
        ] {
            let e = parse_run_object::<RunPart>(ObjectKind::RunPart, &bad, &h).expect_err("bad");
            assert_eq!(e.exit_code(), crate::exit::CORRUPT, "{e}");
            assert!(!e.to_string().contains('\u{1b}'), "{e}");
            assert_eq!(
                entry_refs(ObjectKind::RunPart, &bad, &h)
                    .expect("refs")
                    .len(),
                1
            );
        }
    }
}
