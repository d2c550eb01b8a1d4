//! Pegasus 5 augmentation, checked with the real Pegasus Python API (workflows are generated
//! with `pegasus-wms.api` and the result is loaded with Pegasus's own `Pegasus.workflow`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use store::exit;

use crate::common::{
    load_workflow as load, pegasus_available, pegasus_fixtures as fixtures, python, Ws,
};

/// Generates the test workflows into the workspace with the Pegasus API.
fn generate(ws: &Ws) {
    fs_bin(ws);
    python(&[
        fixtures().join("gen.py").to_str().expect("utf8"),
        ws.path().to_str().expect("utf8"),
    ]);
}

fn fs_bin(ws: &Ws) {
    use std::os::unix::fs::PermissionsExt;
    for t in ["preprocess", "analyze"] {
        let p = ws.write(
            &format!("bin/{t}"),
            format!("#!/bin/sh\necho {t}\n").as_bytes(),
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn augment(ws: &Ws, input: &str, output: &str, extra: &[&str]) -> Value {
    let mut args = vec!["augment", input, "-o", output, "--json"];
    args.extend(extra);
    serde_json::from_str(&ws.ok(&args)).expect("json")
}

/// A JSON array of two-string arrays, as pairs.
fn string_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("array of pairs")
        .iter()
        .map(|e| {
            (
                e[0].as_str().expect("first").to_string(),
                e[1].as_str().expect("second").to_string(),
            )
        })
        .collect()
}

fn edges(wf: &Value) -> BTreeSet<(String, String)> {
    string_pairs(&wf["edges"]).into_iter().collect()
}

#[test]
fn augmented_workflow_loads_in_pegasus_and_keeps_main_jobs_untouched() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    let report = augment(&ws, "diamond.yml", "tracked.yml", &["--policy", "full"]);
    let before = load(&ws.p("diamond.yml"));
    let after = load(&ws.p("tracked.yml"));
    let main: Vec<&String> = before["jobs"].as_object().expect("jobs").keys().collect();
    // Every main job is unchanged: transformation, arguments, uses.
    for id in &main {
        assert_eq!(
            before["jobs"][id.as_str()],
            after["jobs"][id.as_str()],
            "job {id} changed"
        );
    }
    // Dependencies between main jobs are exactly the original ones.
    let main_set: BTreeSet<&str> = main.iter().map(|s| s.as_str()).collect();
    let after_edges = edges(&after);
    let main_edges: BTreeSet<_> = after_edges
        .iter()
        .filter(|(p, c)| main_set.contains(p.as_str()) && main_set.contains(c.as_str()))
        .cloned()
        .collect();
    assert_eq!(main_edges, edges(&before));
    // At most 2n + 3 jobs added.
    let n = main.len();
    let added = after["jobs"].as_object().expect("jobs").len() - n;
    assert_eq!(added as u64, report["added_jobs"].as_u64().expect("added"));
    assert!(added <= 2 * n + 3, "{added} jobs added for {n}");
    // Input trackers have their job's parents; output trackers have the job as parent.
    let parents_of = |id: &str| -> BTreeSet<String> {
        after_edges
            .iter()
            .filter(|(_, c)| c == id)
            .map(|(p, _)| p.clone())
            .collect()
    };
    for id in &main {
        let original: BTreeSet<String> = edges(&before)
            .iter()
            .filter(|(_, c)| c == *id)
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(
            parents_of(&format!("store_in_{id}")),
            original,
            "input tracker of {id}"
        );
        assert_eq!(
            parents_of(&format!("store_out_{id}")),
            BTreeSet::from([id.to_string()]),
            "output tracker of {id}"
        );
        assert_eq!(after["jobs"][format!("store_in_{id}")]["name"], "store");
    }
    // The seal job waits for every tracking job.
    let seal_parents = parents_of("store_seal");
    for id in after["jobs"]
        .as_object()
        .expect("jobs")
        .keys()
        .filter(|k| k.starts_with("store_") && *k != "store_seal")
    {
        assert!(seal_parents.contains(id), "seal does not wait for {id}");
    }
    // Tracked inputs are staged to the input tracker.
    let uses = &after["jobs"]["store_in_ID0000001"]["uses"];
    assert_eq!(uses, &serde_json::json!([["f.a", "input"]]));
}

#[test]
fn tags_and_policies_follow_the_table() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    let tracked = |r: &Value| -> BTreeMap<String, String> {
        r["tracked"]
            .as_object()
            .expect("tracked")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("role").to_string()))
            .collect()
    };
    let inter = ["f.b1", "f.b2", "f.c1", "f.c2"];
    // Tags only: the tagged input and output, the transformation tagged "true" (not "False").
    let r = augment(&ws, "diamond.yml", "t1.yml", &[]);
    assert_eq!(
        tracked(&r),
        BTreeMap::from([
            ("f.a".into(), "input".into()),
            ("f.d".into(), "output".into())
        ])
    );
    assert_eq!(r["transformations"], serde_json::json!(["preprocess"]));
    assert_eq!(r["workflow_tracked"], false);
    // basic: inputs, outputs, intermediates; no code, no workflow.
    let r = augment(&ws, "plain.yml", "t2.yml", &["--policy", "basic"]);
    let t = tracked(&r);
    assert_eq!(t.len(), 6);
    assert!(inter.iter().all(|f| t[*f] == "intermediate"));
    assert_eq!(r["transformations"], serde_json::json!([]));
    assert_eq!(r["workflow_tracked"], false);
    // full: everything.
    let r = augment(&ws, "plain.yml", "t3.yml", &["--policy", "full"]);
    assert_eq!(tracked(&r).len(), 6);
    assert_eq!(
        r["transformations"],
        serde_json::json!(["analyze", "preprocess"])
    );
    assert_eq!(r["workflow_tracked"], true);
    // inputs only / outputs only / transformations only.
    let r = augment(&ws, "plain.yml", "t4.yml", &["--policy", "inputs"]);
    assert_eq!(tracked(&r)["f.a"], "input");
    assert!(!tracked(&r).contains_key("f.d"));
    let r = augment(&ws, "plain.yml", "t5.yml", &["--policy", "outputs"]);
    assert_eq!(tracked(&r)["f.d"], "output");
    assert!(!tracked(&r).contains_key("f.a"));
    let r = augment(&ws, "plain.yml", "t6.yml", &["--policy", "transformations"]);
    assert!(tracked(&r).is_empty());
    assert_eq!(
        r["transformations"],
        serde_json::json!(["analyze", "preprocess"])
    );
    // The workflow tag ("yes").
    let r = augment(&ws, "wftag.yml", "t7.yml", &[]);
    assert_eq!(r["workflow_tracked"], true);
    load(&ws.p("t7.yml"));
}

