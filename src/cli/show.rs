//! `store show`: what a run tracked, per role and job.

use std::io::Write;

use super::output::{human_bytes, print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix.
    run: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let row = s.resolve_run(&args.run)?;
    let mut snap = s.run_snapshot(&row)?;
    s.mlflow_overlay(&mut snap)?;
    let pending = s.pending_push(&row.run_id)?;
    if args.json {
        let mut v = serde_json::to_value(&snap)?;
        if let (Some(p), Some(m)) = (&pending, v.as_object_mut()) {
            m.insert("pending".into(), serde_json::to_value(p)?);
        }
        print_json(&v)?;
        return Ok(store::exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "workflow {}  run {}  {}",
        printable(&snap.workflow),
        printable(&snap.run_id),
        if row.sealed_ns.is_some() {
            "sealed"
        } else {
            "open"
        }
    )?;
    if let Some(p) = &pending {
        writeln!(out, "  {}", printable(&p.describe()))?;
    }
    for role in store::run::Role::ALL {
        let es: Vec<_> = snap.entries.iter().filter(|e| e.role == role).collect();
        if es.is_empty() {
            continue;
        }
        writeln!(out, "{}:", role.as_str())?;
        for e in es {
            writeln!(
                out,
                "  {}  {:>10}  job {:<16}  {}",
                e.hash.short(),
                human_bytes(e.size),
                printable(&e.job_id),
                printable(&e.path)
            )?;
            if let Some(u) = &e.mlflow_url {
                writeln!(out, "      mlflow {}", printable(u))?;
            }
        }
    }
    Ok(store::exit::OK)
}
