//! `store diff`: which entries differ between two runs, per role; renames; what changed
//! inside each job's environment. Run identity (run ID, job timing) is never a difference.

use std::io::Write;

use super::output::{print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// First run.
    a: String,
    /// Second run.
    b: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let d = s.diff_runs(&args.a, &args.b)?;
    if args.json {
        print_json(&d)?;
    } else {
        let mut out = std::io::stdout().lock();
        for (role, rd) in &d.roles {
            for (tag, names) in [("+", &rd.added), ("-", &rd.removed), ("M", &rd.changed)] {
                for n in names {
                    writeln!(out, "{tag} {:<12} {}", role.as_str(), printable(n))?;
                    if let Some(changes) = d
                        .environment_changes
                        .get(n)
                        .filter(|_| *role == store::run::Role::Environment && tag == "M")
                    {
                        for c in changes {
                            writeln!(out, "    {}", printable(c))?;
                        }
                    }
                }
            }
            for (from, to) in &rd.renamed {
                writeln!(
                    out,
                    "R {:<12} {} -> {}",
                    role.as_str(),
                    printable(from),
                    printable(to)
                )?;
            }
        }
    }
    Ok(store::exit::OK)
}
