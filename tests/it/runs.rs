//! Workflow runs recorded by real concurrent processes, sealed, restored, compared, traced.

use std::fs;
use std::process::Stdio;

use store::exit;

use crate::common::{packs, pseudo_random, Ws};

const WF: &str = "diamond";
const RUN: &str = "5b1c0de0-1111-2222-3333-444455556666";
const SECRET: &str = "hunter2-very-secret-value";

/// `store add --role` as a Pegasus job would run it: identity from PEGASUS_* variables, a
/// secret in the environment.
fn job(ws: &Ws, run: &str, job: &str, role: &str, path: &str) -> std::process::Command {
    let mut c = ws.cmd(&["add", "-q", "--role", role, path]);
    c.env("PEGASUS_WF_LABEL", WF)
        .env("PEGASUS_WF_UUID", run)
        .env("PEGASUS_DAG_JOB_ID", job)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("MY_API_TOKEN", SECRET)
        .env("STORE_ENV_ALLOW", "MY_*,AWS_*")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run_ok(mut c: std::process::Command) -> String {
    let o = c.output().expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes the inputs of a small diamond workflow.
fn workflow_files(ws: &Ws) {
    ws.write("wf/diamond.yml", b"pegasus: 5.0\nname: diamond\njobs: []\n");
    ws.write("bin/preprocess.py", b"print('pre')\n");
    ws.write("data/f.a", &pseudo_random(300_000, 1));
    for j in 0..12 {
        ws.write(
            &format!("data/in{j}.txt"),
            format!("input {j}\n").repeat(1000).as_bytes(),
        );
    }
}

#[test]
fn many_jobs_record_concurrently_then_seal_and_restore_byte_for_byte() {
    let ws = Ws::new();
    workflow_files(&ws);
    let mut children = Vec::new();
    for j in 0..12 {
        children.push(
            job(
                &ws,
                RUN,
                &format!("ID{j:07}"),
                "input",
                &format!("data/in{j}.txt"),
            )
            .spawn()
            .expect("spawn"),
        );
    }
    children.push(
        job(&ws, RUN, "wf", "workflow", "wf/diamond.yml")
            .spawn()
            .expect("spawn"),
    );
    children.push(
        job(&ws, RUN, "ID0000001", "code", "bin/preprocess.py")
            .spawn()
            .expect("spawn"),
    );
    children.push(
        job(&ws, RUN, "ID0000002", "input", "data/f.a")
            .spawn()
            .expect("spawn"),
    );
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    ws.write("data/f.b", b"output of preprocess\n");
    run_ok(job(&ws, RUN, "ID0000001", "output", "data/f.b"));
    let runs: serde_json::Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["run_id"], RUN);
    assert_eq!(runs[0]["status"], "open");
    // 13 inputs, an output, code, workflow, and one environment per job (12 + wf), even when
    // two processes of the same job raced to capture it.
    let show: serde_json::Value =
        serde_json::from_str(&ws.ok(&["show", "--json", &RUN[..8]])).expect("json");
    let entries = show["entries"].as_array().expect("entries");
    let count = |role: &str| entries.iter().filter(|e| e["role"] == role).count();
    assert_eq!(
        (
            count("input"),
            count("output"),
            count("code"),
            count("workflow")
        ),
        (13, 1, 1, 1)
    );
    assert_eq!(count("environment"), 13, "one environment record per job");

    let seal = ws.ok(&["seal", RUN, "--json"]);
    let seal: serde_json::Value = serde_json::from_str(&seal).expect("json");
    assert_eq!(seal["newly_sealed"], true);
    let again: serde_json::Value =
        serde_json::from_str(&ws.ok(&["seal", RUN, "--json"])).expect("json");
    assert_eq!(again["snapshot"], seal["snapshot"], "sealing is idempotent");
    assert_eq!(again["newly_sealed"], false);
    // Recording after sealing is refused, clearly.
    let o = job(&ws, RUN, "late", "output", "data/f.b")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(exit::SEALED));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sealed"));

    // Restore anywhere: an empty directory gets every file at its recorded path.
    let out = tempfile::tempdir().expect("dir");
    let o = ws
        .cmd(&[
            "checkout",
            RUN,
            "--to",
            out.path().to_str().expect("utf8"),
            "--link",
            "copy",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "wf/diamond.yml",
        "bin/preprocess.py",
        "data/f.a",
        "data/f.b",
        "data/in7.txt",
    ] {
        assert_eq!(
            fs::read(out.path().join(f)).expect(f),
            fs::read(ws.p(f)).expect(f),
            "{f}"
        );
    }
    let env: serde_json::Value = serde_json::from_slice(
        &fs::read(out.path().join("environment/ID0000001.json")).expect("env"),
    )
    .expect("json");
    assert!(env["cpu_count"].as_u64().expect("cpus") >= 1);
    assert_eq!(env["variables"]["PEGASUS_WF_LABEL"], WF);
    // Only inputs: --role filters.
    let only = tempfile::tempdir().expect("dir");
    ws.ok(&[
        "checkout",
        RUN,
        "--to",
        only.path().to_str().expect("utf8"),
        "--role",
        "code",
    ]);
    assert!(only.path().join("bin/preprocess.py").exists());
    assert!(!only.path().join("data").exists());
    // gc keeps everything a run references, even after the paths moved on.
    ws.write("data/f.a", b"changed");
    ws.ok(&["add", "-q", "data"]);
    ws.ok(&["gc", "--yes", "--keep-last", "1"]);
    ws.ok(&["verify"]);
    let again = tempfile::tempdir().expect("dir");
    ws.ok(&[
        "checkout",
        RUN,
        "--to",
        again.path().to_str().expect("utf8"),
        "--link",
        "copy",
    ]);
    assert_eq!(
        fs::read(again.path().join("data/f.a")).expect("f.a"),
        pseudo_random(300_000, 1)
    );
    // And the index can be rebuilt with the run intact.
    ws.ok(&["reindex"]);
    let runs: serde_json::Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "sealed");
    assert_eq!(runs[0]["snapshot"], seal["snapshot"]);
}

