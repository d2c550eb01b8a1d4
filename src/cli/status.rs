//! `store status`: what changed under tracked paths since their last add.

use std::io::Write;

use super::output::print_json;
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
        let mut out = std::io::stdout().lock();
        for e in &st {
            let tag = match e.change {
                store::Change::New => "new:      ",
                store::Change::Modified => "modified: ",
                store::Change::Deleted => "deleted:  ",
            };
            writeln!(out, "{tag}{}", e.path)?;
        }
        if st.is_empty() && !ctx.quiet {
            writeln!(out, "nothing changed")?;
        }
    }
    Ok(store::exit::OK)
}
