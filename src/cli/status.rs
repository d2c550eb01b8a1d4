//! `store status`: what changed under tracked paths since their last add.

use std::io::Write;

use super::output::{print_json, shown_path};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let st = s.status()?;
    if args.json {
        print_json(&st)?;
    } else {
        let ws = s.workspace();
        let mut out = std::io::stdout().lock();
        for e in &st {
            let path = shown_path(&e.path, &ws);
            match e.change {
                store::Change::New => writeln!(out, "new:      {path}")?,
                store::Change::Modified => writeln!(out, "modified: {path}")?,
                store::Change::Deleted => writeln!(out, "deleted:  {path}")?,
                store::Change::LockDiffers => writeln!(
                    out,
                    "locked:   {path} (store.lock names another version; `store checkout` restores it)"
                )?,
            }
        }
        if st.is_empty() && !ctx.quiet {
            writeln!(out, "nothing changed")?;
        }
    }
    Ok(store::exit::OK)
}
