//! `store log`: every version of every tracked path (or of one), newest first.

use std::io::Write;
use std::path::PathBuf;

use super::output::{human_bytes, human_time, print_json, printable, root_json, shown_path};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// A tracked path.
    path: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    // Tracked paths are keyed by their absolute form.
    let key = match &args.path {
        Some(p) => Some(std::path::absolute(p)?.to_string_lossy().into_owned()),
        None => None,
    };
    let rows = s.history(key.as_deref())?;
    if args.json {
        let v: Vec<_> = rows.iter().map(root_json).collect();
        print_json(&v)?;
    } else {
        let ws = s.workspace();
        let mut out = std::io::stdout().lock();
        for r in rows {
            writeln!(
                out,
                "{}  {:<4}  {:>10}  {}  {}",
                r.hash,
                printable(&r.kind),
                human_bytes(r.size),
                human_time(r.time_ns),
                shown_path(&r.path, &ws)
            )?;
        }
    }
    Ok(store::exit::OK)
}
