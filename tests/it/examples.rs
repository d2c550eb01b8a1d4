//! The example workflows under `examples/`, end to end with the real binary and the real Pegasus
//! code: the committed `workflow.yml` is what `generate.py` writes with the Pegasus API, the
//! augmented workflow loads in Pegasus, `store run` runs and seals it, the run restores by run ID
//! into an empty directory byte for byte, and `store rerun` reproduces every file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{load_workflow, pegasus_available, python, Ws};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A workflow YAML as JSON, without what legitimately changes from one generation to the next:
/// the `x-pegasus` header (creation time and user) and the order of `uses` and of dependencies
/// (the Pegasus API keeps them in sets).
fn normalized(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("workflow");
    let mut doc: Value = serde_norway::from_str(&text).expect("yaml");
    let top = doc.as_object_mut().expect("a mapping");
    top.remove("x-pegasus");
    let key = |v: &Value| serde_json::to_string(v).expect("json");
    for job in top["jobs"].as_array_mut().expect("jobs") {
        if let Some(Value::Array(uses)) = job.get_mut("uses") {
            uses.sort_by_key(key);
        }
    }
    if let Some(Value::Array(deps)) = top.get_mut("jobDependencies") {
        for d in deps.iter_mut() {
            if let Some(Value::Array(children)) = d.get_mut("children") {
                children.sort_by_key(key);
            }
        }
        deps.sort_by_key(key);
    }
    doc
}

/// Every file under `dir` (recursively, skipping the runner's `logs/`), by relative path.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                if rel != "logs" {
                    walk(root, &p, out);
                }
            } else {
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Names the files whose content differs between two trees (or that only one has).
fn differences(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n).map(|v| blake3::hash(v)) != b.get(*n).map(|v| blake3::hash(v)))
        .cloned()
        .collect()
}

