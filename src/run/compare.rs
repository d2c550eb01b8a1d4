//! Comparing runs: `store diff` (what changed between two runs, per role, with renames and
//! what changed inside the environment) and the per-job comparison `store rerun` reports.
//!
//! Run identity is never a difference: entries are compared by logical name and content, not
//! by run ID, job timing or recording time, and an environment record is compared with the
//! variables that name the run and job (`PEGASUS_WF_UUID`, `PEGASUS_DAG_JOB_ID`, ...) left out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{Direction, Role, RunEntry, RunSnapshot};
use crate::engine::hash::Hash;
use crate::engine::store::Store;
use crate::error::Result;

/// Environment variables that identify a run or a job, not its environment.
pub const IDENTITY_VARIABLES: &[&str] = &[
    "PEGASUS_WF_UUID",
    "PEGASUS_DAG_JOB_ID",
    "PEGASUS_JOB_ID",
    "PEGASUS_WF_ROOT_UUID",
    "STORE_RUN_ID",
    "STORE_JOB_ID",
    "MLFLOW_RUN_ID",
];

/// What differs between two runs, for one role.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RoleDiff {
    /// Logical names only in the second run.
    pub added: Vec<String>,
    /// Logical names only in the first run.
    pub removed: Vec<String>,
    /// Logical names whose content differs.
    pub changed: Vec<String>,
    /// The same content under another name: (name in the first run, name in the second).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub renamed: Vec<(String, String)>,
}

/// What differs between two runs: per role, then, per job whose environment changed, what
/// changed in it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunDiff {
    /// Per role.
    #[serde(flatten)]
    pub roles: BTreeMap<Role, RoleDiff>,
    /// Per job, the changes inside its environment record (`python: A -> B`, `package numpy:
    /// 1.26.0 -> 1.26.4`, `package + pandas==2.2.0`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_changes: BTreeMap<String, Vec<String>>,
}

/// The name that keys an entry across runs: the job for an environment record, else the
/// logical name.
fn key(e: &RunEntry) -> String {
    if e.role == Role::Environment {
        e.job_id.clone()
    } else {
        e.lfn.clone()
    }
}

fn by_key(s: &RunSnapshot) -> BTreeMap<(Role, String), Vec<Hash>> {
    let mut m: BTreeMap<(Role, String), Vec<Hash>> = BTreeMap::new();
    for e in &s.entries {
        m.entry((e.role, key(e))).or_default().push(e.hash);
    }
    for v in m.values_mut() {
        v.sort();
        v.dedup();
    }
    m
}

impl Store {
    /// What changed from run `a` to run `b` (IDs or unique prefixes).
    pub fn diff_runs(&self, a: &str, b: &str) -> Result<RunDiff> {
        let sa = self.run_snapshot(&self.resolve_run(a)?)?;
        let sb = self.run_snapshot(&self.resolve_run(b)?)?;
        let (ma, mb) = (by_key(&sa), by_key(&sb));
        let mut out = RunDiff {
            roles: Role::ALL
                .into_iter()
                .map(|r| (r, RoleDiff::default()))
                .collect(),
            ..RunDiff::default()
        };
        for (k, ha) in &ma {
            let d = out.roles.entry(k.0).or_default();
            match mb.get(k) {
                None => d.removed.push(k.1.clone()),
                Some(hb) if hb == ha => {}
                Some(_) if k.0 == Role::Environment => {
                    let changes = self.environment_changes(ha, &mb[k])?;
                    if !changes.is_empty() {
                        d.changed.push(k.1.clone());
                        out.environment_changes.insert(k.1.clone(), changes);
                    }
                }
                Some(_) => d.changed.push(k.1.clone()),
            }
        }
        for k in mb.keys().filter(|k| !ma.contains_key(*k)) {
            out.roles.entry(k.0).or_default().added.push(k.1.clone());
        }
        // Same content, new name: a rename, not a removal and an addition.
        for (role, d) in out
            .roles
            .iter_mut()
            .filter(|(r, _)| **r != Role::Environment)
        {
            let mut removed = Vec::new();
            for name in std::mem::take(&mut d.removed) {
                let content = &ma[&(*role, name.clone())];
                let to = d
                    .added
                    .iter()
                    .position(|n| mb.get(&(*role, n.clone())) == Some(content));
                match to {
                    Some(i) => d.renamed.push((name, d.added.remove(i))),
                    None => removed.push(name),
                }
            }
            d.removed = removed;
        }
        Ok(out)
    }

