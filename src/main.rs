//! The `store` command line: a thin layer over [`store::Store`]. This file parses the
//! command line and dispatches; each command lives in its own module under `cli/`.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use store::exit;

/// A content-addressed versioning store for scientific and ML workflows.
#[derive(Parser)]
#[command(name = "store", version, about, after_help = cli::EXIT_CODES)]
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
    Init(cli::init::Args),
    /// Add files and directories (recursively); prints the hash of each top-level path.
    /// With --role, also records them into a workflow run (run from --wf/--run/--job or the
    /// PEGASUS_WF_LABEL / PEGASUS_WF_UUID / PEGASUS_DAG_JOB_ID variables).
    Add(cli::add::Args),
    /// Record files into a run, each with its role (`ROLE:PATH`); what tracking jobs call.
    Track(cli::track::Args),
    /// Add tracking jobs to a Pegasus 5 workflow (main jobs and their dependencies unchanged);
    /// sub-workflows are augmented too and written beside the output.
    Augment(cli::augment::Args),
    /// Run a Pegasus 5 workflow on this machine with tracking: augment it, execute its jobs in
    /// dependency order (up to --jobs at once), seal the run, print the run ID.
    Run(cli::run::Args),
    /// Run a sealed run again: restore it (verified) into WORKDIR/restored, run its recorded
    /// workflow on the restored inputs as a new run, and compare the outputs.
    Rerun(cli::rerun::Args),
    /// Seal a run: merge its jobs' records into one immutable snapshot (idempotent).
    Seal(cli::seal::Args),
    /// List workflow runs, newest first.
    Runs(cli::runs::Args),
    /// Show what a run tracked: each file, its role, who wrote it and who read it.
    Show(cli::show::Args),
    /// Write a run's report: one self-contained HTML page with its graph, files and jobs.
    Report(cli::report::Args),
    /// Write a static catalog site of the store: an index of workflows and runs, each run's
    /// report, and a lineage page per tracked file; only what changed is rewritten.
    Site(cli::site::Args),
    /// Print a run's graph of jobs and files (JSON, Graphviz dot or Mermaid).
    Dag(cli::dag::Args),
    /// Which inputs, outputs, code, workflow and environment entries differ between two runs.
    Diff(cli::diff::Args),
    /// Which runs and jobs consumed or produced a file (by path or hash).
    Lineage(cli::lineage::Args),
    /// Capture the execution environment (secrets never included).
    Env(cli::env::Args),
    /// The run catalog: workflow -> run -> file -> record.
    Metadata(cli::metadata::Args),
    /// MLflow linkage: send what is pending.
    Mlflow(cli::mlflow::Args),
    /// Read or change the store's configuration.
    Config(cli::config::Args),
    /// Show new, modified and deleted files under tracked paths since their last add.
    Status(cli::status::Args),
    /// List tracked paths, or the entries of a tree.
    Ls(cli::ls::Args),
    /// Every version of every tracked path (or of PATH), newest first.
    Log(cli::log::Args),
    /// Write the content of a file object to stdout.
    Cat(cli::cat::Args),
    /// Restore a run (by run ID or prefix), a file or tree (by hash), or tracked paths in place, verifying every chunk.
    Checkout(cli::checkout::Args),
    /// Re-hash every object of every pack; name each damaged pack and object. With --remote,
    /// check a remote instead (every pack, or a sample of --sample packs).
    Verify(cli::verify::Args),
    /// Remove what nothing references (dry run unless --yes). Every version of every added
    /// path is kept unless --keep-last limits it.
    Gc(cli::gc::Args),
    /// Logical and stored sizes, dedup and compression ratios.
    Stats(cli::stats::Args),
    /// Rebuild the index from the pack files.
    Reindex(cli::reindex::Args),
    /// Configure remotes (S3 and compatible, gs://, az://, Google Drive gdrive://, directories).
    Remote(cli::remote::Args),
    /// Upload runs (default: everything not yet there) to a remote: `push [REMOTE] [RUN...]`.
    Push(cli::push::Args),
    /// Publish sealed runs as folders people can browse on a remote (whole files by role,
    /// and metadata.json with every file's URL); unchanged files are copied server-side.
    Publish(cli::publish::Args),
    /// Download runs (default: everything) from a remote: `pull [REMOTE] [RUN...]`.
    Pull(cli::pull::Args),
    /// Complete what seals left pending: pushes to remotes, code pushes to git, MLflow.
    Sync(cli::sync::Args),
    /// Create a workspace in DIR from a remote; checkout then fetches only what it needs.
    Clone(cli::clone::Args),
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
    match dispatch(cli) {
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

/// Runs the parsed command; its exit status, or the error that ends it.
fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let ctx = cli::Ctx {
        store: cli.store,
        quiet: cli.quiet,
    };
    match cli.cmd {
        Cmd::Init(a) => cli::init::run(a, &ctx),
        Cmd::Add(a) => cli::add::run(a, &ctx),
        Cmd::Track(a) => cli::track::run(a, &ctx),
        Cmd::Augment(a) => cli::augment::run(a, &ctx),
        Cmd::Run(a) => cli::run::run(a, &ctx),
        Cmd::Rerun(a) => cli::rerun::run(a, &ctx),
        Cmd::Seal(a) => cli::seal::run(a, &ctx),
        Cmd::Runs(a) => cli::runs::run(a, &ctx),
        Cmd::Show(a) => cli::show::run(a, &ctx),
        Cmd::Report(a) => cli::report::run(a, &ctx),
        Cmd::Site(a) => cli::site::run(a, &ctx),
        Cmd::Dag(a) => cli::dag::run(a, &ctx),
        Cmd::Diff(a) => cli::diff::run(a, &ctx),
        Cmd::Lineage(a) => cli::lineage::run(a, &ctx),
        Cmd::Env(a) => cli::env::run(a, &ctx),
        Cmd::Metadata(a) => cli::metadata::run(a, &ctx),
        Cmd::Mlflow(a) => cli::mlflow::run(a, &ctx),
        Cmd::Config(a) => cli::config::run(a, &ctx),
        Cmd::Status(a) => cli::status::run(a, &ctx),
        Cmd::Ls(a) => cli::ls::run(a, &ctx),
        Cmd::Log(a) => cli::log::run(a, &ctx),
        Cmd::Cat(a) => cli::cat::run(a, &ctx),
        Cmd::Checkout(a) => cli::checkout::run(a, &ctx),
        Cmd::Verify(a) => cli::verify::run(a, &ctx),
        Cmd::Gc(a) => cli::gc::run(a, &ctx),
        Cmd::Stats(a) => cli::stats::run(a, &ctx),
        Cmd::Reindex(a) => cli::reindex::run(a, &ctx),
        Cmd::Remote(a) => cli::remote::run(a, &ctx),
        Cmd::Push(a) => cli::push::run(a, &ctx),
        Cmd::Publish(a) => cli::publish::run(a, &ctx),
        Cmd::Sync(a) => cli::sync::run(a, &ctx),
        Cmd::Pull(a) => cli::pull::run(a, &ctx),
        Cmd::Clone(a) => cli::clone::run(a, &ctx),
    }
}