#[test]
fn augmented_workflow_runs_and_records_one_sealed_run() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    augment(&ws, "diamond.yml", "tracked.yml", &["--policy", "full"]);
    // Pegasus never sees a credential: the tracked YAML holds none, whatever the environment.
    let text = std::fs::read_to_string(ws.p("tracked.yml")).expect("yaml");
    assert!(!text.contains("AWS_") && !text.contains("TOKEN"), "{text}");
    let work = ws.p("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    python(&[
        fixtures().join("run_local.py").to_str().expect("utf8"),
        ws.p("tracked.yml").to_str().expect("utf8"),
        work.to_str().expect("utf8"),
        env!("CARGO_BIN_EXE_store"),
        "pegasus-run-1",
    ]);
    let snap: Value =
        serde_json::from_str(&ws.ok(&["show", "--json", "pegasus-run-1"])).expect("json");
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "sealed");
    let roles: BTreeSet<(String, String)> = snap["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["role"].as_str().expect("r").to_string(),
                e["lfn"].as_str().expect("l").to_string(),
            )
        })
        .collect();
    for want in [
        ("input", "f.a"),
        ("output", "f.d"),
        ("intermediate", "f.b1"),
        ("workflow", "diamond.store-workflow.yml"),
    ] {
        assert!(
            roles.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} missing: {roles:?}"
        );
    }
    assert!(roles.iter().any(|(r, _)| r == "code"));
    // Restored by run ID: the output equals what the job wrote.
    ws.ok(&[
        "checkout",
        "pegasus-run-1",
        "--to",
        "restored",
        "--role",
        "output",
    ]);
    let restored = std::fs::read(ws.p("restored/work/f.d")).expect("restored");
    assert_eq!(restored, std::fs::read(work.join("f.d")).expect("f.d"));
}

