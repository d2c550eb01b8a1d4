//! `store report`: a run as one self-contained HTML page ([`store::report`]).

use std::path::PathBuf;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix.
    run: String,
    /// Where to write the page (default: <run id>.html).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Mark and list what differs from this run (ID or prefix).
    #[arg(long, value_name = "RUN")]
    against: Option<String>,
    /// Print `{"run_id", "path", "bytes"}` as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let row = s.resolve_run(&args.run)?;
    let mut snap = s.run_snapshot(&row)?;
    s.mlflow_overlay(&mut snap)?;
    s.published_overlay(&mut snap)?;
    let against = match &args.against {
        Some(other) => {
            let o = s.resolve_run(other)?;
            Some((o.run_id.clone(), s.diff_runs(&o.run_id, &row.run_id)?))
        }
        None => None,
    };
    let names = store::report::transformations(&s, &snap);
    let page = store::report::html(
        &snap,
        against.as_ref().map(|(id, d)| (id.as_str(), d)),
        &names,
    )?;
    let out = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{}.html", row.run_id)));
    store::util::atomic_write(&out, page.as_bytes())?;
    if args.json {
        super::output::print_json(&serde_json::json!({
            "run_id": row.run_id,
            "path": std::path::absolute(&out)?,
            "bytes": page.len(),
        }))?;
        return Ok(store::exit::OK);
    }
    if !ctx.quiet {
        eprintln!(
            "wrote {} ({}) for run {}",
            out.display(),
            store::util::human_bytes(page.len() as u64),
            row.run_id
        );
    }
    println!("{}", out.display());
    Ok(store::exit::OK)
}
