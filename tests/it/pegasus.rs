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

fn edges(wf: &Value) -> BTreeSet<(String, String)> {
    wf["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e[0].as_str().expect("p").to_string(),
                e[1].as_str().expect("c").to_string(),
            )
        })
        .collect()
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