#[test]
fn unknown_keys_survive_and_malformed_workflows_are_named() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    let text = std::fs::read_to_string(ws.p("plain.yml")).expect("yaml");
    // Unknown keys at the top and in a job survive the round trip.
    let custom = text
        .replacen("jobs:\n", "x-site-notes:\n  owner: lab-42\njobs:\n", 1)
        .replacen(
            "  id: ID0000001\n",
            "  id: ID0000001\n  x-note: keep me\n",
            1,
        );
    ws.write("custom.yml", custom.as_bytes());
    augment(&ws, "custom.yml", "custom-out.yml", &["--policy", "basic"]);
    let out = std::fs::read_to_string(ws.p("custom-out.yml")).expect("out");
    assert!(
        out.contains("owner: lab-42") && out.contains("x-note: keep me"),
        "{out}"
    );
    // Arguments that need quoting (YAML indicators, booleans and numbers of YAML 1.1 or 1.2,
    // control and non-ASCII characters) reach Pegasus unchanged.
    augment(&ws, "odd.yml", "odd-out.yml", &["--policy", "basic"]);
    assert_eq!(
        load(&ws.p("odd.yml"))["jobs"]["ID0000001"],
        load(&ws.p("odd-out.yml"))["jobs"]["ID0000001"]
    );

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad-yaml",
            "pegasus: '5.0'\nname: x\njobs: [\n  - {id: a\n".to_string(),
            "line",
        ),
        (
            "no-version",
            text.replacen("pegasus: ", "pegasusx: ", 1),
            "pegasus",
        ),
        (
            "dup",
            text.replacen("id: ID0000002", "id: ID0000001", 1),
            "duplicate job id ID0000001",
        ),
        (
            "unknown-dep",
            text.replacen("- ID0000004", "- ID0000099", 1),
            "unknown child ID0000099",
        ),
        (
            "cycle",
            format!("{text}- id: ID0000004\n  children:\n  - ID0000001\n"),
            "cycle",
        ),
    ];
    for (name, body, needle) in cases {
        let f = format!("{name}.yml");
        ws.write(&f, body.as_bytes());
        let o = ws.run(&["augment", &f, "-o", "never.yml"]);
        assert_eq!(o.status.code(), Some(exit::USAGE), "{name}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(needle) && e.contains(&f), "{name}: {e}");
        assert!(!ws.p("never.yml").exists(), "{name}: no output on error");
    }
}

/// Transformations that really work: every output is its inputs concatenated plus a line.
fn working_bin(ws: &Ws, fail_analyze: bool) {
    working_bin_with(ws, fail_analyze, true)
}

