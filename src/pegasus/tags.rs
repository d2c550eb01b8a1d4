//! The tracking tags: plain Pegasus metadata keys, in every spelling the tracking paper and
//! its users write them, compared case-insensitively (`Track_trans` is `track_trans`); and the
//! lint that names a key that looks like a tag but is none (`input_trak`), with the closest
//! known key.

use super::doc::{Map, Node};
use super::{bad, get, truthy, WorkflowTree};
use crate::error::Result;

/// File tags (on a `uses` entry or a replica): track it as an input.
pub(crate) const INPUT_TAGS: &[&str] = &["input_track", "track_input"];
/// Track it as an output.
pub(crate) const OUTPUT_TAGS: &[&str] = &["output_track", "track_output"];
/// On a transformation: track its code (the paper writes `Track_trans`).
pub(crate) const TRANS_TAGS: &[&str] = &["track_trans", "trans_track"];
/// On the workflow: track its description.
pub(crate) const WF_TAGS: &[&str] = &["wf_track", "track_wf"];
/// On the workflow: `store_track: full` (and MLflow linkage when a tracking URI is set).
pub(crate) const FULL_TAGS: &[&str] = &["full_track", "track_full"];
/// On the workflow: `store_track: basic`.
pub(crate) const BASIC_TAGS: &[&str] = &["basic_track", "track_basic"];
/// On a job: an MLflow child run named after the job.
pub(crate) const JOB_AUTO_TAGS: &[&str] = &["job_auto"];
/// On a job: an MLflow child run named by `mlflow_experiment` / `mlflow_run`.
pub(crate) const JOB_CUSTOM_TAGS: &[&str] = &["job_custom"];

/// Every metadata key this module reads or writes.
const KNOWN: &[&str] = &[
    "input_track",
    "track_input",
    "output_track",
    "track_output",
    "track_trans",
    "trans_track",
    "wf_track",
    "track_wf",
    "full_track",
    "track_full",
    "basic_track",
    "track_basic",
    "job_auto",
    "job_custom",
    "store_track",
    "mlflow_experiment",
    "mlflow_run",
    "mlflow_params",
    "store_root_run",
    "store_root_workflow",
    "store_job_path",
];

/// The value of the first of `names` in `m`, keys compared case-insensitively.
pub(crate) fn lookup<'a>(m: &'a Map, names: &[&str]) -> Option<(&'a str, &'a Node)> {
    m.iter().find_map(|(k, v)| {
        let k = k.as_str()?;
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(k))
            .then_some((k, v))
    })
}

/// A string metadata value, keys compared case-insensitively.
pub(crate) fn str_meta<'a>(m: &'a Map, name: &str) -> Option<&'a str> {
    lookup(m, &[name]).and_then(|(_, v)| v.as_str())
}

fn looks_like_a_tag(k: &str) -> bool {
    k.ends_with("_track")
        || k.starts_with("track_")
        || k.starts_with("store_")
        || k.starts_with("mlflow_")
        || k.starts_with("job_auto")
        || k.starts_with("job_custom")
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known key closest to `k`.
fn closest(k: &str) -> &'static str {
    KNOWN
        .iter()
        .min_by_key(|known| distance(k, known))
        .copied()
        .unwrap_or("store_track")
}

/// What the tags of a tree say before anything is decided: keys that look like tags but are
/// none (each a warning naming the closest known key), and every tracking tag found with its
/// value (to explain a run that tracks nothing).
#[derive(Default)]
pub(crate) struct Lint {
    pub warnings: Vec<String>,
    pub seen: Vec<String>,
}

impl Lint {
    fn scan(&mut self, file: &str, at: &str, meta: Option<&Node>) -> Result<()> {
        let Some(m) = meta.and_then(Node::as_map) else {
            return Ok(());
        };
        for (k, v) in m.iter() {
            let Some(k) = k.as_str() else { continue };
            let lower = k.to_ascii_lowercase();
            if KNOWN.contains(&lower.as_str()) {
                let tracking = ![
                    "store_root_run",
                    "store_root_workflow",
                    "store_job_path",
                    "mlflow_experiment",
                    "mlflow_run",
                    "mlflow_params",
                ]
                .contains(&lower.as_str());
                if tracking {
                    let value = v.scalar_text().unwrap_or_default();
                    if lower != "store_track" && truthy(v).is_none() {
                        return Err(bad(
                            std::path::Path::new(file),
                            format!("{at}: metadata {k}: {value:?} is not true or false"),
                        ));
                    }
                    self.seen.push(format!("{at}: {k}={value}"));
                }
            } else if looks_like_a_tag(&lower) || distance(&lower, closest(&lower)) <= 2 {
                self.warnings.push(format!(
                    "{file}: {at}: metadata key `{k}` is not a tracking tag; did you mean `{}`?",
                    closest(&lower)
                ));
            }
        }
        Ok(())
    }

    /// Scans the metadata of every workflow, job, file use, replica and transformation of a
    /// tree.
    pub(crate) fn of_tree(tree: &WorkflowTree) -> Result<Lint> {
        let mut lint = Lint::default();
        for (_, _, node) in tree.walk() {
            let file = node.path.display().to_string();
            let top = node.wf.top();
            lint.scan(&file, "workflow", get(top, "metadata"))?;
            for j in node.wf.job_maps() {
                let id = super::str_of(j, "id").unwrap_or("?");
                lint.scan(&file, &format!("job {id}"), get(j, "metadata"))?;
                for u in super::uses_of(j) {
                    lint.scan(&file, &format!("job {id}: uses {}", u.lfn), u.meta)?;
                }
            }
            for r in node.wf.catalog_entries("replicaCatalog", "replicas") {
                let lfn = super::str_of(r, "lfn").unwrap_or("?");
                lint.scan(&file, &format!("replica {lfn}"), get(r, "metadata"))?;
            }
            for t in node
                .wf
                .catalog_entries("transformationCatalog", "transformations")
            {
                let name = super::str_of(t, "name").unwrap_or("?");
                lint.scan(&file, &format!("transformation {name}"), get(t, "metadata"))?;
            }
        }
        Ok(lint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_name_the_closest_known_key() {
        assert_eq!(closest("input_trak"), "input_track");
        assert_eq!(closest("track_tran"), "track_trans");
        assert_eq!(closest("store_trak"), "store_track");
        assert_eq!(closest("mlflow_experiments"), "mlflow_experiment");
        assert!(looks_like_a_tag("outptu_track") && looks_like_a_tag("track_outptu"));
        assert_eq!(distance("output_trak", "output_track"), 1);
        assert!(!looks_like_a_tag("creator"));
    }
}
