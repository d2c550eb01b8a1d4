//! Reproduction you can trust (issue 11): `rerun` runs exactly the recorded code, scripts of
//! one name in two folders never collide, a checkout plans again from restored files only,
//! and `lineage` / `diff` answer with direction, renames and environment detail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{pegasus_available, python, Ws};

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

/// Two jobs, each running a script called `run.sh`, from two folders of `scripts`: A
/// upper-cases `in.txt` into `mid.txt`, B reverses each line of it into `out.txt`.
/// `wf_track` records the description whatever the policy.
fn tiny_workflow(ws: &Ws, scripts: &Path, name: &str, b_dir: &str) -> PathBuf {
    for (dir, body) in [
        ("s1", "#!/bin/sh\ntr a-z A-Z < \"$1\" > \"$2\"\n"),
        (b_dir, "#!/bin/sh\nrev < \"$1\" > \"$2\"\n"),
    ] {
        let p = scripts.join(dir).join("run.sh");
        std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        std::fs::write(&p, body).expect("script");
        Command::new("chmod")
            .args(["+x", p.to_str().expect("utf8")])
            .status()
            .expect("chmod");
    }
    let input = ws.write("data/in.txt", b"hello world\nsecond line\n");
    let yml = format!(
        "pegasus: '5.0'
name: tiny
metadata:
  wf_track: 'true'
replicaCatalog:
  replicas:
  - lfn: in.txt
    pfns:
    - site: local
      pfn: {input}
transformationCatalog:
  transformations:
  - name: upper
    sites:
    - name: local
      pfn: {s1}
      type: installed
  - name: reverse
    sites:
    - name: local
      pfn: {s2}
      type: installed
jobs:
- type: job
  name: upper
  id: A
  arguments: [in.txt, mid.txt]
  uses:
  - lfn: in.txt
    type: input
  - lfn: mid.txt
    type: output
- type: job
  name: reverse
  id: B
  arguments: [mid.txt, out.txt]
  uses:
  - lfn: mid.txt
    type: input
  - lfn: out.txt
    type: output
jobDependencies:
- id: A
  children: [B]
",
        input = input.display(),
        s1 = scripts.join("s1/run.sh").display(),
        s2 = scripts.join(b_dir).join("run.sh").display(),
    );
    let p = ws.write(&format!("wf/{name}.yml"), yml.as_bytes());
    p
}

fn run_tiny(ws: &Ws, wf: &Path, policy: &str, work: &str) -> String {
    ws.ok(&[
        "run",
        wf.to_str().expect("utf8"),
        "--policy",
        policy,
        "--workdir",
        work,
        "-q",
    ])
    .trim()
    .to_string()
}

#[test]
fn rerun_uses_the_recorded_code_of_an_absolute_path_workflow() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated");
    let fed = ws.p("fed");
    std::fs::create_dir_all(fed.join("bin")).expect("mkdir");
    for f in ["generate.py", "config.json", "bin/fl.py"] {
        std::fs::copy(example.join(f), fed.join(f)).expect("copy");
    }
    let wf = fed.join("wf-abs.yml");
    python(&[
        fed.join("generate.py").to_str().expect("utf8"),
        "--absolute",
        "-o",
        wf.to_str().expect("utf8"),
    ]);
    let text = std::fs::read_to_string(&wf).expect("wf");
    assert!(text.contains(&format!("{}", fed.join("bin/fl.py").display())));
    let id = ws
        .ok(&["run", wf.to_str().expect("utf8"), "--workdir", "work", "-q"])
        .trim()
        .to_string();
    // Today's script differs: it rounds the model to 3 places.
    let script = fed.join("bin/fl.py");
    let code = std::fs::read_to_string(&script).expect("fl.py");
    assert!(code.contains(", 12)"), "the example rounds to 12 places");
    std::fs::write(&script, code.replace(", 12)", ", 3)")).expect("edit");
    // (and it matters: running today's code gives another report)
    ws.ok(&[
        "run",
        wf.to_str().expect("utf8"),
        "--workdir",
        "today",
        "-q",
    ]);
    assert_ne!(
        std::fs::read(ws.p("today/report.json")).expect("today"),
        std::fs::read(ws.p("work/report.json")).expect("first")
    );
    let v = json(&ws.ok(&["rerun", &id, "--workdir", "rr", "--json"]));
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(v["unrecorded_code"], serde_json::json!([]), "{v}");
    assert_eq!(
        std::fs::read(ws.p("rr/work/report.json")).expect("rerun"),
        std::fs::read(ws.p("work/report.json")).expect("first")
    );
    let jobs = v["jobs"].as_array().expect("jobs");
    assert!(jobs.len() >= 10, "{v}");
    for j in jobs {
        for k in [
            "code_recorded",
            "inputs_match",
            "outputs_match",
            "environment_match",
        ] {
            assert_eq!(j[k], true, "{k}: {j}");
        }
    }
    // The restored workflow names the restored script, not today's.
    let show = json(&ws.ok(&["show", &id, "--json"]));
    let described = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["lfn"] == "federated.store-workflow.yml")
        .expect("workflow recorded")["path"]
        .as_str()
        .expect("path")
        .to_string();
    let restored_wf =
        std::fs::read_to_string(ws.p("rr/restored").join(described)).expect("restored workflow");
    assert!(!restored_wf.contains(&script.display().to_string()));
    assert!(restored_wf.contains(&ws.p("rr/restored").display().to_string()));
}