fn working_bin_with(ws: &Ws, fail_analyze: bool, stamp_run: bool) {
    use std::os::unix::fs::PermissionsExt;
    let script = "#!/bin/sh\nmode=\"\"; ins=\"\"; outs=\"\"\nfor a in \"$@\"; do case \"$a\" in -i) mode=i;; -o) mode=o;; *) if [ \"$mode\" = i ]; then ins=\"$ins $a\"; else outs=\"$outs $a\"; fi;; esac; done\nfor o in $outs; do cat $ins > \"$o\"; echo \"$(basename \"$0\") $PEGASUS_DAG_JOB_ID $STAMP\" >> \"$o\"; done\n";
    let script = script.replace("$STAMP", if stamp_run { "$PEGASUS_WF_UUID" } else { "" });
    for t in ["preprocess", "analyze"] {
        let body = if t == "analyze" && fail_analyze {
            "#!/bin/sh\necho 'analyze: model diverged' >&2\nexit 3\n".to_string()
        } else {
            script.to_string()
        };
        let p = ws.write(&format!("bin/{t}"), body.as_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

#[test]
fn store_run_executes_the_workflow_and_seals_one_run() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    working_bin(&ws, false);
    let out = ws.ok(&[
        "run",
        "plain.yml",
        "--jobs",
        "2",
        "--policy",
        "full",
        "--workdir",
        "work",
        "-q",
    ]);
    let run_id = out.trim().to_string();
    assert_eq!(run_id.len(), 36, "a UUID: {run_id}");
    // The jobs really ran, in order, with the Pegasus variables.
    let fd = std::fs::read_to_string(ws.p("work/f.d")).expect("f.d");
    assert!(
        fd.contains("analyze ID0000004") && fd.contains(&run_id),
        "{fd}"
    );
    assert!(
        fd.contains("preprocess ID0000002") && fd.contains("preprocess ID0000003"),
        "{fd}"
    );
    assert!(ws.p("work/logs/ID0000001.out").exists());
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "sealed");
    assert_eq!(runs[0]["workflow"], "plain");
    let d: Value = serde_json::from_str(&ws.ok(&["show", "--json", &run_id[..8]])).expect("json");
    let n = |role: &str| {
        d["entries"]
            .as_array()
            .expect("e")
            .iter()
            .filter(|e| e["role"] == role)
            .count()
    };
    assert!(
        n("input") >= 1
            && n("output") >= 1
            && n("intermediate") >= 4
            && n("code") == 2
            && n("workflow") == 1
    );
    // And it restores by run ID.
    ws.ok(&["checkout", &run_id, "--to", "again", "--role", "output"]);
    assert_eq!(
        std::fs::read_to_string(ws.p("again/work/f.d")).expect("restored"),
        fd
    );
}

#[test]
fn store_run_stops_after_a_failed_job_and_names_it() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    working_bin(&ws, true);
    let o = ws.run(&[
        "run",
        "plain.yml",
        "--policy",
        "basic",
        "--workdir",
        "work",
        "--run-id",
        "failing-run",
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("job ID0000004") && e.contains("model diverged") && e.contains("exit status: 3"),
        "{e}"
    );
    assert!(e.contains("store_seal"), "the seal job never started: {e}");
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "open", "a failed run is not sealed");
}

#[test]
fn rerun_restores_a_sealed_run_and_reproduces_its_outputs() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    working_bin_with(&ws, false, false);
    let first = ws
        .ok(&[
            "run",
            "plain.yml",
            "--policy",
            "full",
            "--workdir",
            "work",
            "-q",
        ])
        .trim()
        .to_string();
    // The original input changes afterwards: the rerun must use the recorded one.
    ws.write("f.a", b"someone edited the raw input\n");
    let v: Value =
        serde_json::from_str(&ws.ok(&["rerun", &first[..8], "--workdir", "rr", "--json"]))
            .expect("json");
    assert_eq!(v["old_run"], first.as_str());
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(
        std::fs::read(ws.p("rr/work/f.d")).expect("rerun output"),
        std::fs::read(ws.p("work/f.d")).expect("first output")
    );
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs.as_array().expect("runs").len(), 2);
    assert!(runs
        .as_array()
        .expect("runs")
        .iter()
        .all(|r| r["status"] == "sealed"));
}

#[test]
fn federated_example_runs_seals_restores_and_reruns_identically() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated");
    // The committed workflow.yml is what the generator writes with the real Pegasus API.
    let regen = ws.p("regen.yml");
    python(&[
        example.join("generate.py").to_str().expect("utf8"),
        "-o",
        regen.to_str().expect("utf8"),
    ]);
    // (compared through Pegasus's loader: the API orders sets differently from run to run)
    assert_eq!(load(&regen), load(&example.join("workflow.yml")));
    let wf = example.join("workflow.yml");
    let id = ws
        .ok(&["run", wf.to_str().expect("utf8"), "--workdir", "work", "-q"])
        .trim()
        .to_string();
    let report: Value =
        serde_json::from_slice(&std::fs::read(ws.p("work/report.json")).expect("report"))
            .expect("json");
    assert!(
        (report["final"]["w"].as_f64().expect("w") - 3.0).abs() < 0.1,
        "{report}"
    );
    // Restore by run ID into an empty directory: every output byte for byte.
    let out = tempfile::tempdir().expect("dir");
    ws.ok(&[
        "checkout",
        &id,
        "--to",
        out.path().to_str().expect("utf8"),
        "--link",
        "copy",
    ]);
    for f in [
        "report.json",
        "model_2.json",
        "eval_1_round_1.json",
        "data_2.csv",
    ] {
        assert_eq!(
            std::fs::read(out.path().join("work").join(f)).expect(f),
            std::fs::read(ws.p("work").join(f)).expect(f),
            "{f}"
        );
    }
    // Re-run by ID gives the same outputs.
    let v: Value =
        serde_json::from_str(&ws.ok(&["rerun", &id, "--workdir", "rr", "--json"])).expect("json");
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(
        std::fs::read(ws.p("rr/work/report.json")).expect("rerun"),
        std::fs::read(ws.p("work/report.json")).expect("first")
    );
}