    /// The changes between two environment records of a job (several versions each, if the
    /// job recorded more than one: the first of each is compared).
    pub fn environment_changes(&self, a: &[Hash], b: &[Hash]) -> Result<Vec<String>> {
        let (Some(a), Some(b)) = (a.first(), b.first()) else {
            return Ok(Vec::new());
        };
        Ok(environment_delta(
            &self.environment_json(a)?,
            &self.environment_json(b)?,
        ))
    }

    /// An environment record, parsed (`Null` when it is not JSON).
    pub fn environment_json(&self, h: &Hash) -> Result<Value> {
        let mut bytes = Vec::new();
        self.cat_unlocked(h, &mut bytes)?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Package name of a `pip freeze` / `conda list --export` line (lower case), and the line.
fn packages(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let name = l
                .split(['=', ' ', '@', '<', '>', '~', '!'])
                .next()
                .unwrap_or(l)
                .to_ascii_lowercase();
            (name, l.to_string())
        })
        .collect()
}

fn version_of(line: &str) -> &str {
    line.split_once("==")
        .or_else(|| line.split_once('='))
        .map_or(line, |(_, v)| v)
}

/// What changed between two environment records, one line each, identity variables aside.
pub fn environment_delta(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|m| m.keys())
        .collect();
    for k in keys {
        match k.as_str() {
            "pip_freeze" | "conda" => {
                let (pa, pb) = (packages(a.get(k)), packages(b.get(k)));
                for (name, la) in &pa {
                    match pb.get(name) {
                        None => out.push(format!("{k} - {la}")),
                        Some(lb) if lb != la => out.push(format!(
                            "{k} {name}: {} -> {}",
                            version_of(la),
                            version_of(lb)
                        )),
                        Some(_) => {}
                    }
                }
                for (name, lb) in &pb {
                    if !pa.contains_key(name) {
                        out.push(format!("{k} + {lb}"));
                    }
                }
            }
            "variables" => {
                let va = a.get(k).and_then(Value::as_object);
                let vb = b.get(k).and_then(Value::as_object);
                let names: BTreeSet<&String> =
                    va.into_iter().chain(vb).flat_map(|m| m.keys()).collect();
                for n in names {
                    if IDENTITY_VARIABLES.contains(&n.as_str()) {
                        continue;
                    }
                    let (x, y) = (va.and_then(|m| m.get(n)), vb.and_then(|m| m.get(n)));
                    if x != y {
                        out.push(format!("variable {n}: {} -> {}", text(x), text(y)));
                    }
                }
            }
            _ => {
                if a.get(k) != b.get(k) {
                    out.push(format!("{k}: {} -> {}", text(a.get(k)), text(b.get(k))));
                }
            }
        }
    }
    out
}

/// How one job of a re-run compares with the same job of the original run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobComparison {
    /// The job ID.
    pub job: String,
    /// Whether the job ran the recorded code (false: it ran code the original did not record,
    /// with `--allow-unrecorded`).
    pub code_recorded: bool,
    /// Files it read whose content differs from what the original job read (none: inputs
    /// matched).
    pub inputs_differ: Vec<String>,
    /// Whether every file it read matched.
    pub inputs_match: bool,
    /// Changes inside its environment record (empty: the environment matched).
    pub environment_changes: Vec<String>,
    /// Whether its environment matched.
    pub environment_match: bool,
    /// Files it wrote whose content differs from the original's (or that it did not write).
    pub outputs_differ: Vec<String>,
    /// Whether every file it wrote matched.
    pub outputs_match: bool,
}