#[test]
fn secrets_never_reach_any_stored_object_or_export() {
    let ws = Ws::new();
    workflow_files(&ws);
    run_ok(job(&ws, RUN, "ID1", "input", "data/in1.txt"));
    ws.ok(&["seal", RUN]);
    let export = ws.ok(&["metadata", "export", "--format", "json"]);
    assert!(!export.contains(SECRET));
    let yaml = ws.ok(&["metadata", "export", "--format", "yaml"]);
    assert!(!yaml.contains(SECRET));
    assert!(
        yaml.contains(&format!("{WF}:")) && yaml.contains("role: input"),
        "{yaml}"
    );
    let env = ws
        .cmd(&["env"])
        .env("MY_API_TOKEN", SECRET)
        .env("STORE_ENV_ALLOW", "MY_*")
        .output()
        .expect("env");
    assert!(!String::from_utf8_lossy(&env.stdout).contains(SECRET));
    // Every object in every pack, decompressed.
    let mut objects = 0;
    for p in packs(&ws.p(".store")) {
        let r = store::pack::PackReader::open(&p).expect("pack");
        for e in r.entries().expect("toc") {
            let data = r.read(&e).expect("object");
            objects += 1;
            assert!(
                !data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "secret in {:?}",
                e.kind
            );
        }
    }
    assert!(objects > 5);
    // The export has every per-file field of the research prototype's metadata file.
    let v: serde_json::Value = serde_json::from_str(&export).expect("json");
    let file = &v[WF][RUN]["files"]["data/in1.txt"];
    for field in [
        "workflow",
        "run_id",
        "file_name",
        "path",
        "size",
        "mtime_ns",
        "recorded_ns",
        "role",
        "version",
        "remote_urls",
        "environment",
        "mlflow_url",
    ] {
        assert!(file.get(field).is_some(), "missing {field}: {file}");
    }
    assert_eq!(file["role"], "input");
    assert_eq!(file["size"], 8000);
}