#[test]
fn same_named_scripts_in_two_folders_are_recorded_restored_and_committed() {
    let ws = Ws::new();
    let scripts = tempfile::tempdir().expect("scripts");
    let repo = tempfile::tempdir().expect("repo");
    ws.ok(&[
        "config",
        "set",
        "code.repo",
        repo.path().to_str().expect("utf8"),
    ]);
    let wf = tiny_workflow(&ws, scripts.path(), "tiny", "s2");
    let id = run_tiny(&ws, &wf, "full", "work");
    assert_eq!(
        std::fs::read_to_string(ws.p("work/out.txt")).expect("out"),
        "DLROW OLLEH\nENIL DNOCES\n"
    );
    let show = json(&ws.ok(&["show", &id, "--json"]));
    let code: Vec<&Value> = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["role"] == "code")
        .collect();
    let paths: Vec<&str> = code
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert_eq!(code.len(), 2, "{paths:?}");
    assert_ne!(paths[0], paths[1]);
    let canon = std::fs::canonicalize(scripts.path()).expect("canon");
    for (e, dir) in code.iter().zip(["s1", "s2"]) {
        let origin = canon.join(dir).join("run.sh");
        assert_eq!(e["origin"], origin.to_str().expect("utf8"), "{e}");
        assert_eq!(e["path"], format!("_external{}", origin.display()), "{e}");
    }
    // Both restored, each with its own bytes.
    let out = tempfile::tempdir().expect("out");
    ws.ok(&["checkout", &id, "--to", out.path().to_str().expect("utf8")]);
    for (p, dir) in paths.iter().zip(["s1", "s2"]) {
        assert_eq!(
            std::fs::read(out.path().join(p)).expect("restored"),
            std::fs::read(scripts.path().join(dir).join("run.sh")).expect("original"),
            "{p}"
        );
    }
    // Both in the git commit, at the same paths.
    let ls = Command::new("git")
        .args(["-C", repo.path().to_str().expect("utf8")])
        .args(["ls-tree", "-r", "--name-only", "tiny"])
        .output()
        .expect("git");
    let listed = String::from_utf8_lossy(&ls.stdout);
    for p in &paths {
        assert!(listed.lines().any(|l| l == *p), "{p} not in {listed}");
    }
}

