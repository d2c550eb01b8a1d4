//! A restored run that can be planned again: `store checkout RUN` restores every entry, then
//! rewrites each restored workflow description so that its transformation catalog names the
//! restored code and its replica catalog the restored inputs and sub-workflow files. Planning
//! the restored workflow (`store run`, `store rerun`, `pegasus-plan`) then reads only restored
//! files; a transformation whose code the run did not record is reported, never silently taken
//! from its original path.
//!
//! Layer: above runs, Pegasus and the runner (it joins a run's record to its workflow
//! documents, and [`rerun()`] runs them again); used by the CLI's `checkout` and `rerun` and by
//! the Python package.

pub mod rerun;

pub use rerun::{rerun, OutputComparison, RerunOptions, RerunReport};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::engine::index::RunRow;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::pegasus::{RelocateMaps, Workflow};
use crate::run::{Direction, Role, RunEntry, RunSnapshot};
use crate::workspace::checkout::{CheckoutOptions, CheckoutReport};

/// What [`checkout_replannable`] restored and rewrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Restored {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// What the checkout restored.
    #[serde(flatten)]
    pub report: CheckoutReport,
    /// The restored root workflow description (plan this one), if the run recorded it.
    pub root_workflow: Option<PathBuf>,
    /// Workflow descriptions rewritten to name restored files, with the PFNs rewritten in each.
    pub rewritten: Vec<(PathBuf, usize)>,
    /// Transformations used by jobs whose code the run did not record: (workflow file,
    /// transformation, its original executable path). Planning the restored workflow would
    /// run whatever is at that path today.
    pub unrecorded: Vec<(PathBuf, String, String)>,
}

/// Path components of a PFN written relative to its workflow (`./bin/x` is `bin/x`).
fn normal(p: &str) -> PathBuf {
    Path::new(p)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

/// The restored copy of the code a transformation names: the code entry recorded under that
/// path (its logical name is the absolute path tracked), or inside a recorded directory; a
/// relative PFN, when the original directory is unknown, by the one entry whose path ends
/// with it.
fn find_code(code: &[&RunEntry], to: &Path, written: &str, resolved: &str) -> Option<PathBuf> {
    let plain = resolved.strip_prefix("file://").unwrap_or(resolved);
    let canon = std::fs::canonicalize(plain)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    for e in code {
        let origins = [Some(e.lfn.as_str()), e.origin.as_deref()];
        for o in origins.into_iter().flatten() {
            if o == plain || Some(o) == canon.as_deref() {
                return Some(to.join(&e.path));
            }
            if e.kind == "tree" {
                if let Ok(rest) = Path::new(plain).strip_prefix(o) {
                    return Some(to.join(&e.path).join(rest));
                }
            }
        }
    }
    let written = written.strip_prefix("file://").unwrap_or(written);
    if written.starts_with('/') {
        return None;
    }
    let tail = normal(written);
    let mut found = code
        .iter()
        .filter(|e| e.kind == "file" && Path::new(&e.lfn).ends_with(&tail));
    match (found.next(), found.next()) {
        (Some(e), None) => Some(to.join(&e.path)),
        _ => None,
    }
}

/// The restored copy of a logical file: a recorded workflow description of that name, else
/// an input (what a job consumed).
fn find_file(snap: &RunSnapshot, to: &Path, lfn: &str) -> Option<PathBuf> {
    let by_role = |role: Role| {
        snap.entries
            .iter()
            .find(|e| e.role == role && e.lfn == lfn && e.direction != Some(Direction::Produced))
    };
    by_role(Role::Workflow)
        .or_else(|| by_role(Role::Input))
        .map(|e| to.join(&e.path))
}

/// Writes `text` over `path` atomically, keeping its permission bits.
fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.relocate-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("workflow"),
        crate::engine::util::unique_suffix()
    ));
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    if let Ok(m) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, m.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Rewrites the restored workflow descriptions of `snap` (restored under `to`) to name the
/// restored code and files.
fn relocate_all(snap: &RunSnapshot, to: &Path, out: &mut Restored) -> Result<()> {
    let code: Vec<&RunEntry> = snap
        .entries
        .iter()
        .filter(|e| e.role == Role::Code)
        .collect();
    let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let root_lfn = format!("{}.store-workflow.yml", snap.workflow);
    let descriptions: Vec<&RunEntry> = snap
        .entries
        .iter()
        .filter(|e| e.role == Role::Workflow && e.kind == "file")
        .collect();
    // Side transformation catalogs recorded with the description: their entries are embedded
    // into each restored description (which wins for a name it embeds itself, as in Pegasus)
    // and mapped to the restored code like its own.
    let side_transformations: Vec<PathBuf> = descriptions
        .iter()
        .filter(|e| crate::pegasus::side_kind(&e.lfn) == Some("transformations"))
        .map(|e| to.join(&e.path))
        .collect();
    for e in &descriptions {
        let path = to.join(&e.path);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        // A description that is not a Pegasus workflow is restored as recorded.
        let Ok(mut wf) = Workflow::parse(&text, &path) else {
            continue;
        };
        let embedded = wf.embed_transformations(&side_transformations)?;
        let original_dir = e
            .origin
            .as_deref()
            .map(Path::new)
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
        let code_map = |written: &str, resolved: &str| {
            find_code(&code, to, written, resolved).map(|p| abs(p).to_string_lossy().into_owned())
        };
        let file_map =
            |lfn: &str| find_file(snap, to, lfn).map(|p| abs(p).to_string_lossy().into_owned());
        let r = wf.relocate(&RelocateMaps {
            original_dir: &original_dir,
            code: &code_map,
            file: &file_map,
        })?;
        if r.rewritten + embedded > 0 {
            replace_file(&path, &wf.to_yaml()?)?;
            out.rewritten.push((path.clone(), r.rewritten));
        }
        for (name, pfn) in r.unmapped {
            out.unrecorded.push((path.clone(), name, pfn));
        }
    }
    out.root_workflow = descriptions
        .iter()
        .find(|e| e.lfn == root_lfn)
        .or(descriptions.first())
        .map(|e| abs(to.join(&e.path)));
    Ok(())
}

/// Restores run `run_id` under `to` (as [`Store::checkout_run`]); unless `as_recorded` or
/// only some roles are restored, then rewrites its workflow descriptions to name the restored
/// files, so the directory can be planned again.
pub fn checkout_replannable(
    s: &Store,
    run_id: &str,
    to: &Path,
    roles: &[Role],
    force: bool,
    as_recorded: bool,
    opts: &CheckoutOptions,
) -> Result<(RunRow, Restored)> {
    let (run, report) = s.checkout_run(run_id, to, roles, force, opts)?;
    let snap = s.run_snapshot(&run)?;
    let mut out = Restored {
        run_id: run.run_id.clone(),
        workflow: run.workflow.clone(),
        report,
        root_workflow: None,
        rewritten: Vec::new(),
        unrecorded: Vec::new(),
    };
    if !as_recorded && roles.is_empty() {
        relocate_all(&snap, to, &mut out)?;
    }
    Ok((run, out))
}

/// The restored descriptions of a run by logical name (sub-workflows are found under the
/// names their parents give them).
pub fn descriptions(snap: &RunSnapshot, to: &Path) -> Result<HashMap<String, PathBuf>> {
    snap.entries
        .iter()
        .filter(|e| e.role == Role::Workflow)
        .map(|e| Ok((e.lfn.clone(), std::path::absolute(to.join(&e.path))?)))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(to, e))
}
