//! `store rerun`: restore a sealed run, run its recorded workflow again with the recorded code
//! and inputs only, and compare, job by job, code, inputs, environment and outputs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use store::{CheckoutOptions, LinkMode};

use super::output::{print_json, printable};
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
    /// Run jobs whose code the original run did not record with today's files at their
    /// original paths (the report marks those jobs).
    #[arg(long)]
    allow_unrecorded: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let old = s.resolve_run(&args.run)?;
    let snap = s.run_snapshot(&old)?;
    let new_id = store::runner::new_run_id();
    let base = args
        .workdir
        .unwrap_or_else(|| PathBuf::from("reruns").join(&new_id));
    let restored = std::path::absolute(base.join("restored"))?;
    let work = base.join("work");
    // Everything the run recorded, with its workflows rewritten to name the restored code,
    // inputs and sub-workflows: nothing is read from where they were then.
    let (_, r) = store::reproduce::checkout_replannable(
        &s,
        &old.run_id,
        &restored,
        &[],
        false,
        false,
        &CheckoutOptions {
            link: LinkMode::Copy,
            progress: ctx.progress(),
        },
    )?;
    let root = r.root_workflow.clone().ok_or_else(|| {
        store::Error::Invalid(format!(
            "run {} did not track its workflow description (track it with policy full or wf_track)",
            old.run_id
        ))
    })?;
    if !r.unrecorded.is_empty() && !args.allow_unrecorded {
        let missing: Vec<String> = r
            .unrecorded
            .iter()
            .map(|(_, name, pfn)| format!("transformation {name} ({pfn})"))
            .collect();
        anyhow::bail!(store::Error::Invalid(format!(
            "run {} did not record the code of {}: a rerun would run today's files. Track code \
             (policy full or transformations, or track_trans metadata), or pass \
             --allow-unrecorded to run them as they are now",
            old.run_id,
            missing.join(", ")
        )));
    }
    let tree = store::pegasus::WorkflowTree::load_with(
        &root,
        &store::reproduce::descriptions(&snap, &restored)?,
    )?;
    // A main job whose executable is not a restored file runs code the run did not record.
    let unrecorded: BTreeSet<String> = tree
        .plan()?
        .into_iter()
        .filter(|j| {
            j.executable
                .as_ref()
                .is_some_and(|x| !std::path::Path::new(x).starts_with(&restored))
        })
        .map(|j| j.id)
        .collect();
    std::fs::create_dir_all(&work).map_err(|e| store::Error::io(&work, e))?;
    let (tracked, _) = augment_locally(
        &s,
        tree,
        Some(args.policy.parse()?),
        &new_id,
        &work,
        false,
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
        let p = restored.join(&e.path);
        replicas.insert(e.lfn.clone(), p.to_string_lossy().into_owned());
    }
    let mut plan = tracked.plan()?;
    // (A sub-workflow the original wrote at run time was recorded, and is planned from the
    // record above; one still unrecorded runs nested, as in `store run`.)
    let store_bin = std::env::current_exe()?.to_string_lossy().into_owned();
    let store_dir = std::path::absolute(s.dir())?.to_string_lossy().into_owned();
    for j in &mut plan {
        j.run_nested(&store_bin, Some(&store_dir));
    }
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
    // Job by job: the new run is sealed by its own seal job.
    let jobs = match s.resolve_run(&new_id).and_then(|n| s.run_snapshot(&n)) {
        Ok(new) => s.compare_jobs(&snap, &new, &unrecorded)?,
        Err(_) => Vec::new(),
    };
    if args.json {
        print_json(&serde_json::json!({
            "old_run": old.run_id,
            "new_run": new_id,
            "outputs": compared,
            "identical": all_same,
            "jobs": jobs,
            "unrecorded_code": unrecorded,
            "restored": r.report.path,
        }))?;
    } else {
        println!("{new_id}");
        if !ctx.quiet {
            eprintln!(
                "rerun of {} as {new_id}: outputs {}",
                old.run_id,
                if all_same { "identical" } else { "DIFFER" }
            );
            for j in &jobs {
                let mut notes = Vec::new();
                if !j.code_recorded {
                    notes.push("ran UNRECORDED code".to_string());
                }
                if !j.inputs_match {
                    notes.push(format!("inputs differ: {}", j.inputs_differ.join(", ")));
                }
                if !j.environment_match {
                    notes.push(format!("environment: {}", j.environment_changes.join("; ")));
                }
                if !j.outputs_match {
                    notes.push(format!("outputs differ: {}", j.outputs_differ.join(", ")));
                }
                if !notes.is_empty() {
                    eprintln!(
                        "  job {}: {}",
                        printable(&j.job),
                        printable(&notes.join("; "))
                    );
                }
            }
        }
    }
    Ok(store::exit::OK)
}