/// Runs one example through everything; returns its report.json.
fn round_trip(name: &str) -> Value {
    let ws = Ws::new();
    let dir = example(name);
    let wf = dir.join("workflow.yml");
    let wf_s = wf.to_str().expect("utf8");

    // The committed workflow.yml is what the generator writes now with the real Pegasus API.
    let regen = ws.p("regen.yml");
    python(&[
        dir.join("generate.py").to_str().expect("utf8"),
        "-o",
        regen.to_str().expect("utf8"),
    ]);
    assert_eq!(
        normalized(&regen),
        normalized(&wf),
        "{name}: regenerate workflow.yml with generate.py"
    );

    // The augmented workflow loads in Pegasus: main jobs and their dependencies untouched, at
    // most 2n + 3 jobs added.
    let report: Value =
        serde_json::from_str(&ws.ok(&["augment", wf_s, "-o", "tracked.yml", "--json"]))
            .expect("json");
    let before = load_workflow(&wf);
    let after = load_workflow(&ws.p("tracked.yml"));
    let main = before["jobs"].as_object().expect("jobs");
    let n = main.len();
    let added = report["added_jobs"].as_u64().expect("added") as usize;
    assert_eq!(report["main_jobs"].as_u64(), Some(n as u64));
    assert_eq!(after["jobs"].as_object().expect("jobs").len(), n + added);
    assert!(added <= 2 * n + 3, "{name}: {added} jobs added for {n}");
    assert_eq!(report["workflow_tracked"], true, "{name}: store_track full");
    for (id, job) in main {
        assert_eq!(&after["jobs"][id], job, "{name}: job {id} changed");
    }
    let main_edges: Vec<&Value> = after["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| {
            main.contains_key(e[0].as_str().expect("p"))
                && main.contains_key(e[1].as_str().expect("c"))
        })
        .collect();
    let original: Vec<&Value> = before["edges"].as_array().expect("edges").iter().collect();
    assert_eq!(main_edges, original, "{name}: dependencies changed");

    // store run: tracked by the workflow's own metadata, sealed.
    let id = ws
        .ok(&["run", wf_s, "--workdir", "work", "-q"])
        .trim()
        .to_string();
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["run_id"], id.as_str());
    assert_eq!(runs[0]["status"], "sealed");
    let work = files_under(&ws.p("work"));
    for f in ["config.json", "report.json", "model.json"] {
        assert!(work.contains_key(f), "{name}: no {f} in {:?}", work.keys());
    }
    let snap: Value = serde_json::from_str(&ws.ok(&["show", "--json", &id])).expect("json");
    let entries = snap["entries"].as_array().expect("entries");
    let role_of = |lfn: &str| {
        entries
            .iter()
            .find(|e| e["lfn"] == lfn)
            .map(|e| e["role"].as_str().expect("role").to_string())
    };
    assert_eq!(role_of("config.json").as_deref(), Some("input"));
    assert_eq!(role_of("report.json").as_deref(), Some("output"));
    assert_eq!(role_of("model.json").as_deref(), Some("intermediate"));
    assert!(entries.iter().any(|e| e["role"] == "code"));
    assert!(entries.iter().any(|e| e["role"] == "workflow"));
    // Everything the jobs wrote (and the staged inputs) was recorded.
    for f in work.keys() {
        assert!(
            entries.iter().any(|e| e["path"] == format!("work/{f}")),
            "{name}: work/{f} not recorded"
        );
    }

    // Restored by run ID into an empty directory: every file byte for byte, and the code.
    let out = tempfile::tempdir().expect("dir");
    ws.ok(&[
        "checkout",
        &id,
        "--to",
        out.path().to_str().expect("utf8"),
        "--link",
        "copy",
        "--as-recorded",
    ]);
    let restored = files_under(&out.path().join("work"));
    assert_eq!(
        differences(&restored, &work),
        Vec::<String>::new(),
        "{name}: checkout"
    );
    for e in entries.iter().filter(|e| e["role"] == "code") {
        let path = e["path"].as_str().expect("path");
        let original = std::fs::read(e["lfn"].as_str().expect("lfn")).expect("code");
        assert_eq!(
            std::fs::read(out.path().join(path)).expect("restored code"),
            original,
            "{name}: code {path}"
        );
    }

    // Re-run by ID: the same outputs, and every intermediate file identical too.
    let v: Value =
        serde_json::from_str(&ws.ok(&["rerun", &id, "--workdir", "rr", "--json"])).expect("json");
    assert_eq!(v["identical"], true, "{name}: {v}");
    // (the one file that differs is the rerun's own workflow description: its catalogs name
    // the restored code and inputs)
    let mut again = files_under(&ws.p("rr/work"));
    let described = format!("{name}.store-workflow.yml");
    let rewritten = again.remove(&described).expect("rerun description");
    assert_ne!(Some(&rewritten), work.get(&described));
    let mut work = work.clone();
    work.remove(&described);
    assert_eq!(
        differences(&again, &work),
        Vec::<String>::new(),
        "{name}: rerun"
    );
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "sealed"), "{runs:?}");

    serde_json::from_slice(&work["report.json"]).expect("report")
}

#[test]
fn lung_segmentation_example_runs_seals_restores_and_reruns_identically() {
    if !pegasus_available() {
        return;
    }
    let report = round_trip("lung-segmentation");
    let dice = report["mean_dice"].as_f64().expect("mean_dice");
    assert!(dice > 0.8 && dice <= 1.0, "{report}");
    assert_eq!(report["images"], 3);
}

#[test]
fn galaxy_classification_example_runs_seals_restores_and_reruns_identically() {
    if !pegasus_available() {
        return;
    }
    let report = round_trip("galaxy-classification");
    let acc = report["accuracy"].as_f64().expect("accuracy");
    assert!(acc > 0.6, "{report}");
    let matrix = report["confusion_matrix"].as_array().expect("matrix");
    assert_eq!(matrix.len(), 3);
    let total: u64 = matrix
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter())
        .map(|c| c.as_u64().expect("count"))
        .sum();
    assert_eq!(Some(total), report["images"].as_u64());
}
