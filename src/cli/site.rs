//! `store site`: a static catalog of the store, a folder of self-contained HTML pages
//! ([`store::site`]), brought up to date incrementally.

use std::path::PathBuf;

use super::output::{human_time, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// The site's folder (created if missing; pages already there are updated).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let r = store::site::write(
        &s,
        &args.output,
        &store::site::SiteOptions {
            time: human_time,
            progress: ctx.progress(),
        },
    )?;
    if !ctx.quiet {
        eprintln!(
            "site {}: {} runs ({} written, {} unchanged), {} file pages ({} written){}",
            args.output.display(),
            r.runs,
            r.runs_written.len(),
            r.runs_unchanged,
            r.file_pages,
            r.file_pages_written,
            match r.removed.len() {
                0 => String::new(),
                1 => ", 1 page of a run or path no longer in the store removed".to_string(),
                n => format!(", {n} pages of runs or paths no longer in the store removed"),
            }
        );
    }
    if args.json {
        print_json(&r)?;
    } else {
        println!("{}", args.output.join("index.html").display());
    }
    Ok(store::exit::OK)
}
