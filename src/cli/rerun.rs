//! `store rerun`: restore a sealed run, run its recorded workflow again, compare the outputs.

use std::path::{Path, PathBuf};

use store::{CheckoutOptions, LinkMode};

use super::augment::dir_of;
use super::output::print_json;
use super::run::augment_locally;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID or unique prefix.
    run: String,
    /// Jobs at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Tracking policy of the new run.
    #[arg(long, default_value = "full")]
    policy: String,
    /// Working directory (default: reruns/<new run id>).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let old = s.resolve_run(&args.run)?;
    let snap = s.run_snapshot(&old)?;
    // The root's description; those of its sub-workflows are under the names their
    // parents give them.
    let root_lfn = format!("{}.store-workflow.yml", snap.workflow);
    let descriptions: Vec<&store::run::RunEntry> = snap
        .entries
        .iter()
        .filter(|e| e.role == store::run::Role::Workflow)
        .collect();
    let wf_entry = descriptions
        .iter()
        .find(|e| e.lfn == root_lfn)
        .or(descriptions.first())
        .ok_or_else(|| {
            store::Error::Invalid(format!(
                "run {} did not track its workflow description (track it with policy full or wf_track)",
                old.run_id
            ))
        })?;
    let new_id = store::runner::new_run_id();
    let base = args
        .workdir
        .unwrap_or_else(|| PathBuf::from("reruns").join(&new_id));
    let restored = base.join("restored");
    let work = base.join("work");
    std::fs::create_dir_all(&work).map_err(|e| store::Error::io(&work, e))?;
    s.checkout_run(
        &old.run_id,
        &restored,
        &[],
        false,
        &CheckoutOptions {
            link: LinkMode::Copy,
            progress: ctx.progress(),
        },
    )?;
    let wf_path = restored.join(&wf_entry.path);
    let files = descriptions
        .iter()
        .map(|e| Ok((e.lfn.clone(), std::path::absolute(restored.join(&e.path))?)))
        .collect::<std::io::Result<_>>()?;
    let tree = store::pegasus::WorkflowTree::load_with(&wf_path, &files)?;
    // Executables named relative to the workflow files get the run's recorded code.
    let wf_dir = dir_of(&wf_path)?;
    for j in tree.plan()? {
        let Some(exe) = j.executable.map(PathBuf::from) else {
            continue;
        };
        let Ok(rel) = exe.strip_prefix(&wf_dir) else {
            continue;
        };
        if exe.exists() {
            continue;
        }
        let code = snap
            .entries
            .iter()
            .find(|e| e.role == store::run::Role::Code && Path::new(&e.lfn).ends_with(rel));
        if let Some(e) = code {
            if let Some(parent) = exe.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(restored.join(&e.path), &exe)?;
        }
    }
    let (tracked, _) = augment_locally(
        &s,
        tree,
        Some(args.policy.parse()?),
        &new_id,
        &work,
        false,
        ctx.quiet,
    )?;
    // Inputs come from the restored run, not from wherever the catalog pointed then.
    let mut replicas = tracked.replicas();
    for e in snap
        .entries
        .iter()
        .filter(|e| e.role == store::run::Role::Input)
    {
        let p = std::path::absolute(restored.join(&e.path))?;
        replicas.insert(e.lfn.clone(), p.to_string_lossy().into_owned());
    }
    let plan = tracked.plan()?;
    let out = store::runner::run_jobs(&plan, &replicas, &new_id, &work, args.jobs)?;
    if let Some((job, why)) = &out.failed {
        anyhow::bail!("job {job} of rerun {new_id} failed: {why}");
    }
    // Same results? Compare each recorded output and intermediate file with what the
    // rerun produced (an intermediate recorded twice, by producer and consumer, once).
    let mut compared = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in snap.entries.iter().filter(|e| {
        matches!(
            e.role,
            store::run::Role::Output | store::run::Role::Intermediate
        )
    }) {
        if !seen.insert((e.lfn.clone(), e.hash)) {
            continue;
        }
        let p = work.join(&e.lfn);
        let now = if p.exists() {
            Some(s.hash_path(&p)?)
        } else {
            None
        };
        compared.push(
            serde_json::json!({"lfn": e.lfn, "role": e.role, "identical": now == Some(e.hash)}),
        );
    }
    let all_same = compared.iter().all(|c| c["identical"] == true);
    if args.json {
        print_json(
            &serde_json::json!({"old_run": old.run_id, "new_run": new_id, "outputs": compared, "identical": all_same}),
        )?;
    } else {
        println!("{new_id}");
        if !ctx.quiet {
            eprintln!(
                "rerun of {} as {new_id}: outputs {}",
                old.run_id,
                if all_same { "identical" } else { "DIFFER" }
            );
        }
    }
    Ok(store::exit::OK)
}