/// The `store` jobs of a workflow loaded by Pegasus: id -> arguments.
fn store_jobs(wf: &Value) -> BTreeMap<String, Vec<String>> {
    wf["jobs"]
        .as_object()
        .expect("jobs")
        .iter()
        .filter(|(_, j)| j["name"] == "store")
        .map(|(id, j)| {
            let args = j["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("arg").to_string())
                .collect();
            (id.clone(), args)
        })
        .collect()
}

/// The value after `flag` in `args`.
fn arg_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn uses_of(wf: &Value, job: &str) -> Vec<(String, String)> {
    string_pairs(&wf["jobs"][job]["uses"])
}

#[test]
fn subworkflows_are_augmented_recursively_into_one_run() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    std::fs::create_dir_all(ws.p("out")).expect("mkdir");
    let report = augment(
        &ws,
        "outer.yml",
        "out/outer.tracked.yml",
        &["--policy", "full"],
    );
    let run = report["run_id"]
        .as_str()
        .expect("a tree gets its run at augmentation")
        .to_string();
    let paths: Vec<&str> = report["workflows"]
        .as_array()
        .expect("workflows")
        .iter()
        .map(|w| w["job"].as_str().expect("job"))
        .collect();
    assert_eq!(paths, ["", "inner", "inner:leaf"]);
    // Every augmented file loads in Pegasus; the parents name the augmented children.
    let outer = load(&ws.p("out/outer.tracked.yml"));
    let inner = load(&ws.p("out/inner.tracked.yml"));
    let leaf = load(&ws.p("out/leaf.tracked.yml"));
    assert!(uses_of(&outer, "inner").contains(&("inner.tracked.yml".into(), "input".into())));
    assert!(uses_of(&inner, "leaf").contains(&("leaf.tracked.yml".into(), "input".into())));
    let text = std::fs::read_to_string(ws.p("out/outer.tracked.yml")).expect("yaml");
    assert!(text.contains("file: inner.tracked.yml"), "{text}");
    let written = std::fs::canonicalize(ws.p("out/inner.tracked.yml")).expect("child");
    assert!(
        text.contains(&format!("pfn: {}", written.display())),
        "the augmented child is catalogued where it was written: {text}"
    );
    // Main jobs are untouched, in every workflow of the tree.
    for (before, after, ids) in [
        ("outer.yml", &outer, &["ID_pre", "ID_post"][..]),
        ("inner.yml", &inner, &["ID_mid"][..]),
        ("leaf.yml", &leaf, &["ID_last"][..]),
    ] {
        let before = load(&ws.p(before));
        for id in ids {
            assert_eq!(before["jobs"][id], after["jobs"][id], "job {id} changed");
        }
        let main: BTreeSet<String> = before["jobs"]
            .as_object()
            .expect("jobs")
            .keys()
            .cloned()
            .collect();
        let kept: BTreeSet<_> = edges(after)
            .into_iter()
            .filter(|(p, c)| main.contains(p) && main.contains(c))
            .collect();
        assert_eq!(kept, edges(&before));
    }
    // Every tracking job of the tree records into the one run of the root workflow, each
    // sub-workflow's under its job path.
    for (wf, prefix) in [(&outer, ""), (&inner, "inner:"), (&leaf, "inner:leaf:")] {
        for (id, args) in store_jobs(wf) {
            if id == "store_seal" {
                continue;
            }
            assert_eq!(
                arg_after(&args, "--run"),
                Some(run.as_str()),
                "{id}: {args:?}"
            );
            assert_eq!(arg_after(&args, "--wf"), Some("outer"), "{id}: {args:?}");
            let job = arg_after(&args, "--job").expect("--job");
            if !prefix.is_empty() {
                assert!(job.starts_with(prefix), "{id}: {job}");
            }
        }
    }
    assert_eq!(
        arg_after(&store_jobs(&leaf)["store_in_ID_last"], "--job"),
        Some("inner:leaf:ID_last")
    );
    // One seal, in the root, after the sub-workflow job (through the root's last job).
    assert!(!store_jobs(&inner).contains_key("store_seal"));
    assert!(!store_jobs(&leaf).contains_key("store_seal"));
    let seal = &store_jobs(&outer)["store_seal"];
    assert_eq!(seal.last().map(String::as_str), Some(run.as_str()));
    let outer_edges = edges(&outer);
    assert!(outer_edges.contains(&("inner".into(), "ID_post".into())));
    assert!(outer_edges.contains(&("ID_post".into(), "store_seal".into())));
    // The code and workflow descriptions of the whole tree are tracked from the root.
    let described = &store_jobs(&outer)["store_workflow"];
    for d in [
        "workflow:outer.store-workflow.yml",
        "workflow:inner.yml",
        "workflow:leaf.yml",
    ] {
        assert!(described.iter().any(|a| a == d), "{described:?}");
    }
    let code = &store_jobs(&outer)["store_code"];
    assert!(code.iter().any(|a| a.ends_with("bin/analyze")), "{code:?}");
    // Job counts: at most 2n + 3 for the root, 2m for each sub-workflow.
    for w in report["workflows"].as_array().expect("workflows") {
        let (n, added) = (
            w["main_jobs"].as_u64().expect("n"),
            w["added_jobs"].as_u64().expect("a"),
        );
        let bound = if w["job"] == "" { 2 * n + 3 } else { 2 * n };
        assert!(added <= bound, "{w}");
    }
    // The children say which run and which job path they belong to.
    let leaf_text = std::fs::read_to_string(ws.p("out/leaf.tracked.yml")).expect("yaml");
    assert!(
        leaf_text.contains(&run) && leaf_text.contains("store_job_path: inner:leaf"),
        "{leaf_text}"
    );
    // A run ID given on the command line is used instead.
    std::fs::create_dir_all(ws.p("given")).expect("mkdir");
    let r = augment(
        &ws,
        "outer.yml",
        "given/outer.yml",
        &["--policy", "full", "--run-id", "my-run-1"],
    );
    assert_eq!(r["run_id"], "my-run-1");
    let again = load(&ws.p("given/leaf.tracked.yml"));
    assert_eq!(
        arg_after(&store_jobs(&again)["store_in_ID_last"], "--run"),
        Some("my-run-1")
    );
}

