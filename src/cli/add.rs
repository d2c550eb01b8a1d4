//! `store add`: add paths, optionally recording them into a run.

use std::io::Write;
use std::path::PathBuf;

use store::{exit, AddOptions};

use super::output::{human_bytes, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let opts = AddOptions {
        progress: ctx.progress(),
        ..AddOptions::default()
    };
    let r = match args.role {
        Some(role) => {
            let spec = store::run::RecordSpec {
                ctx: store::run::RunContext::resolve(args.wf, args.run, args.job)?,
                role: role.parse()?,
                roles: Vec::new(),
                lfn: args.lfn,
                capture_env: !args.no_env,
                mlflow_url: None,
                direction: None,
            };
            s.record(&args.paths, spec, &opts)?
        }
        None => {
            if args.lfn.is_some() || args.wf.is_some() || args.run.is_some() || args.job.is_some() {
                anyhow::bail!(store::Error::Invalid(
                    "--lfn/--wf/--run/--job record into a run: give --role too".into()
                ));
            }
            s.add(&args.paths, &opts)?
        }
    };
    for w in &r.warnings {
        eprintln!("store: warning: {w}");
    }
    if args.json {
        print_json(&r)?;
    } else {
        let mut out = std::io::stdout().lock();
        for a in &r.added {
            writeln!(out, "{}  {}", a.hash, a.path.display())?;
        }
        if !ctx.quiet {
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
    Ok(exit::OK)
}
