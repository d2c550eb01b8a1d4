//! `store metadata`: the run catalog (export it, or commit it to a git repository).

use std::path::PathBuf;

use clap::Subcommand;

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    match args.cmd {
        Cmd::Export { format } => {
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
        Cmd::Commit { repo } => {
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
            if let Some(why) = &c.push_error {
                eprintln!(
                    "store: warning: the commit stands, but pushing it to origin failed: {why}"
                );
                return Ok(store::exit::REMOTE);
            }
        }
    }
    Ok(store::exit::OK)
}