#[test]
fn diff_reports_exactly_the_changed_entries() {
    let ws = Ws::new();
    workflow_files(&ws);
    let a = "aaaa0001-run";
    let b = "aaaa0002-run";
    for run in [a, b] {
        if run == b {
            ws.write("data/in3.txt", b"changed input\n");
            ws.write("bin/preprocess.py", b"print('v2')\n");
        }
        run_ok(job(&ws, run, "J1", "input", "data/in1.txt"));
        run_ok(job(&ws, run, "J1", "input", "data/in3.txt"));
        run_ok(job(&ws, run, "J1", "code", "bin/preprocess.py"));
        run_ok(job(&ws, run, "wf", "workflow", "wf/diamond.yml"));
        if run == b {
            run_ok(job(&ws, run, "J2", "output", "data/f.a"));
        }
        ws.ok(&["seal", run]);
    }
    let d: serde_json::Value =
        serde_json::from_str(&ws.ok(&["diff", a, b, "--json"])).expect("json");
    assert_eq!(d["input"]["changed"], serde_json::json!(["data/in3.txt"]));
    assert_eq!(d["input"]["added"], serde_json::json!([]));
    assert_eq!(
        d["code"]["changed"],
        serde_json::json!(["bin/preprocess.py"])
    );
    assert_eq!(d["output"]["added"], serde_json::json!(["data/f.a"]));
    assert_eq!(
        d["workflow"],
        serde_json::json!({"added": [], "removed": [], "changed": []})
    );
    assert_eq!(d["environment"]["added"], serde_json::json!(["J2"]));
    // An ambiguous run prefix is rejected with the candidates listed.
    let o = ws.run(&["show", "aaaa"]);
    assert_eq!(o.status.code(), Some(exit::NOT_FOUND));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("ambiguous") && e.contains(a) && e.contains(b),
        "{e}"
    );
    let o = ws.run(&["checkout", "aaaa", "--to", "x"]);
    assert_eq!(o.status.code(), Some(exit::NOT_FOUND));
}

