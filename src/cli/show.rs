//! `store show`: what a run tracked: one line per distinct file (its role, who wrote it, who
//! read it), or with `--by-job` one line per record, per role.

use std::collections::BTreeMap;
use std::io::Write;

use store::run::counts::direction;
use store::run::{Role, RunCounts, RunEntry};

use super::output::{human_bytes, human_time, plural, print_json, printable};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix.
    run: String,
    /// One line per (job, file) record, per role, instead of one per file.
    #[arg(long)]
    by_job: bool,
    /// Print JSON (the run's snapshot, with its counts).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let row = s.resolve_run(&args.run)?;
    let mut snap = s.run_snapshot(&row)?;
    s.mlflow_overlay(&mut snap)?;
    s.published_overlay(&mut snap)?;
    let pending = s.pending_push(&row.run_id)?;
    let counts = RunCounts::of(&snap.entries);
    if args.json {
        let mut v = serde_json::to_value(&snap)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("counts".into(), serde_json::to_value(counts)?);
            if let Some(p) = &pending {
                m.insert("pending".into(), serde_json::to_value(p)?);
            }
            let pubs = s.publications(&row.run_id)?;
            if !pubs.is_empty() {
                m.insert("published".into(), serde_json::to_value(pubs)?);
            }
        }
        print_json(&v)?;
        return Ok(store::exit::OK);
    }
    let mut out = std::io::stdout().lock();
    let state = match row.sealed_ns {
        Some(t) => format!("sealed {}", human_time(t)),
        None => "open".to_string(),
    };
    writeln!(
        out,
        "workflow {}  run {}  {state}",
        printable(&snap.workflow),
        printable(&snap.run_id),
    )?;
    writeln!(
        out,
        "{}, {}, {}, {}",
        plural(counts.jobs, "job", "jobs"),
        plural(counts.files, "file", "files"),
        plural(counts.records, "record", "records"),
        human_bytes(counts.bytes)
    )?;
    if let Some(p) = &pending {
        writeln!(out, "  {}", printable(&p.describe()))?;
    }
    for p in s.publications(&row.run_id)? {
        let at = p.metadata_urls.last().or(p.metadata_urls.first());
        writeln!(
            out,
            "  published on {} ({} files): {}",
            printable(&p.remote),
            p.files.len(),
            printable(at.map_or(p.folder.as_str(), String::as_str))
        )?;
    }
    if args.by_job {
        by_job(&mut out, &snap.entries)?;
    } else {
        by_file(&mut out, &snap.entries)?;
    }
    Ok(store::exit::OK)
}

/// One line per distinct file (path and version), under its role: who wrote it, who read it.
fn by_file(out: &mut impl Write, entries: &[RunEntry]) -> std::io::Result<()> {
    // (role, path, version) -> the records of it
    let mut files: BTreeMap<(Role, &str, store::Hash), Vec<&RunEntry>> = BTreeMap::new();
    for e in entries {
        files.entry((e.role, &e.path, e.hash)).or_default().push(e);
    }
    let mut role = None;
    for ((r, path, hash), es) in &files {
        if role != Some(*r) {
            writeln!(out, "{}:", r.as_str())?;
            role = Some(*r);
        }
        let jobs = |dir: &str| -> Vec<&str> {
            let mut v: Vec<&str> = es
                .iter()
                .filter(|e| direction(e) == dir)
                .map(|e| e.job_id.as_str())
                .collect();
            v.dedup();
            v
        };
        let mut who = Vec::new();
        for (dir, verb) in [
            ("produced", "written by"),
            ("consumed", "read by"),
            ("unknown", "recorded by"),
            ("recorded", "recorded by"),
        ] {
            let js = jobs(dir);
            if !js.is_empty() {
                who.push(format!("{verb} {}", job_list(&js)));
            }
        }
        writeln!(
            out,
            "  {}  {:>10}  {}  {}",
            hash.short(),
            human_bytes(es[0].size),
            printable(path),
            who.join(", ")
        )?;
        if let Some(u) = es.iter().find_map(|e| e.mlflow_url.as_deref()) {
            writeln!(out, "      mlflow {}", printable(u))?;
        }
    }
    Ok(())
}

/// `a`, `a and b`, `3 jobs (a, b, c)`, `12 jobs (a, b, c, ...)`.
fn job_list(jobs: &[&str]) -> String {
    let names: Vec<String> = jobs
        .iter()
        .take(3)
        .map(|j| printable(j).into_owned())
        .collect();
    match jobs.len() {
        1 => names[0].clone(),
        2 => format!("{} and {}", names[0], names[1]),
        3 => format!("3 jobs ({})", names.join(", ")),
        n => format!("{n} jobs ({}, ...)", names.join(", ")),
    }
}

/// One line per record, per role (the view before files were grouped).
fn by_job(out: &mut impl Write, entries: &[RunEntry]) -> std::io::Result<()> {
    for role in Role::ALL {
        let es: Vec<_> = entries.iter().filter(|e| e.role == role).collect();
        if es.is_empty() {
            continue;
        }
        writeln!(out, "{}:", role.as_str())?;
        for e in es {
            writeln!(
                out,
                "  {}  {:>10}  job {:<16}  {:<8}  {}",
                e.hash.short(),
                human_bytes(e.size),
                printable(&e.job_id),
                direction(e),
                printable(&e.path)
            )?;
            if let Some(u) = &e.mlflow_url {
                writeln!(out, "      mlflow {}", printable(u))?;
            }
        }
    }
    Ok(())
}
