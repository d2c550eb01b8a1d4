//! `store init`: create a store.

use std::path::PathBuf;

use store::{ChunkParams, InitOptions, Store};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Average chunk size in bytes (power of two; min = avg/4, max = avg*4).
    #[arg(long, value_name = "BYTES")]
    chunk_avg: Option<u32>,
    /// zstd compression level for new objects.
    #[arg(long, value_name = "N")]
    zstd_level: Option<i32>,
    /// Print `{"store": DIR, "created": true}` as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    // No store is discovered upwards: a new one goes here unless told where.
    let dir = match (&ctx.store, std::env::var_os("STORE_DIR")) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => PathBuf::from(store::STORE_DIR_NAME),
    };
    let chunking = args.chunk_avg.map(ChunkParams::with_avg).transpose()?;
    let s = Store::init(
        &dir,
        &InitOptions {
            chunking,
            zstd_level: args.zstd_level,
        },
    )?;
    s.ignore_store_in_git()?;
    if args.json {
        let dir = std::path::absolute(s.dir())?;
        super::output::print_json(&serde_json::json!({"store": dir, "created": true}))?;
    } else if !ctx.quiet {
        println!("initialized empty store in {}", s.dir().display());
    }
    Ok(store::exit::OK)
}