#[test]
fn store_run_executes_subworkflows_in_one_sealed_run() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    working_bin(&ws, false);
    let id = ws
        .ok(&[
            "run",
            "outer.yml",
            "--policy",
            "full",
            "--jobs",
            "2",
            "--workdir",
            "work",
            "-q",
        ])
        .trim()
        .to_string();
    // The jobs of every level ran in order, with the one run ID.
    let fe = std::fs::read_to_string(ws.p("work/f.e")).expect("f.e");
    let order: Vec<usize> = [
        "preprocess ID_pre",
        "preprocess ID_mid",
        "analyze ID_last",
        "analyze ID_post",
    ]
    .iter()
    .map(|s| {
        fe.find(&format!("{s} {id}"))
            .unwrap_or_else(|| panic!("{s}: {fe}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{fe}");
    assert!(ws.p("work/logs/inner:leaf:ID_last.out").exists());
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs.as_array().expect("runs").len(), 1, "{runs}");
    assert_eq!(runs[0]["status"], "sealed");
    assert_eq!(runs[0]["workflow"], "outer");
    // Records say which sub-workflow they came from (the job path).
    let snap: Value = serde_json::from_str(&ws.ok(&["show", "--json", &id])).expect("json");
    let recorded: BTreeSet<(String, String, String)> = snap["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["role"].as_str().expect("r").to_string(),
                e["lfn"].as_str().expect("l").to_string(),
                e["job_id"].as_str().expect("j").to_string(),
            )
        })
        .collect();
    for want in [
        ("input", "f.a", "ID_pre"),
        ("intermediate", "f.c", "inner:ID_mid"),
        ("intermediate", "f.d", "inner:leaf:ID_last"),
        ("output", "f.e", "ID_post"),
        ("workflow", "inner.yml", "workflow"),
        ("workflow", "leaf.yml", "workflow"),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        assert!(recorded.contains(&want), "{want:?} missing: {recorded:?}");
    }
    let lineage: Value =
        serde_json::from_str(&ws.ok(&["lineage", "--json", "work/f.d"])).expect("json");
    assert!(
        lineage["records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["job_id"] == "inner:leaf:ID_last"),
        "{lineage}"
    );
    ws.ok(&["checkout", &id, "--to", "again", "--role", "output"]);
    assert_eq!(
        std::fs::read_to_string(ws.p("again/work/f.e")).expect("restored"),
        fe
    );

    // A job failing inside a sub-workflow is named by its path; nothing after it starts.
    working_bin(&ws, true);
    let o = ws.run(&[
        "run",
        "outer.yml",
        "--policy",
        "basic",
        "--workdir",
        "work2",
        "--run-id",
        "failing-tree",
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("job inner:leaf:ID_last") && e.contains("model diverged"),
        "{e}"
    );
    assert!(e.contains("ID_post") && e.contains("store_seal"), "{e}");
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    let failing = runs
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["run_id"] == "failing-tree")
        .expect("failing run recorded");
    assert_eq!(failing["status"], "open");
}

