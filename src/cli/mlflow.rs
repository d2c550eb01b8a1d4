//! `store mlflow`: send what is pending to MLflow, or list it.

use clap::Subcommand;
use store::exit;

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    match args.cmd {
        Cmd::Sync { runs, json } => {
            let reports = s.mlflow_sync(&runs)?;
            for r in &reports {
                if let Some(why) = &r.warning {
                    eprintln!(
                        "store: warning: MLflow has run {}'s tags but not its artifacts: {why}",
                        r.run_id
                    );
                }
            }
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
                if reports.is_empty() && !ctx.quiet {
                    eprintln!("nothing pending");
                }
            }
            if reports.iter().any(|r| r.pending.is_some()) {
                return Ok(exit::REMOTE);
            }
        }
        Cmd::Pending => {
            for r in s.mlflow_pending()? {
                println!("{r}");
            }
        }
    }
    Ok(exit::OK)
}