#[test]
fn lineage_finds_producer_and_consumer_jobs() {
    let ws = Ws::new();
    workflow_files(&ws);
    ws.write("data/f.b", b"intermediate product\n");
    run_ok(job(&ws, RUN, "preprocess", "output", "data/f.b"));
    ws.write("copy/f.b", b"intermediate product\n");
    run_ok(job(&ws, RUN, "findrange", "input", "copy/f.b"));
    let v: serde_json::Value =
        serde_json::from_str(&ws.ok(&["lineage", "data/f.b", "--json"])).expect("json");
    let recs = v["records"].as_array().expect("records");
    let pairs: Vec<(String, String)> = recs
        .iter()
        .map(|r| {
            (
                r["job_id"].as_str().expect("job").to_string(),
                r["role"].as_str().expect("role").to_string(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&("preprocess".into(), "output".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("findrange".into(), "input".into())),
        "{pairs:?}"
    );
    let text = ws.ok(&["lineage", &v["hash"].as_str().expect("hash")[..12]]);
    assert!(
        text.contains("produced by") && text.contains("consumed by"),
        "{text}"
    );
}

#[test]
fn checkout_refuses_path_traversal_and_overwrites() {
    let ws = Ws::new();
    workflow_files(&ws);
    run_ok(job(&ws, RUN, "J", "input", "data/in1.txt"));
    // A hostile partial manifest (as a tampered remote could deliver): path escapes the target.
    let store = ws.open();
    let good: serde_json::Value =
        serde_json::from_str(&ws.ok(&["show", "--json", RUN])).expect("json");
    let mut entry = good["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["role"] == "input")
        .expect("input")
        .clone();
    entry["path"] = serde_json::json!("../../escaped.txt");
    let part = serde_json::json!({
        "format": 1, "workflow": WF, "run_id": "evil-run", "job_id": "J", "host": null,
        "time_ns": 1, "entries": [entry]
    });
    let bytes = serde_json::to_vec(&part).expect("json");
    let h = store::Hash::of(store::ObjectKind::RunPart, &bytes);
    let mut w = store::pack::PackWriter::create(&ws.p(".store/tmp")).expect("writer");
    w.append(
        h,
        store::ObjectKind::RunPart,
        store::pack::Compression::Raw,
        bytes.len() as u32,
        &bytes,
    )
    .expect("append");
    w.finish(&ws.p(".store/packs")).expect("finish");
    drop(store);
    let _ = ws.run(&["reindex"]);
    let target = ws.p("deep/target");
    let o = ws.run(&[
        "checkout",
        "evil-run",
        "--to",
        target.to_str().expect("utf8"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(exit::CORRUPT),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsafe path"));
    assert!(!ws.p("escaped.txt").exists() && !ws.p("deep/escaped.txt").exists());

    // Existing files with other content are not overwritten without --force.
    let out = ws.p("restore");
    fs::create_dir_all(out.join("data")).expect("mkdir");
    fs::write(out.join("data/in1.txt"), b"my local edits").expect("write");
    let o = ws.run(&["checkout", RUN, "--to", "restore"]);
    assert_eq!(o.status.code(), Some(exit::BAD_PATH));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(
        fs::read(out.join("data/in1.txt")).expect("read"),
        b"my local edits"
    );
    ws.ok(&["checkout", RUN, "--to", "restore", "--force"]);
    assert_eq!(
        fs::read(out.join("data/in1.txt")).expect("read"),
        fs::read(ws.p("data/in1.txt")).expect("src")
    );
}

#[test]
fn role_without_a_run_is_a_clear_error() {
    let ws = Ws::new();
    ws.write("x", b"x");
    let o = ws
        .cmd(&["add", "--role", "input", "x"])
        .env_remove("PEGASUS_WF_UUID")
        .env_remove("STORE_RUN_ID")
        .env_remove("PEGASUS_WF_LABEL")
        .env_remove("STORE_WF_NAME")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(exit::USAGE));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--wf"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ws.run(&["add", "--role", "bogus", "--wf", "w", "--run", "r", "x"]);
    assert_eq!(o.status.code(), Some(exit::USAGE));
    let o = ws.run(&[
        "add", "--role", "input", "--wf", "w", "--run", "../etc", "x",
    ]);
    assert_eq!(o.status.code(), Some(exit::USAGE));
}

#[test]
fn run_checkout_keeps_modes_and_queries_record_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let tool = ws.write("bin/tool.sh", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o750)).expect("chmod");
    run_ok(job(&ws, RUN, "J", "code", "bin/tool.sh"));
    ws.write("d/a.txt", b"a");
    let before = ws.ok(&["log"]);
    let o = ws.run(&["lineage", "d"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ws.ok(&["log"]), before, "a lineage query stores nothing");
    let out = tempfile::tempdir().expect("dir");
    ws.ok(&["checkout", RUN, "--to", out.path().to_str().expect("utf8")]);
    let mode = fs::metadata(out.path().join("bin/tool.sh"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
}

#[test]
fn a_prefix_of_both_a_run_and_an_object_is_refused() {
    let ws = Ws::new();
    ws.write("f.txt", b"content");
    let h = ws.add("f.txt");
    let run_id = format!("{}-run", &h[..8]);
    run_ok(job(&ws, &run_id, "J", "input", "f.txt"));
    let o = ws.run(&["checkout", &h[..6], "--to", "x"]);
    assert_eq!(
        o.status.code(),
        Some(exit::NOT_FOUND),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("give more characters"));
    // The full run ID and a longer hash prefix are unambiguous.
    ws.ok(&["checkout", &run_id, "--to", "r"]);
    ws.ok(&["checkout", &h[..20], "--to", "o"]);
    assert_eq!(fs::read(ws.p("o/f.txt")).expect("read"), b"content");
}
