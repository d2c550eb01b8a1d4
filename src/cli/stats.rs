//! `store stats`: sizes, dedup and compression ratios.

use super::output::{human_bytes, plural, print_json};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let st = s.stats()?;
    if args.json {
        print_json(&st)?;
    } else {
        println!(
            "tracked:           {}, {}; {}",
            plural(st.roots, "path", "paths"),
            plural(st.versions, "version", "versions"),
            plural(st.runs, "run", "runs")
        );
        println!(
            "logical size:      {}  (every version and every run's files, each counted whole)",
            human_bytes(st.logical_bytes)
        );
        println!(
            "unique data:       {}  (the same content, each chunk once, uncompressed)",
            human_bytes(st.unique_bytes)
        );
        println!("stored (packs):    {}", human_bytes(st.stored_bytes));
        println!(
            "dedup ratio:       {:.2}x  (logical / unique)",
            st.dedup_ratio
        );
        println!(
            "compression ratio: {:.2}x  (unique / stored)",
            st.compression_ratio
        );
        println!("objects / chunks:  {} / {}", st.objects, st.chunks);
        println!("packs:             {}", st.packs);
    }
    Ok(store::exit::OK)
}
