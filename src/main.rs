//! The `store` command line: a thin layer over [`store::Store`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::{
    exit,
    util::{human_bytes, printable},
    AddOptions, CheckoutOptions, ChunkParams, InitOptions, LinkMode, Store,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure without a more specific code (I/O, index)
  2  bad usage or argument
  3  not inside a store (or `init` where one exists)
  4  a path does not exist, cannot be read, or lies inside .store/
  5  corrupt data (verify found damage, a pack failed a check)
  6  object or hash not found, or hash prefix ambiguous
  7  the store was written by a newer format version
  8  disk full (nothing was committed)
  9  store busy (gc/reindex while another process writes)
 10  partial: some inputs were skipped (special files), or a pull/clone passed over damage
     on its remote (each damaged key and each run not adopted is named)
 11  the run is sealed (recording refused)
 12  a remote failed (unreachable, refused, or an object missing there)";

/// A content-addressed versioning store for scientific and ML workflows.
#[derive(Parser)]
#[command(name = "store", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The .store directory to use (default: $STORE_DIR, else the nearest .store upwards).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// No progress bars or informational messages.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a store (.store/ in the current directory, or --store DIR).
    Init {
        /// Average chunk size in bytes (power of two; min = avg/4, max = avg*4).
        #[arg(long, value_name = "BYTES")]
        chunk_avg: Option<u32>,
        /// zstd compression level for new objects.
        #[arg(long, value_name = "N")]
        zstd_level: Option<i32>,
    },
    /// Add files and directories (recursively); prints the hash of each top-level path.
    /// With --role, also records them into a workflow run (run from --wf/--run/--job or the
    /// PEGASUS_WF_LABEL / PEGASUS_WF_UUID / PEGASUS_DAG_JOB_ID variables).
    Add {
        /// Paths to add.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
        /// Record into a run with this role: input, output, intermediate, code, workflow, environment.
        #[arg(long)]
        role: Option<String>,
        /// Logical file name (default: the path as given).
        #[arg(long)]
        lfn: Option<String>,
        /// Workflow name.
        #[arg(long)]
        wf: Option<String>,
        /// Run ID.
        #[arg(long)]
        run: Option<String>,
        /// Job ID.
        #[arg(long)]
        job: Option<String>,
        /// Do not capture the job's environment.
        #[arg(long)]
        no_env: bool,
    },
    /// Record files into a run, each with its role (`ROLE:PATH`); what tracking jobs call.
    Track {
        /// `ROLE:PATH` pairs, e.g. `input:f.a intermediate:f.b code:/usr/bin/tool`.
        #[arg(required = true)]
        files: Vec<String>,
        /// The job the files belong to (default: $PEGASUS_DAG_JOB_ID or $STORE_JOB_ID).
        #[arg(long)]
        job: Option<String>,
        /// Workflow name (default: $PEGASUS_WF_LABEL or $STORE_WF_NAME).
        #[arg(long)]
        wf: Option<String>,
        /// Run ID (default: $PEGASUS_WF_UUID or $STORE_RUN_ID).
        #[arg(long)]
        run: Option<String>,
        /// Do not capture the job's environment.
        #[arg(long)]
        no_env: bool,
        /// The URL of the job's MLflow run (given by `--mlflow` generation): recorded as the
        /// files' `mlflow_url`, and told the files' hashes and sizes and the environment.
        #[arg(long, value_name = "URL")]
        mlflow_run: Option<String>,
        /// Then push the run's records and data to the default remote (for jobs on nodes that
        /// do not share the store; the seal job pulls them before sealing).
        #[arg(long)]
        push: bool,
    },
    /// Add tracking jobs to a Pegasus 5 workflow (main jobs and their dependencies unchanged);
    /// sub-workflows are augmented too and written beside the output.
    Augment {
        /// The workflow YAML.
        workflow: PathBuf,
        /// Where to write the tracked workflow.
        #[arg(short, long)]
        output: PathBuf,
        /// Tracking policy: full, basic, inputs, outputs, transformations (default: the
        /// workflow's `store_track` metadata, else tags only).
        #[arg(long)]
        policy: Option<String>,
        /// Path of the `store` binary on the execution site (default: this binary).
        #[arg(long)]
        store_bin: Option<String>,
        /// Site the `store` transformation is registered for.
        #[arg(long, default_value = "local")]
        site: String,
        /// Store directory the tracking jobs use (default: this workspace's store, if any).
        #[arg(long)]
        store_dir: Option<PathBuf>,
        /// The run every tracking job records into (default: Pegasus's $PEGASUS_WF_UUID when
        /// the jobs run; a workflow with sub-workflows gets a new UUID, printed, since Pegasus
        /// gives each sub-workflow a UUID of its own).
        #[arg(long)]
        run_id: Option<String>,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
        /// Link the run to MLflow: create its runs now (one wait in total) and hand each job
        /// its run (MLFLOW_* profiles; tracking jobs get its URL). Fixes the run ID (--run-id,
        /// else a new UUID).
        #[arg(long)]
        mlflow: bool,
    },
    /// Run a Pegasus 5 workflow on this machine with tracking: augment it, execute its jobs in
    /// dependency order (up to --jobs at once), seal the run, print the run ID.
    Run {
        /// The workflow YAML.
        workflow: PathBuf,
        /// Jobs at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Tracking policy (default: the workflow's `store_track` metadata, else tags only).
        #[arg(long)]
        policy: Option<String>,
        /// Shared working directory of the jobs (default: runs/<run id>).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Run ID (default: a new UUID).
        #[arg(long)]
        run_id: Option<String>,
        /// Run without any tracking (the baseline for measuring tracking overhead).
        #[arg(long)]
        no_track: bool,
        /// Link the run to MLflow (an experiment per workflow, a run per job; user code gets
        /// MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME and MLFLOW_RUN_ID).
        #[arg(long, conflicts_with = "no_track")]
        mlflow: bool,
    },
    /// Run a sealed run again: restore it (verified) into WORKDIR/restored, run its recorded
    /// workflow on the restored inputs as a new run, and compare the outputs.
    Rerun {
        /// Run ID or unique prefix.
        run: String,
        /// Jobs at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Tracking policy of the new run.
        #[arg(long, default_value = "full")]
        policy: String,
        /// Working directory (default: reruns/<new run id>).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Seal a run: merge its jobs' records into one immutable snapshot (idempotent).
    Seal {
        /// Run ID or unique prefix (default: $PEGASUS_WF_UUID or $STORE_RUN_ID).
        run: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Do not push the sealed run to the default remote (pushed when one is configured).
        #[arg(long)]
        no_push: bool,
        /// Make MLflow match the sealed run (also done when the run was generated with
        /// --mlflow in this store); never fails the seal.
        #[arg(long)]
        mlflow: bool,
    },
    /// List workflow runs, newest first.
    Runs {
        /// Only runs of this workflow.
        #[arg(long)]
        wf: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what a run tracked, per role and job.
    Show {
        /// Run ID or unique prefix.
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Which inputs, outputs, code, workflow and environment entries differ between two runs.
    Diff {
        /// First run.
        a: String,
        /// Second run.
        b: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Which runs and jobs consumed or produced a file (by path or hash).
    Lineage {
        /// A path on disk, or a hash (prefix).
        target: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Capture the execution environment (secrets never included).
    Env {
        /// Print JSON (the default and only format).
        #[arg(long)]
        json: bool,
    },
    /// The run catalog: workflow -> run -> file -> record.
    Metadata {
        #[command(subcommand)]
        cmd: MetadataCmd,
    },
    /// MLflow linkage: send what is pending.
    Mlflow {
        #[command(subcommand)]
        cmd: MlflowCmd,
    },
    /// Read or change the store's configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Show new, modified and deleted files under tracked paths since their last add.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tracked paths, or the entries of a tree.
    Ls {
        /// A tree hash (or unique prefix) to list instead.
        hash: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every version of every tracked path (or of PATH), newest first.
    Log {
        /// A tracked path.
        path: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the content of a file object to stdout.
    Cat {
        /// File hash or unique prefix.
        hash: String,
    },
    /// Restore a run (by run ID or prefix) or a file or tree (by hash), verifying every chunk.
    Checkout {
        /// Run ID, or file/tree hash, or a unique prefix of either.
        hash: String,
        /// Destination directory (created if missing; default for a run: the current directory).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Only entries of these roles (runs only; repeatable).
        #[arg(long)]
        role: Vec<String>,
        /// Overwrite files that exist with other content (runs only).
        #[arg(long)]
        force: bool,
        /// reflink (default; falls back to copy), hardlink (read-only, opt-in) or copy.
        #[arg(long, default_value = "reflink")]
        link: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every object of every pack; name each damaged pack and object. With --remote,
    /// check a remote instead (every pack, or a sample of --sample packs).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Check this remote instead of the local store.
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
        /// With --remote: check only about N packs, spread over the remote.
        #[arg(long, value_name = "N", requires = "remote")]
        sample: Option<usize>,
        /// Concurrent downloads.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Remove what nothing references (dry run unless --yes). Every version of every added
    /// path is kept unless --keep-last limits it.
    Gc {
        /// Actually remove.
        #[arg(long)]
        yes: bool,
        /// Keep only the newest N versions of each added path.
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Logical and stored sizes, dedup and compression ratios.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index from the pack files.
    Reindex,
    /// Configure remotes (S3 and compatible, gs://, az://, Google Drive gdrive://, directories).
    Remote {
        #[command(subcommand)]
        cmd: RemoteCmd,
    },
    /// Upload runs (default: everything not yet there) to a remote: `push [REMOTE] [RUN...]`.
    Push {
        /// A remote name (first, optional) then run IDs or unique prefixes.
        args: Vec<String>,
        /// Concurrent uploads.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download runs (default: everything) from a remote: `pull [REMOTE] [RUN...]`.
    Pull {
        /// A remote name (first, optional) then run IDs or unique prefixes.
        args: Vec<String>,
        /// Only run records and manifests; content comes on demand at checkout.
        #[arg(long)]
        metadata_only: bool,
        /// Concurrent downloads.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a workspace in DIR from a remote; checkout then fetches only what it needs.
    Clone {
        /// The remote URL.
        url: String,
        /// The new workspace directory.
        dir: PathBuf,
        #[command(flatten)]
        opts: RemoteOpts,
        /// Concurrent downloads.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Non-secret remote options (credentials come from the environment or a credentials file).
#[derive(clap::Args)]
struct RemoteOpts {
    /// Endpoint URL of an S3-compatible server.
    #[arg(long)]
    endpoint: Option<String>,
    /// Region.
    #[arg(long)]
    region: Option<String>,
    /// Allow plain HTTP (local servers).
    #[arg(long)]
    allow_http: bool,
    /// Virtual-hosted-style requests (default: path style).
    #[arg(long)]
    virtual_hosted: bool,
    /// A credentials file (its path is stored, never its content): AWS-style keys for S3; a
    /// Google `authorized_user` or `service_account` JSON file for gdrive://.
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// Google Drive API base URL (default https://www.googleapis.com).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// OAuth token endpoint for Google Drive (default https://oauth2.googleapis.com/token).
    #[arg(long, value_name = "URL")]
    token_url: Option<String>,
}

impl RemoteOpts {
    fn spec(self, url: String) -> anyhow::Result<store::remote::RemoteSpec> {
        let mut options = std::collections::BTreeMap::new();
        if let Some(v) = self.endpoint {
            options.insert("endpoint".to_string(), v);
        }
        if let Some(v) = self.region {
            options.insert("region".to_string(), v);
        }
        if self.allow_http {
            options.insert("allow_http".to_string(), "true".to_string());
        }
        if self.virtual_hosted {
            options.insert("virtual_hosted".to_string(), "true".to_string());
        }
        if let Some(f) = self.credentials_file {
            let abs = std::path::absolute(&f)?;
            options.insert("credentials_file".to_string(), abs.display().to_string());
        }
        if let Some(v) = self.api_url {
            options.insert("api_url".to_string(), v);
        }
        if let Some(v) = self.token_url {
            options.insert("token_url".to_string(), v);
        }
        // A relative directory remote is kept absolute, so it means the same from anywhere.
        let url = if url.contains("://") {
            url
        } else {
            std::path::absolute(&url)?.display().to_string()
        };
        Ok(store::remote::RemoteSpec { url, options })
    }
}

#[derive(Subcommand)]
enum RemoteCmd {
    /// Add a remote: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// gdrive://folder/path or gdrive://id:FOLDER_ID, or a directory path.
    Add {
        /// Its name.
        name: String,
        /// Its URL.
        url: String,
        #[command(flatten)]
        opts: RemoteOpts,
        /// Make it the default remote.
        #[arg(long)]
        default: bool,
    },
    /// List remotes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote (the data on it stays).
    Remove {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
enum MetadataCmd {
    /// Write the catalog to stdout (generated from the index; nothing is read-modify-written).
    Export {
        /// Output format: json or yaml.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Commit the export to a git repository (`metadata.repo`, or --repo), branch `main`.
    Commit {
        /// The repository (default: the `metadata.repo` setting).
        #[arg(long)]
        repo: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MlflowCmd {
    /// Make MLflow match the store's records for the runs named (default: every pending run);
    /// never duplicates a run.
    Sync {
        /// Run IDs or unique prefixes.
        runs: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the runs with something not yet sent to MLflow.
    Pending,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Set a key: code.repo, code.max_git_bytes, metadata.repo, mlflow.uri, zstd.level ("" unsets).
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print the whole configuration.
    List,
}

/// Segments a push lets accumulate outside a merged segment before it writes a new one:
/// `STORE_MERGE_SEGMENTS` (0: never), else 16.
fn merge_at() -> usize {
    std::env::var("STORE_MERGE_SEGMENTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(16)
}

fn main() -> ExitCode {
    // Like other Unix filters, end quietly when the reader of our output goes away
    // (`store cat HASH | head`).
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("store: error: {e:#}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<store::Error>())
                .map_or(exit::FAILURE, |s| s.exit_code());
            ExitCode::from(code as u8)
        }
    }
}

/// One root (a version of a tracked path) as JSON, for `ls` and `log`.
fn root_json(r: &store::index::Root) -> serde_json::Value {
    serde_json::json!({"path": r.path, "kind": r.kind, "hash": r.hash.to_hex(), "size": r.size, "time_ns": r.time_ns})
}

/// Augments a workflow tree for this machine's `store run` as run `run_id`: tracking jobs call
/// this binary on this store; relative paths resolve against each workflow file's directory.
/// Nothing is written: the runner plans the augmented tree in memory.
fn augment_locally(
    s: &Store,
    tree: store::pegasus::WorkflowTree,
    policy: Option<store::pegasus::Policy>,
    run_id: &str,
    work: &Path,
    mlflow: bool,
    quiet: bool,
) -> anyhow::Result<(store::pegasus::WorkflowTree, store::pegasus::AugmentReport)> {
    let opts = store::pegasus::AugmentOptions {
        policy,
        store_bin: std::env::current_exe()?.to_string_lossy().into_owned(),
        store_dir: Some(std::path::absolute(s.dir())?.to_string_lossy().into_owned()),
        site: "local".into(),
        run_id: Some(run_id.parse()?),
        output: work.join("workflow.tracked.yml"),
    };
    let (mut tree, report) = store::pegasus::augment(tree, &opts)?;
    if mlflow {
        link_mlflow(s, &mut tree, &report, run_id, quiet)?;
    }
    Ok((tree, report))
}

/// `--mlflow` at generation: ensures the MLflow runs of the whole run at once (experiment,
/// parent, a child per tracked job; concurrent requests, one time budget), then hands each main
/// job its run (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_RUN_ID` profiles) and
/// each tracking job its run's URL (`--mlflow-run`); every tracking job and the seal record
/// into `run_id`. If MLflow does not answer in time, jobs get no `MLFLOW_*` (user code runs as
/// without MLflow), the run is pending, and the seal fills MLflow in. Returns the report.
fn link_mlflow(
    s: &Store,
    tree: &mut store::pegasus::WorkflowTree,
    report: &store::pegasus::AugmentReport,
    run_id: &str,
    quiet: bool,
) -> anyhow::Result<store::mlflow::StartReport> {
    use std::collections::BTreeMap;
    use store::mlflow::{JobPlan, Plan};
    let uri = store::mlflow::tracking_uri(s)?.ok_or_else(|| {
        store::Error::Invalid(
            "--mlflow needs a tracking server: `store config set mlflow.uri URL` or set MLFLOW_TRACKING_URI".into(),
        )
    })?;
    let plan = Plan {
        workflow: tree.wf.name.clone(),
        run_id: run_id.to_string(),
        started_ms: store::util::now_ns() / 1_000_000,
        jobs: report
            .jobs
            .iter()
            .map(|j| JobPlan {
                job_id: j.id.clone(),
                experiment: j.mlflow_experiment.clone(),
                run_name: j.mlflow_run.clone(),
            })
            .collect(),
    };
    let start = s.mlflow_start(&uri, plan)?;
    // Keyed by (job path of the workflow, job ID): jobs live in the workflows of the tree.
    let key = |wf: &str, job: &str| (wf.to_string(), job.to_string());
    let mut env = BTreeMap::new();
    let mut args: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    // The seal (run ID already in its arguments) finishes the MLflow runs, or fills them in.
    args.insert(key("", &report.seal_job), vec!["--mlflow".to_string()]);
    env.insert(
        key("", &report.seal_job),
        vec![("MLFLOW_TRACKING_URI".to_string(), uri.clone())],
    );
    match &start.links {
        Some(links) => {
            for j in &report.jobs {
                let Some(l) = links.jobs.get(&j.id) else {
                    continue;
                };
                env.insert(
                    key(&j.workflow, &j.job),
                    vec![
                        ("MLFLOW_TRACKING_URI".to_string(), uri.clone()),
                        ("MLFLOW_EXPERIMENT_NAME".to_string(), l.experiment.clone()),
                        ("MLFLOW_RUN_ID".to_string(), l.run_id.clone()),
                    ],
                );
                for t in &j.trackers {
                    args.insert(
                        key(&j.workflow, t),
                        vec!["--mlflow-run".to_string(), l.url.clone()],
                    );
                }
            }
            for t in &report.run_level_trackers {
                args.insert(
                    key("", t),
                    vec!["--mlflow-run".to_string(), links.parent.url.clone()],
                );
            }
            if !quiet {
                eprintln!(
                    "MLflow: run {} with {} job runs ({} requests)",
                    links.parent.url,
                    links.jobs.len(),
                    start.requests
                );
            }
        }
        None => eprintln!(
            "store: MLflow not reached ({}); the jobs run without MLFLOW_* and run {run_id} is pending: its seal, or `store mlflow sync {run_id}`, fills MLflow in",
            start.pending.as_deref().unwrap_or("unknown")
        ),
    }
    store::pegasus::add_to_jobs(tree, &env, &args);
    Ok(start)
}

/// The absolute directory of a file (relative workflow paths resolve against it).
fn dir_of(p: &Path) -> std::io::Result<PathBuf> {
    Ok(std::path::absolute(p)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

fn open(cli_store: &Option<PathBuf>) -> anyhow::Result<Store> {
    let dir = match cli_store {
        Some(d) => d.clone(),
        None => Store::discover(Path::new("."))?,
    };
    let s = Store::open(&dir)?;
    // A clone fetches the objects a command needs and lacks from its default remote.
    store::remote::fetch_on_demand(&s);
    Ok(s)
}

/// Like `open`, but a damaged index does not stop it (for `verify` and `reindex`).
fn open_for_repair(cli_store: &Option<PathBuf>) -> anyhow::Result<Store> {
    let dir = match cli_store {
        Some(d) => d.clone(),
        None => Store::discover(Path::new("."))?,
    };
    let s = Store::open_for_repair(&dir)?;
    store::remote::fetch_on_demand(&s);
    Ok(s)
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let progress = !cli.quiet;
    match cli.cmd {
        Cmd::Init {
            chunk_avg,
            zstd_level,
        } => {
            let dir = match (&cli.store, std::env::var_os("STORE_DIR")) {
                (Some(d), _) => d.clone(),
                (None, Some(d)) => PathBuf::from(d),
                (None, None) => PathBuf::from(store::STORE_DIR_NAME),
            };
            let chunking = chunk_avg.map(ChunkParams::with_avg).transpose()?;
            let s = Store::init(
                &dir,
                &InitOptions {
                    chunking,
                    zstd_level,
                },
            )?;
            if !cli.quiet {
                println!("initialized empty store in {}", s.dir().display());
            }
        }
        Cmd::Add {
            paths,
            json,
            role,
            lfn,
            wf,
            run,
            job,
            no_env,
        } => {
            let s = open(&cli.store)?;
            let opts = AddOptions {
                progress,
                ..AddOptions::default()
            };
            let r = match role {
                Some(role) => {
                    let spec = store::run::RecordSpec {
                        ctx: store::run::RunContext::resolve(wf, run, job)?,
                        role: role.parse()?,
                        roles: Vec::new(),
                        lfn,
                        capture_env: !no_env,
                        mlflow_url: None,
                    };
                    s.record(&paths, spec, &opts)?
                }
                None => {
                    if lfn.is_some() || wf.is_some() || run.is_some() || job.is_some() {
                        anyhow::bail!(store::Error::Invalid(
                            "--lfn/--wf/--run/--job record into a run: give --role too".into()
                        ));
                    }
                    s.add(&paths, &opts)?
                }
            };
            for w in &r.warnings {
                eprintln!("store: warning: {w}");
            }
            if json {
                print_json(&r)?;
            } else {
                let mut out = std::io::stdout().lock();
                for a in &r.added {
                    writeln!(out, "{}  {}", a.hash, a.path.display())?;
                }
                if !cli.quiet {
                    eprintln!(
                        "{} files, {} read, {} new objects ({} stored)",
                        r.files,
                        human_bytes(r.bytes_read),
                        r.new_objects,
                        human_bytes(r.new_bytes)
                    );
                }
            }
            if !r.warnings.is_empty() {
                return Ok(exit::PARTIAL);
            }
        }
        Cmd::Status { json } => {
            let s = open(&cli.store)?;
            let st = s.status()?;
            if json {
                print_json(&st)?;
            } else {
                let mut out = std::io::stdout().lock();
                for e in &st {
                    let tag = match e.change {
                        store::Change::New => "new:      ",
                        store::Change::Modified => "modified: ",
                        store::Change::Deleted => "deleted:  ",
                    };
                    writeln!(out, "{tag}{}", e.path)?;
                }
            }
        }
        Cmd::Ls { hash, json } => {
            let s = open(&cli.store)?;
            match hash {
                None => {
                    let roots = s.roots()?;
                    if json {
                        let v: Vec<_> = roots.iter().map(root_json).collect();
                        print_json(&v)?;
                    } else {
                        let mut out = std::io::stdout().lock();
                        for r in roots {
                            writeln!(
                                out,
                                "{}  {:<4}  {:>10}  {}",
                                r.hash,
                                printable(&r.kind),
                                human_bytes(r.size),
                                printable(&r.path)
                            )?;
                        }
                    }
                }
                Some(h) => {
                    let h = s.resolve(&h)?;
                    let t = s.tree_manifest(&h)?;
                    let rows: Vec<_> = t
                        .entries
                        .iter()
                        .map(|e| {
                            let (kind, target) = match &e.kind {
                                store::manifest::EntryKind::File(h) => ("file", h.to_hex()),
                                store::manifest::EntryKind::Dir(h) => ("tree", h.to_hex()),
                                store::manifest::EntryKind::Symlink(t) => {
                                    ("link", String::from_utf8_lossy(t).into_owned())
                                }
                            };
                            (
                                String::from_utf8_lossy(&e.name).into_owned(),
                                kind,
                                target,
                                e.size,
                                e.mode,
                            )
                        })
                        .collect();
                    if json {
                        let v: Vec<_> = rows
                            .iter()
                            .map(|(n, k, t, s, m)| serde_json::json!({"name": n, "kind": k, "hash_or_target": t, "size": s, "mode": m}))
                            .collect();
                        print_json(&v)?;
                    } else {
                        let mut out = std::io::stdout().lock();
                        for (n, k, t, s, m) in rows {
                            let (n, t) = (printable(&n), printable(&t));
                            writeln!(out, "{m:06o} {k:<4} {t}  {:>10}  {n}", human_bytes(s))?;
                        }
                    }
                }
            }
        }
        Cmd::Seal {
            run,
            json,
            no_push,
            mlflow,
        } => {
            let s = open(&cli.store)?;
            let id = run
                .or_else(store::run::RunContext::run_id_from_env)
                .ok_or_else(|| {
                    store::Error::Invalid(
                        "which run? give RUN or set PEGASUS_WF_UUID / STORE_RUN_ID".into(),
                    )
                })?;
            if !no_push && s.remotes()?.default.is_some() {
                // Records pushed by jobs on other nodes join the run before it is sealed.
                warn_damage(&s.pull_run_records(&id, progress)?);
            }
            let (run, snap, fresh) = s.seal(&id)?;
            // The seal job of an augmented workflow publishes the run when a remote is set.
            if !no_push && s.remotes()?.default.is_some() {
                let r = s.push(
                    None,
                    &store::PushOptions {
                        runs: vec![run.run_id.clone()],
                        jobs: 8,
                        progress,
                        merge_at: merge_at(),
                    },
                )?;
                if !cli.quiet && !json {
                    eprintln!(
                        "pushed run {} to {} ({} objects, {})",
                        run.run_id,
                        r.remote,
                        r.objects,
                        human_bytes(r.bytes_uploaded)
                    );
                }
            }
            // MLflow never fails a seal: at worst the run stays pending, and the user is told.
            if mlflow || s.mlflow_linked(&run.run_id) {
                match s.mlflow_after_seal(&run.run_id) {
                    Ok(store::mlflow::Sent {
                        pending: None,
                        requests,
                    }) => {
                        if !cli.quiet {
                            eprintln!("MLflow: run {} finished ({requests} requests)", run.run_id);
                        }
                    }
                    Ok(store::mlflow::Sent {
                        pending: Some(why),
                        ..
                    }) => eprintln!(
                        "store: MLflow pending for run {} ({why}); `store mlflow sync {}` sends it later",
                        run.run_id, run.run_id
                    ),
                    Err(e) => eprintln!("store: warning: MLflow: {e}"),
                }
            }
            if json {
                print_json(
                    &serde_json::json!({"run_id": run.run_id, "workflow": run.workflow, "snapshot": snap, "newly_sealed": fresh}),
                )?;
            } else {
                println!(
                    "{snap}  {} {}{}",
                    run.workflow,
                    run.run_id,
                    if fresh { "" } else { " (already sealed)" }
                );
            }
        }
        Cmd::Track {
            files,
            job,
            wf,
            run,
            no_env,
            mlflow_run,
            push,
        } => {
            let s = open(&cli.store)?;
            let mut paths = Vec::new();
            let mut roles = Vec::new();
            for f in &files {
                let (role, path) = f.split_once(':').ok_or_else(|| {
                    store::Error::Invalid(format!("{f:?} is not ROLE:PATH (e.g. input:data.csv)"))
                })?;
                let role: store::run::Role = role.parse()?;
                paths.push(PathBuf::from(path));
                roles.push((PathBuf::from(path), role));
            }
            // A malformed URL is a generation bug, not a reason to lose the records.
            let mlflow_run = mlflow_run.filter(|u| match store::mlflow::parse_run_url(u) {
                Ok(_) => true,
                Err(e) => {
                    eprintln!("store: warning: ignoring --mlflow-run: {e}");
                    false
                }
            });
            let ctx = store::run::RunContext::resolve(wf, run, job)?;
            let spec = store::run::RecordSpec {
                ctx: ctx.clone(),
                role: roles[0].1,
                roles,
                lfn: None,
                capture_env: !no_env,
                mlflow_url: mlflow_run.clone(),
            };
            let r = s.record(
                &paths,
                spec,
                &AddOptions {
                    progress,
                    ..AddOptions::default()
                },
            )?;
            let mut out = std::io::stdout().lock();
            for a in &r.added {
                writeln!(out, "{}  {}", a.hash, a.path.display())?;
            }
            for w in &r.warnings {
                eprintln!("store: warning: {w}");
            }
            if push {
                // One job of many: the seal merges, not every job at once.
                let opts = store::PushOptions {
                    runs: vec![ctx.run_id.clone()],
                    jobs: 8,
                    progress,
                    merge_at: 0,
                };
                s.push(None, &opts)?;
            }
            // Never fails the job: MLflow gets a bounded time, then the run is pending.
            if let Some(url) = &mlflow_run {
                let lfns: Vec<String> = files
                    .iter()
                    .filter_map(|f| f.split_once(':').map(|(_, p)| p.to_string()))
                    .collect();
                match s.mlflow_log_job(url, &ctx.workflow, &ctx.run_id, &ctx.job_id, &lfns) {
                    Ok(store::mlflow::Sent {
                        pending: None,
                        requests,
                    }) => {
                        if !cli.quiet {
                            eprintln!("MLflow: logged to {url} ({requests} requests)");
                        }
                    }
                    Ok(store::mlflow::Sent {
                        pending: Some(why),
                        ..
                    }) => eprintln!(
                        "store: MLflow pending for run {} ({why}); the seal or `store mlflow sync` sends it later",
                        ctx.run_id
                    ),
                    Err(e) => eprintln!("store: warning: MLflow: {e}"),
                }
            }
        }
        Cmd::Augment {
            workflow,
            output,
            policy,
            store_bin,
            site,
            store_dir,
            run_id,
            json,
            mlflow,
        } => {
            let tree = store::pegasus::WorkflowTree::load(&workflow)?;
            let store_dir = match (store_dir, &cli.store) {
                (Some(d), _) => Some(d),
                (None, Some(d)) => Some(d.clone()),
                (None, None) => Store::discover(Path::new(".")).ok(),
            }
            .map(|d| std::path::absolute(&d).map(|p| p.to_string_lossy().into_owned()))
            .transpose()?;
            let store_bin = match store_bin {
                Some(b) => b,
                None => std::env::current_exe()?.to_string_lossy().into_owned(),
            };
            let opts = store::pegasus::AugmentOptions {
                policy: policy.map(|p| p.parse()).transpose()?,
                store_bin,
                store_dir,
                site,
                // MLflow runs are keyed by the store run ID, so --mlflow fixes it now.
                run_id: match (run_id, mlflow) {
                    (Some(r), _) => Some(r.parse()?),
                    (None, true) => Some(store::runner::new_run_id().parse()?),
                    (None, false) => None,
                },
                output: output.clone(),
            };
            let (mut tracked, report) = store::pegasus::augment(tree, &opts)?;
            let mut linked = None;
            if mlflow {
                let s = match &opts.store_dir {
                    Some(d) => Store::open(Path::new(d)),
                    None => Err(store::Error::NotAStore {
                        start: PathBuf::from("."),
                    }),
                }
                .context("--mlflow keeps the run's MLflow state in the tracking jobs' store")?;
                let run_id = report.run_id.clone().expect("fixed with --mlflow");
                linked = Some(link_mlflow(&s, &mut tracked, &report, &run_id, cli.quiet)?);
            }
            // Sub-workflows first (beside the output, under the names their parents now
            // give them), so a written root never names a missing child.
            let out_dir = dir_of(&output)?;
            for (_, file, node) in tracked.walk().into_iter().rev() {
                let dest = match file {
                    Some(f) => out_dir.join(f),
                    None => output.clone(),
                };
                store::util::atomic_write(&dest, node.wf.to_yaml()?.as_bytes())?;
            }
            // The process ends here: freeing a document of many small nodes one by one would
            // cost a sixth of the whole command.
            std::mem::forget(tracked);
            if json {
                let mut v = serde_json::to_value(&report)?;
                if let (Some(start), Some(m)) = (&linked, v.as_object_mut()) {
                    m.insert(
                        "mlflow".into(),
                        serde_json::json!({
                            "requests": start.requests,
                            "tracked_jobs": report.jobs.len(),
                            "pending": start.pending,
                            "parent_url": start.links.as_ref().map(|l| &l.parent.url),
                        }),
                    );
                }
                print_json(&v)?;
            } else if !cli.quiet {
                println!(
                    "{}: {} main jobs, {} tracking jobs added, {} files and {} transformations tracked{}",
                    output.display(),
                    report.main_jobs,
                    report.added_jobs,
                    report.tracked.len(),
                    report.transformations.len(),
                    if report.workflow_tracked { ", workflow tracked" } else { "" }
                );
                if report.workflows.len() > 1 {
                    println!(
                        "{} sub-workflows written beside it; every tracking job records into run {}",
                        report.workflows.len() - 1,
                        report.run_id.as_deref().unwrap_or("")
                    );
                } else if linked.is_some() {
                    println!(
                        "every tracking job records into run {} (MLflow-linked: plan this workflow once)",
                        report.run_id.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Cmd::Run {
            workflow,
            jobs,
            policy,
            workdir,
            run_id,
            no_track,
            mlflow,
        } => {
            let s = open(&cli.store)?;
            let tree = store::pegasus::WorkflowTree::load(&workflow)?;
            let name = tree.wf.name.clone();
            let policy = policy.map(|p| p.parse()).transpose()?;
            let run_id = run_id.unwrap_or_else(store::runner::new_run_id);
            let work = workdir.unwrap_or_else(|| PathBuf::from("runs").join(&run_id));
            let (tracked, report) = if no_track {
                let report = store::pegasus::AugmentReport {
                    main_jobs: tree.main_jobs(),
                    ..Default::default()
                };
                (tree, report)
            } else {
                augment_locally(&s, tree, policy, &run_id, &work, mlflow, cli.quiet)?
            };
            let plan = tracked.plan()?;
            std::fs::create_dir_all(&work).map_err(|e| store::Error::io(&work, e))?;
            if !cli.quiet {
                eprintln!(
                    "running {} ({} jobs + {} tracking) as run {run_id} in {}",
                    name,
                    report.main_jobs,
                    report.added_jobs,
                    work.display()
                );
            }
            let out = store::runner::run_jobs(&plan, &tracked.replicas(), &run_id, &work, jobs)?;
            if let Some((job, why)) = &out.failed {
                anyhow::bail!(
                    "job {job} of run {run_id} failed: {why}\n{} jobs not started: {}",
                    out.not_started.len(),
                    out.not_started.join(" ")
                );
            }
            if mlflow && s.mlflow_is_pending(&run_id) {
                eprintln!(
                    "store: MLflow pending for run {run_id}; `store mlflow sync {run_id}` sends it when the server is back"
                );
            }
            println!("{run_id}");
        }
        Cmd::Rerun {
            run,
            jobs,
            policy,
            workdir,
            json,
        } => {
            let s = open(&cli.store)?;
            let old = s.resolve_run(&run)?;
            let snap = s.run_snapshot(&old)?;
            // The root's description; those of its sub-workflows are under the names their
            // parents give them.
            let root_lfn = format!("{}.store-workflow.yml", snap.workflow);
            let descriptions: Vec<&store::run::RunEntry> = snap
                .entries
                .iter()
                .filter(|e| e.role == store::run::Role::Workflow)
                .collect();
            let wf_entry = descriptions
                .iter()
                .find(|e| e.lfn == root_lfn)
                .or(descriptions.first())
                .ok_or_else(|| {
                    store::Error::Invalid(format!(
                        "run {} did not track its workflow description (track it with policy full or wf_track)",
                        old.run_id
                    ))
                })?;
            let new_id = store::runner::new_run_id();
            let base = workdir.unwrap_or_else(|| PathBuf::from("reruns").join(&new_id));
            let restored = base.join("restored");
            let work = base.join("work");
            std::fs::create_dir_all(&work).map_err(|e| store::Error::io(&work, e))?;
            s.checkout_run(
                &old.run_id,
                &restored,
                &[],
                false,
                &CheckoutOptions {
                    link: LinkMode::Copy,
                    progress,
                },
            )?;
            let wf_path = restored.join(&wf_entry.path);
            let files = descriptions
                .iter()
                .map(|e| Ok((e.lfn.clone(), std::path::absolute(restored.join(&e.path))?)))
                .collect::<std::io::Result<_>>()?;
            let tree = store::pegasus::WorkflowTree::load_with(&wf_path, &files)?;
            // Executables named relative to the workflow files get the run's recorded code.
            let wf_dir = dir_of(&wf_path)?;
            for j in tree.plan()? {
                let Some(exe) = j.executable.map(PathBuf::from) else {
                    continue;
                };
                let Ok(rel) = exe.strip_prefix(&wf_dir) else {
                    continue;
                };
                if exe.exists() {
                    continue;
                }
                let code = snap
                    .entries
                    .iter()
                    .find(|e| e.role == store::run::Role::Code && Path::new(&e.lfn).ends_with(rel));
                if let Some(e) = code {
                    if let Some(parent) = exe.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::copy(restored.join(&e.path), &exe)?;
                }
            }
            let (tracked, _) = augment_locally(
                &s,
                tree,
                Some(policy.parse()?),
                &new_id,
                &work,
                false,
                cli.quiet,
            )?;
            // Inputs come from the restored run, not from wherever the catalog pointed then.
            let mut replicas = tracked.replicas();
            for e in snap
                .entries
                .iter()
                .filter(|e| e.role == store::run::Role::Input)
            {
                let p = std::path::absolute(restored.join(&e.path))?;
                replicas.insert(e.lfn.clone(), p.to_string_lossy().into_owned());
            }
            let plan = tracked.plan()?;
            let out = store::runner::run_jobs(&plan, &replicas, &new_id, &work, jobs)?;
            if let Some((job, why)) = &out.failed {
                anyhow::bail!("job {job} of rerun {new_id} failed: {why}");
            }
            // Same results? Compare each recorded output and intermediate file with what the
            // rerun produced (an intermediate recorded twice, by producer and consumer, once).
            let mut compared = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for e in snap.entries.iter().filter(|e| {
                matches!(
                    e.role,
                    store::run::Role::Output | store::run::Role::Intermediate
                )
            }) {
                if !seen.insert((e.lfn.clone(), e.hash)) {
                    continue;
                }
                let p = work.join(&e.lfn);
                let now = if p.exists() {
                    Some(s.hash_path(&p)?)
                } else {
                    None
                };
                compared.push(serde_json::json!({"lfn": e.lfn, "role": e.role, "identical": now == Some(e.hash)}));
            }
            let all_same = compared.iter().all(|c| c["identical"] == true);
            if json {
                print_json(
                    &serde_json::json!({"old_run": old.run_id, "new_run": new_id, "outputs": compared, "identical": all_same}),
                )?;
            } else {
                println!("{new_id}");
                if !cli.quiet {
                    eprintln!(
                        "rerun of {} as {new_id}: outputs {}",
                        old.run_id,
                        if all_same { "identical" } else { "DIFFER" }
                    );
                }
            }
        }
        Cmd::Runs { wf, json } => {
            let s = open(&cli.store)?;
            let runs = s.runs(wf.as_deref())?;
            if json {
                print_json(&runs)?;
            } else {
                let mut out = std::io::stdout().lock();
                for r in runs {
                    writeln!(
                        out,
                        "{:<36}  {:<20}  {:<6}  t={}  {} jobs  {} files  {}",
                        printable(&r.run.run_id),
                        printable(&r.run.workflow),
                        r.status,
                        r.run.created_ns / 1_000_000_000,
                        r.jobs,
                        r.files,
                        human_bytes(r.bytes)
                    )?;
                }
            }
        }
        Cmd::Show { run, json } => {
            let s = open(&cli.store)?;
            let row = s.resolve_run(&run)?;
            let mut snap = s.run_snapshot(&row)?;
            s.mlflow_overlay(&mut snap)?;
            if json {
                print_json(&snap)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "workflow {}  run {}  {}",
                    printable(&snap.workflow),
                    printable(&snap.run_id),
                    if row.sealed_ns.is_some() {
                        "sealed"
                    } else {
                        "open"
                    }
                )?;
                for role in store::run::Role::ALL {
                    let es: Vec<_> = snap.entries.iter().filter(|e| e.role == role).collect();
                    if es.is_empty() {
                        continue;
                    }
                    writeln!(out, "{}:", role.as_str())?;
                    for e in es {
                        writeln!(
                            out,
                            "  {}  {:>10}  job {:<16}  {}",
                            e.hash.short(),
                            human_bytes(e.size),
                            printable(&e.job_id),
                            printable(&e.path)
                        )?;
                        if let Some(u) = &e.mlflow_url {
                            writeln!(out, "      mlflow {}", printable(u))?;
                        }
                    }
                }
            }
        }
        Cmd::Diff { a, b, json } => {
            let s = open(&cli.store)?;
            let d = s.diff_runs(&a, &b)?;
            if json {
                print_json(&d)?;
            } else {
                let mut out = std::io::stdout().lock();
                for (role, rd) in d {
                    for (tag, names) in [("+", &rd.added), ("-", &rd.removed), ("M", &rd.changed)] {
                        for n in names {
                            writeln!(out, "{tag} {:<12} {}", role.as_str(), printable(n))?;
                        }
                    }
                }
            }
        }
        Cmd::Lineage { target, json } => {
            let s = open(&cli.store)?;
            let p = Path::new(&target);
            let h = if p.exists() {
                s.hash_path(p)?
            } else {
                s.resolve(&target)?
            };
            let rows = s.lineage(&h)?;
            if json {
                print_json(&serde_json::json!({"hash": h, "records": rows}))?;
            } else {
                let mut out = std::io::stdout().lock();
                for r in rows {
                    let what = if r.role == "input" {
                        "consumed by"
                    } else {
                        "produced by"
                    };
                    writeln!(
                        out,
                        "{what} {} run {} job {} ({}: {})",
                        printable(&r.workflow),
                        printable(&r.run_id),
                        printable(&r.job_id),
                        r.role,
                        printable(&r.path)
                    )?;
                }
            }
        }
        Cmd::Env { json: _ } => {
            print_json(&store::env::capture())?;
        }
        Cmd::Metadata {
            cmd: MetadataCmd::Export { format },
        } => {
            let s = open(&cli.store)?;
            let v = s.metadata_export()?;
            match format.as_str() {
                "json" => print_json(&v)?,
                "yaml" => {
                    let mut out = std::io::stdout().lock();
                    serde_norway::to_writer(&mut out, &v)?;
                }
                _ => anyhow::bail!(store::Error::Invalid(format!(
                    "unknown format {format:?} (json, yaml)"
                ))),
            }
        }
        Cmd::Metadata {
            cmd: MetadataCmd::Commit { repo },
        } => {
            let s = open(&cli.store)?;
            let repo = repo
                .or_else(|| s.config().metadata_repo.clone().map(PathBuf::from))
                .ok_or_else(|| {
                    store::Error::Invalid(
                        "no metadata repository: give --repo or `store config set metadata.repo PATH`".into(),
                    )
                })?;
            let c = s.metadata_commit(&repo)?;
            println!(
                "{}  {} {}{}",
                c.commit,
                repo.display(),
                c.branch,
                if c.pushed { " (pushed)" } else { "" }
            );
        }
        Cmd::Mlflow {
            cmd: MlflowCmd::Sync { runs, json },
        } => {
            let s = open(&cli.store)?;
            let reports = s.mlflow_sync(&runs)?;
            if json {
                print_json(&reports)?;
            } else {
                for r in &reports {
                    match (&r.parent_url, &r.pending) {
                        (Some(url), _) => println!(
                            "{}  {url}  ({} job runs, {} created, {} requests)",
                            r.run_id, r.jobs, r.created, r.requests
                        ),
                        (None, why) => eprintln!(
                            "store: MLflow still pending for run {}: {}",
                            r.run_id,
                            why.as_deref().unwrap_or("unknown")
                        ),
                    }
                }
                if reports.is_empty() && !cli.quiet {
                    eprintln!("nothing pending");
                }
            }
            if reports.iter().any(|r| r.pending.is_some()) {
                return Ok(exit::REMOTE);
            }
        }
        Cmd::Mlflow {
            cmd: MlflowCmd::Pending,
        } => {
            let s = open(&cli.store)?;
            for r in s.mlflow_pending()? {
                println!("{r}");
            }
        }
        Cmd::Config {
            cmd: ConfigCmd::Set { key, value },
        } => {
            let mut s = open(&cli.store)?;
            s.set_config(&key, &value)?;
        }
        Cmd::Config {
            cmd: ConfigCmd::List,
        } => {
            let s = open(&cli.store)?;
            print_json(s.config())?;
        }
        Cmd::Log { path, json } => {
            let s = open(&cli.store)?;
            let key = match &path {
                Some(p) => Some(std::path::absolute(p)?.to_string_lossy().into_owned()),
                None => None,
            };
            let rows = s.history(key.as_deref())?;
            if json {
                let v: Vec<_> = rows.iter().map(root_json).collect();
                print_json(&v)?;
            } else {
                let mut out = std::io::stdout().lock();
                for r in rows {
                    let secs = r.time_ns / 1_000_000_000;
                    writeln!(
                        out,
                        "{}  {:<4}  {:>10}  t={secs}  {}",
                        r.hash,
                        printable(&r.kind),
                        human_bytes(r.size),
                        printable(&r.path)
                    )?;
                }
            }
        }
        Cmd::Cat { hash } => {
            let s = open(&cli.store)?;
            let h = s.resolve(&hash)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match s.cat(&h, &mut out) {
                Err(store::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => {
                    r?;
                }
            }
            if let Err(e) = out.flush() {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
        Cmd::Checkout {
            hash,
            to,
            role,
            force,
            link,
            json,
        } => {
            let s = open(&cli.store)?;
            let link: LinkMode = link.parse()?;
            let opts = CheckoutOptions { link, progress };
            if s.resolve_run(&hash).is_err()
                && s.resolve(&hash).is_err()
                && s.remotes()?.default.is_some()
            {
                // A run this workspace has not seen: fetch its records from the default remote
                // (the content follows on demand).
                warn_damage(&s.pull_run_records(&hash, progress)?);
            }
            let is_run = match (s.resolve_run(&hash), s.resolve(&hash)) {
                (Ok(run), Ok(obj)) if run.run_id != hash => {
                    anyhow::bail!(store::Error::RunNotFound(format!(
                        "{hash:?} is a prefix of run {} and of object {obj}; give more characters",
                        run.run_id
                    )))
                }
                (Ok(_), _) => true,
                (Err(store::Error::RunNotFound(msg)), _) if msg.contains("ambiguous") => {
                    anyhow::bail!(store::Error::RunNotFound(msg))
                }
                _ => false,
            };
            let r = if is_run {
                let roles = role
                    .iter()
                    .map(|r| r.parse())
                    .collect::<Result<Vec<store::run::Role>, _>>()?;
                let to = to.unwrap_or_else(|| PathBuf::from("."));
                let (run, r) = s.checkout_run(&hash, &to, &roles, force, &opts)?;
                if !cli.quiet && !json {
                    eprintln!("run {} of workflow {}", run.run_id, run.workflow);
                }
                r
            } else {
                let to = to.ok_or_else(|| {
                    store::Error::Invalid("checkout of a hash needs --to DIR".into())
                })?;
                let h = s.resolve(&hash)?;
                s.checkout(&h, &to, &opts)?
            };
            if json {
                print_json(&r)?;
            } else if !cli.quiet {
                println!(
                    "restored {} files ({}) to {} [{} reflinked, {} hard-linked]",
                    r.files,
                    human_bytes(r.bytes),
                    r.path.display(),
                    r.reflinked,
                    r.hardlinked
                );
            }
        }
        Cmd::Verify {
            json,
            remote: Some(remote),
            sample,
            jobs,
        } => {
            let s = open(&cli.store)?;
            let r = s.verify_remote(Some(&remote), sample, jobs)?;
            if json {
                print_json(&r)?;
            } else {
                for p in &r.problems {
                    match &p.object {
                        Some(o) => eprintln!(
                            "CORRUPT remote {} object {o}: {}",
                            p.pack,
                            printable(&p.detail)
                        ),
                        None => eprintln!("CORRUPT remote {}: {}", p.pack, printable(&p.detail)),
                    }
                }
                if !cli.quiet {
                    println!(
                        "checked {} packs, {} objects, {} on remote {}: {}",
                        r.packs,
                        r.objects,
                        human_bytes(r.bytes),
                        r.remote,
                        if r.problems.is_empty() {
                            "ok".to_string()
                        } else {
                            format!("{} problems", r.problems.len())
                        }
                    );
                    if !r.unreferenced.is_empty() {
                        println!(
                            "{} packs ({}) are named by no index segment: left by a push that \
                             stopped before its segment (pushing again reuses them), or being \
                             written by a push still running",
                            r.unreferenced.len(),
                            human_bytes(r.unreferenced.iter().map(|(_, n)| n).sum())
                        );
                    }
                    if !r.partial_uploads.is_empty() {
                        println!(
                            "{} partial uploads in tmp/ ({}), left by killed pushes or being \
                             written by a running one; the next push removes those older than \
                             {} minutes:",
                            r.partial_uploads.len(),
                            human_bytes(r.partial_uploads.iter().map(|p| p.size).sum()),
                            store::remote::STALE_UPLOAD_AGE.as_secs() / 60
                        );
                        for p in &r.partial_uploads {
                            println!(
                                "  {}  {}  {} s old",
                                printable(&p.key),
                                human_bytes(p.size),
                                p.age_secs
                            );
                        }
                    }
                }
            }
            if !r.problems.is_empty() {
                return Ok(exit::CORRUPT);
            }
        }
        Cmd::Verify { json, .. } => {
            // A damaged index is reported with the rest, not a reason to check nothing.
            let s = open_for_repair(&cli.store)?;
            let r = s.verify()?;
            if json {
                print_json(&r)?;
            } else {
                let index = s.index_path().display().to_string();
                for p in &r.problems {
                    let what = if p.pack == index { "index" } else { "pack" };
                    match &p.object {
                        Some(o) => {
                            eprintln!("CORRUPT {what} {} object {}: {}", p.pack, o, p.detail)
                        }
                        None => eprintln!("CORRUPT {what} {}: {}", p.pack, p.detail),
                    }
                }
                if !cli.quiet {
                    println!(
                        "checked {} packs, {} objects, {}: {}",
                        r.packs,
                        r.objects,
                        human_bytes(r.bytes),
                        if r.problems.is_empty() {
                            "ok".to_string()
                        } else {
                            format!("{} problems", r.problems.len())
                        }
                    );
                }
            }
            if !r.problems.is_empty() {
                return Ok(exit::CORRUPT);
            }
        }
        Cmd::Gc {
            yes,
            keep_last,
            json,
        } => {
            let s = open(&cli.store)?;
            let r = s.gc(yes, keep_last)?;
            if json {
                print_json(&r)?;
            } else {
                let verb = if yes { "removed" } else { "would remove" };
                println!(
                    "{verb}: {} unreferenced objects ({}), {} packs deleted, {} packs repacked, {} orphan packs, {} stale temporary files, {} cached files, {} old versions",
                    r.dead_objects,
                    human_bytes(r.dead_bytes),
                    r.packs_deleted.len(),
                    r.packs_repacked.len(),
                    r.orphan_packs.len(),
                    r.stale_temp_files.len(),
                    r.cache_files.len(),
                    r.versions_dropped
                );
                for p in &r.adopted_packs {
                    eprintln!("store: warning: adopted unindexed pack {p}: it holds live objects the index did not locate (run `store verify`)");
                }
                for p in &r.kept_unreadable_packs {
                    eprintln!("store: warning: kept unreadable pack {p} (run `store verify`)");
                }
                if !yes
                    && (r.dead_objects > 0
                        || !r.orphan_packs.is_empty()
                        || !r.stale_temp_files.is_empty())
                {
                    println!("run `store gc --yes` to remove them");
                }
            }
        }
        Cmd::Stats { json } => {
            let s = open(&cli.store)?;
            let st = s.stats()?;
            if json {
                print_json(&st)?;
            } else {
                println!("tracked paths:     {}", st.roots);
                println!("logical size:      {}", human_bytes(st.logical_bytes));
                println!("unique data:       {}", human_bytes(st.unique_bytes));
                println!("stored (packs):    {}", human_bytes(st.stored_bytes));
                println!("dedup ratio:       {:.2}x", st.dedup_ratio);
                println!("compression ratio: {:.2}x", st.compression_ratio);
                println!("objects / chunks:  {} / {}", st.objects, st.chunks);
                println!("packs:             {}", st.packs);
            }
        }
        Cmd::Reindex => {
            // Whatever state the index is in: reindex replaces it.
            let s = open_for_repair(&cli.store)?;
            let r = s.reindex().context("reindex")?;
            for p in &r.problems {
                match &p.object {
                    Some(o) => eprintln!("not adopted: object {o} in {}: {}", p.pack, p.detail),
                    None => eprintln!("skipped damaged pack {}: {}", p.pack, p.detail),
                }
            }
            if !cli.quiet {
                println!("reindexed {} packs, {} objects", r.packs, r.objects);
            }
            if !r.problems.is_empty() {
                return Ok(exit::CORRUPT);
            }
        }
        Cmd::Remote { cmd } => remote_cmd(&cli.store, cmd)?,
        Cmd::Push { args, jobs, json } => {
            let s = open(&cli.store)?;
            let (remote, runs) = split_remote(&s, args)?;
            let r = s.push(
                remote.as_deref(),
                &store::PushOptions {
                    runs,
                    jobs,
                    progress,
                    merge_at: merge_at(),
                },
            )?;
            if json {
                print_json(&r)?;
            } else if !cli.quiet {
                println!(
                    "pushed {} objects in {} packs ({}) to {}; {} packs already there; {} runs published; {} requests",
                    r.objects,
                    r.packs_uploaded,
                    human_bytes(r.bytes_uploaded),
                    r.remote,
                    r.packs_skipped,
                    r.runs.len(),
                    r.requests
                );
                if !r.stale_uploads_removed.is_empty() {
                    println!(
                        "removed {} partial uploads ({}) that killed pushes left in tmp/ of {}",
                        r.stale_uploads_removed.len(),
                        human_bytes(r.stale_uploads_removed.iter().map(|p| p.size).sum()),
                        r.remote
                    );
                }
            }
        }
        Cmd::Pull {
            args,
            metadata_only,
            jobs,
            json,
        } => {
            let s = open(&cli.store)?;
            let (remote, runs) = split_remote(&s, args)?;
            let r = s.pull(
                remote.as_deref(),
                &store::PullOptions {
                    runs,
                    jobs,
                    progress,
                    metadata_only,
                },
            )?;
            if json {
                print_json(&r)?;
            } else if !cli.quiet {
                println!(
                    "pulled {} objects ({}) from {}; {} runs, {} paths adopted; {} requests",
                    r.objects,
                    human_bytes(r.bytes),
                    r.remote,
                    r.runs.len(),
                    r.roots,
                    r.requests
                );
            }
            if warn_damage(&r) {
                return Ok(exit::PARTIAL);
            }
        }
        Cmd::Clone {
            url,
            dir,
            opts,
            jobs,
            json,
        } => {
            let spec = opts.spec(url)?;
            let (s, r) = store::clone_remote(spec, &dir, jobs, progress)?;
            if json {
                print_json(&r)?;
            } else if !cli.quiet {
                println!(
                    "cloned into {}: {} runs, {} paths known ({} of metadata); content is fetched on checkout",
                    s.workspace().display(),
                    r.runs.len(),
                    r.roots,
                    human_bytes(r.bytes)
                );
            }
            if warn_damage(&r) {
                return Ok(exit::PARTIAL);
            }
        }
    }
    Ok(exit::OK)
}

/// Warns about the damage a pull met on its remote and what it did not adopt for it; true if
/// there was any (the command then exits with [`exit::PARTIAL`]).
fn warn_damage(r: &store::PullReport) -> bool {
    for p in &r.damaged {
        let object = p
            .object
            .as_deref()
            .map(|o| format!(" object {o}"))
            .unwrap_or_default();
        eprintln!(
            "store: warning: remote {}: damaged {}{object}: {}",
            r.remote,
            p.pack,
            printable(&p.detail)
        );
    }
    for s in &r.skipped {
        let object = s
            .object
            .as_deref()
            .map(|o| format!(" object {o}"))
            .unwrap_or_default();
        eprintln!(
            "store: warning: {} not adopted: it needs {}{object} of remote {}: {}",
            printable(&s.what),
            s.key,
            r.remote,
            printable(&s.detail)
        );
    }
    !(r.damaged.is_empty() && r.skipped.is_empty())
}

/// `push`/`pull` arguments: a leading configured remote name, then runs.
fn split_remote(s: &Store, mut args: Vec<String>) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let remotes = s.remotes()?;
    if args
        .first()
        .is_some_and(|a| remotes.remotes.contains_key(a))
    {
        let name = args.remove(0);
        return Ok((Some(name), args));
    }
    Ok((None, args))
}

fn remote_cmd(store_dir: &Option<PathBuf>, cmd: RemoteCmd) -> anyhow::Result<()> {
    let s = open(store_dir)?;
    match cmd {
        RemoteCmd::Add {
            name,
            url,
            opts,
            default,
        } => s.remote_add(&name, opts.spec(url)?, default)?,
        RemoteCmd::List { json } => {
            let r = s.remotes()?;
            if json {
                print_json(&r)?;
            } else {
                for (name, spec) in &r.remotes {
                    let mark = if r.default.as_deref() == Some(name) {
                        "*"
                    } else {
                        " "
                    };
                    let opts: Vec<String> = spec
                        .options
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    println!("{mark} {name}\t{}\t{}", spec.url, opts.join(" "));
                }
            }
        }
        RemoteCmd::Remove { name } => s.remote_remove(&name)?,
    }
    Ok(())
}
