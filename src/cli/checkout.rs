//! `store checkout`: restore a run, or a file or tree, verifying every chunk. A whole run is
//! restored re-plannable: its workflow descriptions name the restored code and inputs. A
//! tracked path is restored in place, as `dvc checkout` does.

use std::path::PathBuf;

use store::{CheckoutOptions, LinkMode};

use super::output::{human_bytes, print_json, printable, warn_damage};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Run ID, or file/tree hash, or a unique prefix of either; or tracked paths, each
    /// restored in place to the version store.lock names (else its last added one, or
    /// --rev). None: every path of store.lock, so the workspace matches it.
    #[arg(value_name = "RUN|HASH|PATH")]
    targets: Vec<String>,
    /// With tracked paths: restore this version (a hash or prefix `store log PATH` lists).
    #[arg(long, value_name = "HASH")]
    rev: Option<String>,
    /// Destination directory (created if missing; default for a run: the current directory).
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// Only entries of these roles (runs only; repeatable).
    #[arg(long)]
    role: Vec<String>,
    /// Overwrite files that exist with other content (runs), or changes made since a tracked
    /// path's last add (paths).
    #[arg(long)]
    force: bool,
    /// reflink (default; falls back to copy), hardlink (read-only, opt-in) or copy.
    #[arg(long, default_value = "reflink")]
    link: String,
    /// Restore the run's workflow descriptions byte for byte (by default they are rewritten
    /// to name the restored code and inputs, so the directory plans again).
    #[arg(long)]
    as_recorded: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    let link: LinkMode = args.link.parse()?;
    let opts = CheckoutOptions {
        link,
        progress: ctx.progress(),
    };
    // No target: the workspace made to match store.lock, like `dvc checkout`.
    if args.targets.is_empty() {
        if args.to.is_some() || args.rev.is_some() || !args.role.is_empty() {
            anyhow::bail!(store::Error::Invalid(
                "--to, --rev and --role need a run, hash or path to check out".into()
            ));
        }
        let done = s.checkout_locked(args.force, &opts)?;
        let out: Vec<_> = done
            .iter()
            .map(|(p, h, r)| (p.clone(), *h, r.files, r.bytes))
            .collect();
        print_in_place(&out, args.json, ctx.quiet)?;
        if done.is_empty() && !ctx.quiet && !args.json {
            eprintln!("store.lock lists no path");
        }
        return Ok(store::exit::OK);
    }
    // Tracked paths: in place, like `dvc checkout PATH...`.
    if s.is_tracked(std::path::Path::new(&args.targets[0]))? && args.to.is_none() {
        let rev = args.rev.as_deref().map(|r| s.resolve(r)).transpose()?;
        let mut out = Vec::new();
        for t in &args.targets {
            let (h, r) =
                s.checkout_path(std::path::Path::new(t), rev.as_ref(), args.force, &opts)?;
            out.push((t.clone(), h, r.files, r.bytes));
        }
        print_in_place(&out, args.json, ctx.quiet)?;
        return Ok(store::exit::OK);
    }
    if args.targets.len() > 1 {
        anyhow::bail!(store::Error::Invalid(format!(
            "{} is not a tracked path; several targets must all be tracked paths",
            args.targets[0]
        )));
    }
    if args.rev.is_some() {
        anyhow::bail!(store::Error::Invalid(
            "--rev names a version of a tracked path; give the path".into()
        ));
    }
    let hash = args.targets[0].clone();
    if s.resolve_run(&hash).is_err() && s.resolve(&hash).is_err() && s.remotes()?.default.is_some()
    {
        // A run this workspace has not seen: fetch its records from the default remote
        // (the content follows on demand).
        warn_damage(&s.pull_run_records(&hash, ctx.progress())?);
    }
    let is_run = match (s.resolve_run(&hash), s.resolve(&hash)) {
        (Ok(run), Ok(obj)) if run.run_id != hash => {
            anyhow::bail!(store::Error::RunNotFound(format!(
                "{hash:?} is a prefix of run {} and of object {obj}; give more characters",
                run.run_id
            )))
        }
        (Ok(_), _) => true,
        (Err(store::Error::RunNotFound(msg)), _) if msg.contains("ambiguous") => {
            anyhow::bail!(store::Error::RunNotFound(msg))
        }
        _ => false,
    };
    let r = if is_run {
        let roles = args
            .role
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<store::run::Role>, _>>()?;
        let to = args.to.unwrap_or_else(|| PathBuf::from("."));
        let (run, restored) = store::reproduce::checkout_replannable(
            &s,
            &hash,
            &to,
            &roles,
            args.force,
            args.as_recorded,
            &opts,
        )?;
        if !ctx.quiet && !args.json {
            eprintln!("run {} of workflow {}", run.run_id, run.workflow);
            for (file, n) in &restored.rewritten {
                eprintln!(
                    "rewrote {n} catalog entries of {} to name the restored files",
                    printable(&file.display().to_string())
                );
            }
            if let Some(root) = restored.root_workflow.as_ref().filter(|_| roles.is_empty()) {
                eprintln!(
                    "plan it again: store run {}",
                    printable(&root.display().to_string())
                );
            }
        }
        for (file, name, pfn) in &restored.unrecorded {
            eprintln!(
                "store: warning: {}: run {} did not record the code of transformation {} ({}); the restored workflow still names that path",
                printable(&file.display().to_string()),
                run.run_id,
                printable(name),
                printable(pfn)
            );
        }
        if args.json {
            print_json(&restored)?;
            return Ok(store::exit::OK);
        }
        restored.report
    } else {
        let to = args
            .to
            .ok_or_else(|| store::Error::Invalid("checkout of a hash needs --to DIR".into()))?;
        let h = s.resolve(&hash)?;
        s.checkout(&h, &to, &opts)?
    };
    if args.json {
        print_json(&r)?;
    } else if !ctx.quiet {
        println!(
            "restored {} ({}) to {} [{} reflinked, {} hard-linked, {} copied]",
            super::output::plural(r.files, "file", "files"),
            human_bytes(r.bytes),
            r.path.display(),
            r.reflinked,
            r.hardlinked,
            r.files.saturating_sub(r.reflinked + r.hardlinked)
        );
    }
    Ok(store::exit::OK)
}

/// The report of in-place checkouts: (path, version, files restored, bytes restored).
fn print_in_place(
    done: &[(String, store::Hash, u64, u64)],
    json: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if json {
        let v: Vec<_> = done
            .iter()
            .map(|(p, h, files, bytes)| {
                serde_json::json!({"path": p, "hash": h, "files": files, "bytes": bytes})
            })
            .collect();
        return print_json(&v);
    }
    if quiet {
        return Ok(());
    }
    for (p, h, files, bytes) in done {
        let p = printable(p);
        if *files == 0 {
            eprintln!("{p}: already at {}", h.short());
        } else {
            eprintln!(
                "{p}: restored {} ({}) at {}",
                super::output::plural(*files, "file", "files"),
                human_bytes(*bytes),
                h.short()
            );
        }
    }
    Ok(())
}