#[test]
fn malformed_subworkflows_are_named() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    generate(&ws);
    let outer = std::fs::read_to_string(ws.p("outer.yml")).expect("outer");
    let inner = std::fs::read_to_string(ws.p("inner.yml")).expect("inner");
    ws.write(
        "broken.yml",
        b"pegasus: '5.0'\nname: broken\njobs: [\n  - {id: a\n",
    );
    ws.write(
        "cyc-a.yml",
        outer.replace("inner.yml", "cyc-b.yml").as_bytes(),
    );
    ws.write(
        "cyc-b.yml",
        inner.replace("leaf.yml", "cyc-a.yml").as_bytes(),
    );
    let cases: Vec<(&str, String, i32, Vec<&str>)> = vec![
        (
            "lost",
            outer.replace("inner.yml", "missing.yml"),
            exit::BAD_PATH,
            vec!["missing.yml", "sub-workflow job inner", "no such file"],
        ),
        (
            "malformed",
            outer.replace("inner.yml", "broken.yml"),
            exit::USAGE,
            vec![
                "sub-workflow job inner",
                "broken.yml",
                "invalid YAML at line",
            ],
        ),
        (
            "self",
            outer.replace("inner.yml", "self.yml"),
            exit::USAGE,
            vec!["sub-workflows include each other", "self.yml (job inner)"],
        ),
        (
            "cycle",
            std::fs::read_to_string(ws.p("cyc-a.yml")).expect("a"),
            exit::USAGE,
            vec![
                "sub-workflows include each other",
                "cyc-a.yml (job inner)",
                "cyc-b.yml (job leaf)",
            ],
        ),
    ];
    for (name, body, code, needles) in cases {
        let f = format!("{name}.yml");
        ws.write(&f, body.as_bytes());
        for cmd in [
            vec!["augment", f.as_str(), "-o", "never.yml"],
            vec!["run", f.as_str(), "--workdir", "never"],
        ] {
            let o = ws.run(&cmd);
            assert_eq!(o.status.code(), Some(code), "{name} {cmd:?}");
            let e = String::from_utf8_lossy(&o.stderr);
            for n in &needles {
                assert!(e.contains(n), "{name} {cmd:?}: {n:?} not in {e}");
            }
            assert!(!ws.p("never.yml").exists(), "{name}: no output on error");
        }
    }
}

