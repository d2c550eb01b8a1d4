//! `store lineage`: which runs and jobs consumed or produced a file.

use std::io::Write;
use std::path::Path;

use super::output::{print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// A path on disk, or a hash (prefix).
    target: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    // A path that exists wins over a hash prefix of the same spelling.
    let p = Path::new(&args.target);
    let h = if p.exists() {
        s.hash_path(p)?
    } else {
        s.resolve(&args.target)?
    };
    let rows = s.lineage(&h)?;
    if args.json {
        print_json(&serde_json::json!({"hash": h, "records": rows}))?;
    } else {
        let mut out = std::io::stdout().lock();
        for r in rows {
            let what = match r.direction.as_str() {
                "consumed" => "consumed by",
                "produced" => "produced by",
                "recorded" => "recorded by",
                _ => "used (direction not recorded) by",
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
    Ok(store::exit::OK)
}
