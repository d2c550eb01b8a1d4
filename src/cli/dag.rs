//! `store dag`: a run's graph of jobs and files, for other tools.

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix.
    run: String,
    /// json (nodes with levels and rows, edges), dot (Graphviz) or mermaid.
    #[arg(long, default_value = "json", value_parser = ["json", "dot", "mermaid"])]
    format: String,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let row = s.resolve_run(&args.run)?;
    let dag = store::run::dag::Dag::of(&s.run_snapshot(&row)?);
    match args.format.as_str() {
        "dot" => print!("{}", dag.to_dot()),
        "mermaid" => print!("{}", dag.to_mermaid()),
        _ => print_json(&dag)?,
    }
    Ok(store::exit::OK)
}