#[test]
fn rerun_refuses_code_it_did_not_record_and_names_it() {
    let ws = Ws::new();
    let scripts = tempfile::tempdir().expect("scripts");
    let wf = tiny_workflow(&ws, scripts.path(), "tiny", "s2");
    // Files and the description tracked, code not.
    let id = run_tiny(&ws, &wf, "basic", "work");
    let o = ws.run(&["rerun", &id, "--workdir", "rr"]);
    assert_eq!(o.status.code(), Some(store::exit::USAGE), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    let s1 = scripts.path().join("s1/run.sh");
    assert!(
        e.contains("upper")
            && e.contains("reverse")
            && e.contains(s1.to_str().expect("utf8"))
            && e.contains("--allow-unrecorded"),
        "{e}"
    );
    assert!(!ws.p("rr/work/out.txt").exists(), "nothing ran");
    // Allowed, it runs today's scripts, and the report says which jobs did.
    let v = json(&ws.ok(&[
        "rerun",
        &id,
        "--workdir",
        "rr2",
        "--allow-unrecorded",
        "--json",
    ]));
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(v["unrecorded_code"], serde_json::json!(["A", "B"]), "{v}");
    for j in v["jobs"].as_array().expect("jobs") {
        assert_eq!(j["code_recorded"], false, "{j}");
    }
}

#[test]
fn checkout_plans_again_from_restored_files_only() {
    let ws = Ws::new();
    let scripts = tempfile::tempdir().expect("scripts");
    let wf = tiny_workflow(&ws, scripts.path(), "tiny", "s2");
    let id = run_tiny(&ws, &wf, "full", "work");
    let first = std::fs::read(ws.p("work/out.txt")).expect("out");
    let out = tempfile::tempdir().expect("out");
    let dir = out.path().join("restored");
    let v = json(&ws.ok(&[
        "checkout",
        &id,
        "--to",
        dir.to_str().expect("utf8"),
        "--json",
    ]));
    let root = PathBuf::from(v["root_workflow"].as_str().expect("root workflow"));
    assert!(root.starts_with(&dir), "{v}");
    assert_eq!(v["unrecorded"], serde_json::json!([]), "{v}");
    // The original scripts, inputs and workspace are gone: the restored workflow must not
    // need them.
    let away = tempfile::tempdir().expect("away");
    let moved = [
        (scripts.path().to_path_buf(), away.path().join("scripts")),
        (ws.path().to_path_buf(), away.path().join("ws")),
    ];
    for (from, to) in &moved {
        std::fs::rename(from, to).expect("move away");
    }
    let fresh = Ws::new();
    let o = fresh.run(&[
        "run",
        root.to_str().expect("utf8"),
        "--workdir",
        "again",
        "--no-track",
        "-q",
    ]);
    for (from, to) in &moved {
        std::fs::rename(to, from).expect("move back");
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(fresh.p("again/out.txt")).expect("again"),
        first
    );
    // --as-recorded restores the description byte for byte.
    let exact = out.path().join("exact");
    ws.ok(&[
        "checkout",
        &id,
        "--to",
        exact.to_str().expect("utf8"),
        "--as-recorded",
    ]);
    let rel = root.strip_prefix(&dir).expect("inside");
    assert_eq!(
        std::fs::read(exact.join(rel)).expect("exact"),
        std::fs::read(&wf).expect("original")
    );
}

#[test]
fn lineage_has_direction_and_diff_ignores_run_identity() {
    let ws = Ws::new();
    let scripts = tempfile::tempdir().expect("scripts");
    // A python3 of our own on PATH: its package list is the environment that changes.
    let bin = tempfile::tempdir().expect("bin");
    let fake = bin.path().join("python3");
    let write_python = |numpy: &str| {
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.11.2'; exit 0; fi\n\
                 printf 'numpy=={numpy}\\nrequests==2.31.0\\n'\n"
            ),
        )
        .expect("python3");
        Command::new("chmod")
            .args(["+x", fake.to_str().expect("utf8")])
            .status()
            .expect("chmod");
    };
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |wf: &Path, work: &str| {
        let o = ws
            .cmd(&[
                "run",
                wf.to_str().expect("utf8"),
                "--policy",
                "full",
                "--workdir",
                work,
                "-q",
            ])
            .env("PATH", &path)
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // The toolchain listing is cached for ten minutes: each run captures afresh.
        let _ = std::fs::remove_dir_all(ws.p(".store/cache/env"));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    write_python("1.26.0");
    let wf = tiny_workflow(&ws, scripts.path(), "tiny", "s2");
    let a = run(&wf, "w1");
    let b = run(&wf, "w2");

    // mid.txt: written by A, read by B.
    let v = json(&ws.ok(&["lineage", "w1/mid.txt", "--json"]));
    let recs: Vec<(String, String)> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["run_id"] == a.as_str())
        .map(|r| {
            (
                r["job_id"].as_str().expect("job").to_string(),
                r["direction"].as_str().expect("direction").to_string(),
            )
        })
        .collect();
    assert!(recs.contains(&("A".into(), "produced".into())), "{recs:?}");
    assert!(recs.contains(&("B".into(), "consumed".into())), "{recs:?}");
    assert!(!recs.contains(&("B".into(), "produced".into())), "{recs:?}");
    let text = ws.ok(&["lineage", "w1/mid.txt"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("consumed by") && l.contains(" job B ")),
        "{text}"
    );

    // Two runs of the same workflow in the same environment: no difference at all.
    let d = json(&ws.ok(&["diff", &a, &b, "--json"]));
    for role in [
        "input",
        "output",
        "intermediate",
        "code",
        "workflow",
        "environment",
    ] {
        assert_eq!(
            d[role],
            serde_json::json!({"added": [], "removed": [], "changed": []}),
            "{role}: {d}"
        );
    }
    assert!(d.get("environment_changes").is_none(), "{d}");
    assert_eq!(ws.ok(&["diff", &a, &b]), "");

    // One package version changed, and B's script moved to another folder unchanged.
    write_python("1.26.4");
    let moved = tiny_workflow(&ws, scripts.path(), "tiny-moved", "s3");
    let c = run(&moved, "w3");
    let d = json(&ws.ok(&["diff", &a, &c, "--json"]));
    let changed = d["environment"]["changed"].as_array().expect("changed");
    assert!(!changed.is_empty(), "{d}");
    for job in changed {
        assert_eq!(
            d["environment_changes"][job.as_str().expect("job")],
            serde_json::json!(["pip_freeze numpy: 1.26.0 -> 1.26.4"]),
            "{d}"
        );
    }
    let canon = std::fs::canonicalize(scripts.path()).expect("canon");
    assert_eq!(
        d["code"]["renamed"],
        serde_json::json!([[
            canon.join("s2/run.sh").to_str().expect("utf8").replace(
                canon.to_str().expect("utf8"),
                scripts.path().to_str().expect("utf8")
            ),
            canon.join("s3/run.sh").to_str().expect("utf8").replace(
                canon.to_str().expect("utf8"),
                scripts.path().to_str().expect("utf8")
            )
        ]]),
        "{d}"
    );
    assert_eq!(d["code"]["added"], serde_json::json!([]), "{d}");
    assert_eq!(d["code"]["removed"], serde_json::json!([]), "{d}");
    let text = ws.ok(&["diff", &a, &c]);
    assert!(
        text.contains("pip_freeze numpy: 1.26.0 -> 1.26.4") && text.contains("R code"),
        "{text}"
    );
}