/// The files job `job` consumed (`true`) or produced (`false`) in a run, by logical name.
fn files_of(s: &RunSnapshot, job: &str, consumed: bool) -> BTreeMap<String, Hash> {
    s.entries
        .iter()
        .filter(|e| e.job_id == job)
        .filter(|e| {
            let d = e.direction.or(match e.role {
                Role::Input => Some(Direction::Consumed),
                Role::Output => Some(Direction::Produced),
                _ => None,
            });
            d == Some(if consumed {
                Direction::Consumed
            } else {
                Direction::Produced
            })
        })
        .map(|e| (e.lfn.clone(), e.hash))
        .collect()
}

impl Store {
    /// Compares each job the original run recorded with the same job of the re-run: inputs,
    /// environment and outputs; `unrecorded` names the jobs that ran code the original did
    /// not record.
    pub fn compare_jobs(
        &self,
        old: &RunSnapshot,
        new: &RunSnapshot,
        unrecorded: &BTreeSet<String>,
    ) -> Result<Vec<JobComparison>> {
        let jobs: BTreeSet<&str> = old
            .entries
            .iter()
            .filter(|e| matches!(e.role, Role::Input | Role::Output | Role::Intermediate))
            .map(|e| e.job_id.as_str())
            .collect();
        let env_of = |s: &RunSnapshot, job: &str| -> Vec<Hash> {
            s.entries
                .iter()
                .filter(|e| e.role == Role::Environment && e.job_id == job)
                .map(|e| e.hash)
                .collect()
        };
        let mut out = Vec::new();
        for job in jobs {
            let differ = |consumed: bool| -> Vec<String> {
                let now = files_of(new, job, consumed);
                files_of(old, job, consumed)
                    .into_iter()
                    .filter(|(lfn, h)| now.get(lfn) != Some(h))
                    .map(|(lfn, _)| lfn)
                    .collect()
            };
            let (ea, eb) = (env_of(old, job), env_of(new, job));
            let environment_changes = if ea.is_empty() || eb.is_empty() {
                Vec::new()
            } else {
                self.environment_changes(&ea, &eb)?
            };
            let inputs_differ = differ(true);
            let outputs_differ = differ(false);
            out.push(JobComparison {
                job: job.to_string(),
                code_recorded: !unrecorded.contains(job),
                inputs_match: inputs_differ.is_empty(),
                inputs_differ,
                environment_match: environment_changes.is_empty(),
                environment_changes,
                outputs_match: outputs_differ.is_empty(),
                outputs_differ,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_delta_names_what_changed_and_ignores_identity() {
        let a = serde_json::json!({
            "format": 1, "python": "Python 3.11.2", "os": "Debian 12",
            "pip_freeze": ["numpy==1.26.0", "scipy==1.11.0", "requests==2.31.0"],
            "variables": {"PEGASUS_WF_UUID": "run-a", "PEGASUS_DAG_JOB_ID": "j1", "LANG": "C"}
        });
        let same = serde_json::json!({
            "format": 1, "python": "Python 3.11.2", "os": "Debian 12",
            "pip_freeze": ["numpy==1.26.0", "scipy==1.11.0", "requests==2.31.0"],
            "variables": {"PEGASUS_WF_UUID": "run-b", "PEGASUS_DAG_JOB_ID": "j1", "LANG": "C"}
        });
        assert_eq!(environment_delta(&a, &same), Vec::<String>::new());
        let b = serde_json::json!({
            "format": 1, "python": "Python 3.12.1", "os": "Debian 12",
            "pip_freeze": ["numpy==1.26.4", "requests==2.31.0", "pandas==2.2.0"],
            "variables": {"PEGASUS_WF_UUID": "run-c", "LANG": "C.UTF-8"}
        });
        assert_eq!(
            environment_delta(&a, &b),
            vec![
                "pip_freeze numpy: 1.26.0 -> 1.26.4",
                "pip_freeze - scipy==1.11.0",
                "pip_freeze + pandas==2.2.0",
                "python: Python 3.11.2 -> Python 3.12.1",
                "variable LANG: C -> C.UTF-8",
            ]
        );
    }
}
