//! `store cat`: write a file object to stdout.

use std::io::Write;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// File hash or unique prefix.
    hash: String,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let h = s.resolve(&args.hash)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A reader that stops early (`store cat HASH | head`) is not an error.
    match s.cat(&h, &mut out) {
        Err(store::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
        }
        r => {
            r?;
        }
    }
    if let Err(e) = out.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(store::exit::OK)
}