#[test]
fn federated_rounds_as_subworkflows_run_seal_once_restore_and_rerun() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated");
    let files = [
        "workflow-sub.yml",
        "workflow-sub.round_0.yml",
        "workflow-sub.round_1.yml",
    ];
    // The committed files are what the generator writes with the real Pegasus API.
    std::fs::create_dir_all(ws.p("regen")).expect("mkdir");
    python(&[
        example.join("generate.py").to_str().expect("utf8"),
        "--subworkflows",
        "-o",
        ws.p("regen/workflow-sub.yml").to_str().expect("utf8"),
    ]);
    for f in files {
        assert_eq!(load(&ws.p("regen").join(f)), load(&example.join(f)), "{f}");
    }
    let wf = example.join("workflow-sub.yml");
    let id = ws
        .ok(&["run", wf.to_str().expect("utf8"), "--workdir", "work", "-q"])
        .trim()
        .to_string();
    // Sealed once, by the root's seal job, with the records of every round.
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs.as_array().expect("runs").len(), 1);
    assert_eq!(runs[0]["status"], "sealed");
    let seals: Vec<String> = std::fs::read_dir(ws.p("work/logs"))
        .expect("logs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("store_seal") && n.ends_with(".out"))
        .collect();
    assert_eq!(seals, ["store_seal.out"]);
    // The same outputs as the flat workflow.
    ws.ok(&[
        "run",
        example.join("workflow.yml").to_str().expect("utf8"),
        "--workdir",
        "flat",
        "--no-track",
        "-q",
    ]);
    let mut outputs = Vec::new();
    for e in std::fs::read_dir(ws.p("flat")).expect("flat") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") || name.ends_with(".csv") {
            outputs.push(name);
        }
    }
    assert!(outputs.len() >= 20, "{outputs:?}");
    for f in &outputs {
        assert_eq!(
            std::fs::read(ws.p("work").join(f)).expect(f),
            std::fs::read(ws.p("flat").join(f)).expect(f),
            "{f}"
        );
    }
    // Restored by run ID into an empty directory, byte for byte.
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
    for f in outputs
        .iter()
        .map(String::as_str)
        .chain(["workflow-sub.round_1.yml"])
    {
        assert_eq!(
            std::fs::read(out.path().join("work").join(f)).expect(f),
            std::fs::read(ws.p("work").join(f)).expect(f),
            "{f}"
        );
    }
    // Re-run by ID (the rounds read from the run's recorded copies): the same outputs.
    let v: Value =
        serde_json::from_str(&ws.ok(&["rerun", &id, "--workdir", "rr", "--json"])).expect("json");
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(
        std::fs::read(ws.p("rr/work/report.json")).expect("rerun"),
        std::fs::read(ws.p("work/report.json")).expect("first")
    );
    // Augmented for pegasus-plan: the root and each round load in Pegasus.
    std::fs::create_dir_all(ws.p("plan")).expect("mkdir");
    let report = augment(
        &ws,
        wf.to_str().expect("utf8"),
        "plan/workflow-sub.tracked.yml",
        &[],
    );
    assert_eq!(report["workflows"].as_array().expect("w").len(), 3);
    let root = load(&ws.p("plan/workflow-sub.tracked.yml"));
    assert!(uses_of(&root, "round_1")
        .contains(&("workflow-sub.round_1.tracked.yml".into(), "input".into())));
    for r in ["round_0", "round_1"] {
        let child = load(&ws.p(&format!("plan/workflow-sub.{r}.tracked.yml")));
        assert!(store_jobs(&child)
            .values()
            .all(|a| arg_after(a, "--run") == report["run_id"].as_str()));
    }
}

/// A work directory reused by a second `store run` gets the inputs of the second run, not
/// files left from the first.
#[test]
fn reused_workdir_gets_fresh_inputs() {
    let ws = Ws::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated");
    let copy = ws.p("fl");
    std::fs::create_dir_all(copy.join("bin")).expect("mkdir");
    for f in ["workflow.yml", "config.json", "bin/fl.py"] {
        std::fs::copy(src.join(f), copy.join(f)).expect(f);
    }
    let wf = copy.join("workflow.yml");
    let wf = wf.to_str().expect("utf8");
    ws.ok(&["run", wf, "--workdir", "work", "-q", "--no-track"]);
    let first = std::fs::read(ws.p("work/report.json")).expect("report");
    let cfg = std::fs::read_to_string(copy.join("config.json")).expect("config");
    std::fs::remove_file(copy.join("config.json")).expect("rm");
    std::fs::write(
        copy.join("config.json"),
        cfg.replace("\"w\": 3.0", "\"w\": -5.0"),
    )
    .expect("write");
    ws.ok(&["run", wf, "--workdir", "work", "-q", "--no-track"]);
    assert_eq!(
        std::fs::read_to_string(ws.p("work/config.json")).expect("staged"),
        std::fs::read_to_string(copy.join("config.json")).expect("new")
    );
    let second = std::fs::read(ws.p("work/report.json")).expect("report");
    assert_ne!(first, second);
}
