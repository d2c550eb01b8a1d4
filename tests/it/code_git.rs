//! Code and metadata versioning with real git repositories (inspected with the git CLI).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::common::{git, pseudo_random, Ws};

fn record(ws: &Ws, run: &str, job: &str, role: &str, path: &str) {
    let o = ws
        .cmd(&[
            "add", "-q", "--no-env", "--role", role, "--wf", "diamond", "--run", run, "--job", job,
            path,
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn setup() -> Ws {
    let ws = Ws::new();
    let remote = ws.p("remote.git");
    let o = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&remote)
        .status()
        .expect("git");
    assert!(o.success());
    let code = ws.p("coderepo");
    assert!(Command::new("git")
        .args(["init", "-q"])
        .arg(&code)
        .status()
        .expect("git")
        .success());
    git(
        &code,
        &["remote", "add", "origin", remote.to_str().expect("utf8")],
    );
    ws.ok(&["config", "set", "code.repo", code.to_str().expect("utf8")]);
    ws.ok(&["config", "set", "code.max_git_bytes", "1000000"]);
    ws
}

#[test]
fn seal_commits_code_to_the_workflow_branch_one_commit_per_run_and_pushes() {
    let ws = setup();
    ws.write("bin/a.py", b"print('v1')\n");
    let tool = ws.write("bin/tool.sh", b"#!/bin/sh\necho tool\n");
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod");
    ws.write("bin/model.bin", &pseudo_random(2_000_000, 5));
    for f in ["bin/a.py", "bin/tool.sh", "bin/model.bin"] {
        record(&ws, "run-1", "J1", "code", f);
    }
    let snap: serde_json::Value = {
        ws.ok(&["seal", "run-1"]);
        serde_json::from_str(&ws.ok(&["show", "--json", "run-1"])).expect("json")
    };
    let commit1 = snap["code"]["commit"].as_str().expect("commit").to_string();
    let code = ws.p("coderepo");
    assert_eq!(git(&code, &["rev-parse", "diamond"]), commit1);
    assert_eq!(
        git(&ws.p("remote.git"), &["rev-parse", "diamond"]),
        commit1,
        "pushed to origin"
    );
    assert_eq!(snap["code"]["pushed"], true);
    assert!(git(&code, &["log", "-1", "--format=%s", "diamond"]).contains("run-1"));
    assert_eq!(git(&code, &["show", "diamond:bin/a.py"]), "print('v1')");
    assert!(
        git(&code, &["ls-tree", "diamond", "bin/tool.sh"]).starts_with("100755"),
        "executable bit kept"
    );
    // Above the size limit: versioned in the store only.
    assert_eq!(
        snap["code"]["store_only"],
        serde_json::json!(["bin/model.bin"])
    );
    assert!(git(&code, &["ls-tree", "-r", "--name-only", "diamond"])
        .lines()
        .all(|l| l != "bin/model.bin"));
    // The recorded checksum is the store version of each committed file.
    let files = snap["code"]["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);

    // A second run with changed code: one more commit on the branch, parent = run 1's.
    ws.write("bin/a.py", b"print('v2')\n");
    record(&ws, "run-2", "J1", "code", "bin/a.py");
    ws.ok(&["seal", "run-2"]);
    let commit2 = git(&code, &["rev-parse", "diamond"]);
    assert_ne!(commit2, commit1);
    assert_eq!(git(&code, &["rev-parse", "diamond~1"]), commit1);
    // Sealing again is idempotent: no new commit.
    ws.ok(&["seal", "run-2"]);
    assert_eq!(git(&code, &["rev-parse", "diamond"]), commit2);
    // Checkout of run 1 restores v1 (verified against its git commit).
    let out = tempfile::tempdir().expect("dir");
    ws.ok(&[
        "checkout",
        "run-1",
        "--to",
        out.path().to_str().expect("utf8"),
        "--role",
        "code",
    ]);
    assert_eq!(
        fs::read(out.path().join("bin/a.py")).expect("read"),
        b"print('v1')\n"
    );
}

#[test]
fn concurrent_seals_of_one_workflow_lose_no_commit() {
    let ws = setup();
    for i in 0..6 {
        ws.write(
            &format!("bin/step{i}.py"),
            format!("print({i})\n").as_bytes(),
        );
        record(
            &ws,
            &format!("run-c{i}"),
            "J",
            "code",
            &format!("bin/step{i}.py"),
        );
    }
    let children: Vec<_> = (0..6)
        .map(|i| {
            ws.cmd(&["seal", &format!("run-c{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let code = ws.p("coderepo");
    assert_eq!(git(&code, &["rev-list", "--count", "diamond"]), "6");
    // Racing pushes never move the remote backwards: it ends with every commit.
    assert_eq!(
        git(&ws.p("remote.git"), &["rev-list", "--count", "diamond"]),
        "6"
    );
    let tree = git(&code, &["ls-tree", "-r", "--name-only", "diamond"]);
    for i in 0..6 {
        assert!(tree.contains(&format!("bin/step{i}.py")), "{tree}");
    }
}

#[test]
fn metadata_commit_versions_each_export() {
    let ws = Ws::new();
    let meta = ws.p("metarepo");
    ws.ok(&[
        "config",
        "set",
        "metadata.repo",
        meta.to_str().expect("utf8"),
    ]);
    ws.write("data/x.csv", b"1,2\n");
    record(&ws, "run-m1", "J", "input", "data/x.csv");
    ws.ok(&["metadata", "commit"]);
    record(&ws, "run-m2", "J", "input", "data/x.csv");
    ws.ok(&["metadata", "commit"]);
    assert_eq!(git(&meta, &["rev-list", "--count", "main"]), "2");
    let committed: serde_json::Value =
        serde_json::from_str(&git(&meta, &["show", "main:metadata.json"])).expect("json");
    let export: serde_json::Value =
        serde_json::from_str(&ws.ok(&["metadata", "export"])).expect("json");
    assert_eq!(committed, export);
    assert!(committed["diamond"]["run-m1"]["files"]["data/x.csv"]["version"].is_string());
    // Each run also has its own file, the same record with its name.
    let mut run: serde_json::Value =
        serde_json::from_str(&git(&meta, &["show", "main:runs/diamond/run-m2.json"]))
            .expect("json");
    assert_eq!(run["run_id"], "run-m2");
    assert_eq!(run["workflow"], "diamond");
    let m = run.as_object_mut().expect("object");
    m.remove("run_id");
    m.remove("workflow");
    assert_eq!(run, committed["diamond"]["run-m2"]);
    let o = ws.run(&["config", "set", "no.such.key", "1"]);
    assert_eq!(o.status.code(), Some(store::exit::USAGE));
}

/// `store runs --json` status of `run` ("open" or "sealed").
fn run_status(ws: &Ws, run: &str) -> String {
    let runs: serde_json::Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    runs.as_array()
        .expect("runs")
        .iter()
        .find(|r| r["run_id"] == run)
        .map(|r| r["status"].as_str().expect("status").to_string())
        .expect("run listed")
}

/// A seal killed while git held the branch's ref lock leaves `refs/heads/<wf>.lock` behind.
/// Long after, the next seal of that workflow removes it (its writer is gone: git holds a ref
/// lock for milliseconds) and moves the branch, instead of failing for good.
#[test]
fn stale_ref_lock_left_by_a_killed_seal_is_removed() {
    let ws = setup();
    ws.write("bin/a.py", b"print('v1')\n");
    record(&ws, "run-1", "J1", "code", "bin/a.py");
    ws.ok(&["seal", "run-1"]);
    let code = ws.p("coderepo");
    let commit1 = git(&code, &["rev-parse", "diamond"]);
    let lock = code.join(".git/refs/heads/diamond.lock");
    fs::write(&lock, format!("{commit1}\n")).expect("lock");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&lock)
        .expect("open lock")
        .set_modified(hour_ago)
        .expect("mtime");

    ws.write("bin/a.py", b"print('v2')\n");
    record(&ws, "run-2", "J1", "code", "bin/a.py");
    ws.ok(&["seal", "run-2"]);
    assert!(!lock.exists(), "stale lock removed");
    let snap: serde_json::Value =
        serde_json::from_str(&ws.ok(&["show", "--json", "run-2"])).expect("json");
    let commit2 = snap["code"]["commit"].as_str().expect("commit");
    assert_eq!(
        git(&code, &["rev-parse", "diamond"]),
        commit2,
        "branch moved"
    );
    assert_eq!(git(&code, &["rev-parse", "diamond~1"]), commit1);
    assert_eq!(git(&code, &["show", "diamond:bin/a.py"]), "print('v2')");
    assert_eq!(git(&ws.p("remote.git"), &["rev-parse", "diamond"]), commit2);
    assert_eq!(run_status(&ws, "run-2"), "sealed");
    // Nothing but the lock was removed: no leftover from the recovery in refs/heads.
    let left: Vec<_> = fs::read_dir(code.join(".git/refs/heads"))
        .expect("refs")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("diamond")]);
    git(&code, &["fsck", "--no-progress"]);
}

/// A ref lock that its writer keeps holding is never removed: the seal gives up after a
/// bounded wait (exit 9, the run stays open, the branch does not move), naming the lock file
/// and how to remove it; once the writer is gone the lock goes stale and the next seal works.
#[test]
fn held_ref_lock_fails_the_seal_naming_the_lock_file() {
    let ws = setup();
    ws.write("bin/a.py", b"print('v1')\n");
    record(&ws, "run-1", "J1", "code", "bin/a.py");
    ws.ok(&["seal", "run-1"]);
    let code = ws.p("coderepo");
    let commit1 = git(&code, &["rev-parse", "diamond"]);
    ws.write("bin/a.py", b"print('v2')\n");
    record(&ws, "run-2", "J1", "code", "bin/a.py");

    let lock = code.join(".git/refs/heads/diamond.lock");
    fs::write(&lock, b"").expect("lock");
    // A live writer: keeps the lock open and fresh for as long as the seal runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (lock, stop) = (lock.clone(), stop.clone());
        std::thread::spawn(move || {
            let f = fs::File::options()
                .write(true)
                .open(&lock)
                .expect("open lock");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.set_modified(std::time::SystemTime::now()).expect("mtime");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let t = std::time::Instant::now();
    let o = ws
        .cmd(&["seal", "run-2"])
        .env(store::git::LOCK_STALE_VAR, "1")
        .output()
        .expect("run");
    let waited = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(store::exit::BUSY), "{stderr}");
    assert!(
        stderr.contains(lock.to_str().expect("utf8")),
        "names the lock: {stderr}"
    );
    assert!(stderr.contains("rm "), "says how to remove it: {stderr}");
    assert!(waited < std::time::Duration::from_secs(20), "{waited:?}");
    assert!(lock.exists(), "a held lock is never removed");
    assert_eq!(git(&code, &["rev-parse", "diamond"]), commit1);
    assert_eq!(run_status(&ws, "run-2"), "open");
    ws.ok(&["verify"]);

    // The writer is gone; its lock, untouched for the bound, no longer blocks the branch.
    let o = ws
        .cmd(&["seal", "run-2"])
        .env(store::git::LOCK_STALE_VAR, "1")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!lock.exists());
    assert_eq!(git(&code, &["rev-parse", "diamond~1"]), commit1);
    assert_eq!(git(&code, &["show", "diamond:bin/a.py"]), "print('v2')");
    assert_eq!(run_status(&ws, "run-2"), "sealed");
}

/// With `metadata.repo`, every seal commits the run's record (`runs/<workflow>/<run>.json`:
/// Table I per file, the code commit with a link and checksum per committed file) and pushes
/// it; eight concurrent seals lose none; a failed push leaves the commit pending until
/// `store sync`.
#[test]
fn every_seal_commits_its_run_to_the_catalog_and_concurrent_seals_lose_none() {
    let ws = setup();
    // The code repository's origin is on GitHub (pushes go to a local bare repository).
    let code = ws.p("coderepo");
    git(
        &code,
        &[
            "remote",
            "set-url",
            "origin",
            "https://github.com/alice/flow.git",
        ],
    );
    let code_remote = ws.p("remote.git");
    git(
        &code,
        &[
            "remote",
            "set-url",
            "--push",
            "origin",
            code_remote.to_str().expect("utf8"),
        ],
    );
    let meta = ws.p("metarepo");
    let meta_remote = ws.p("meta-remote.git");
    for (dir, bare) in [(&meta_remote, true), (&meta, false)] {
        let mut c = Command::new("git");
        c.args(["init", "-q"]);
        if bare {
            c.arg("--bare");
        }
        assert!(c.arg(dir).status().expect("git").success());
    }
    git(
        &meta,
        &[
            "remote",
            "add",
            "origin",
            meta_remote.to_str().expect("utf8"),
        ],
    );
    ws.ok(&[
        "config",
        "set",
        "metadata.repo",
        meta.to_str().expect("utf8"),
    ]);
    ws.write("data/in.csv", b"a,b\n1,2\n");
    for i in 0..8 {
        ws.write(
            &format!("bin/step{i}.py"),
            format!("print({i})\n").as_bytes(),
        );
        record(
            &ws,
            &format!("run-{i}"),
            "J",
            "code",
            &format!("bin/step{i}.py"),
        );
        record(&ws, &format!("run-{i}"), "J", "input", "data/in.csv");
    }
    let seals: Vec<_> = (0..8)
        .map(|i| {
            ws.cmd(&["seal", &format!("run-{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("seal")
        })
        .collect();
    for s in seals {
        let o = s.wait_with_output().expect("seal");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let tree = git(&meta, &["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(tree.lines().count(), 8, "{tree}");
    for i in 0..8 {
        let run = format!("run-{i}");
        let record: serde_json::Value = serde_json::from_str(&git(
            &meta,
            &["show", &format!("main:runs/diamond/{run}.json")],
        ))
        .expect("record");
        let snap: serde_json::Value =
            serde_json::from_str(&ws.ok(&["show", "--json", &run])).expect("json");
        assert_eq!(record["run_id"], run.as_str());
        assert_eq!(record["status"], "sealed");
        assert_eq!(record["code"]["commit"], snap["code"]["commit"]);
        assert_eq!(record["code"]["branch"], "diamond");
        let commit = snap["code"]["commit"].as_str().expect("commit");
        let files = record["code"]["files"].as_array().expect("code files");
        let f = files
            .iter()
            .find(|f| f["path"] == format!("bin/step{i}.py"))
            .expect("the run's script");
        assert_eq!(
            f["link"],
            format!("https://github.com/alice/flow/blob/{commit}/bin/step{i}.py")
        );
        let script = snap["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["role"] == "code")
            .expect("code entry");
        assert_eq!(f["checksum"], script["hash"]);
        // The committed file is the script at that commit.
        assert_eq!(
            git(&code, &["show", &format!("{commit}:bin/step{i}.py")]),
            format!("print({i})")
        );
        assert_eq!(
            record["files"]["data/in.csv"]["version"],
            snap["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .find(|e| e["lfn"] == "data/in.csv")
                .expect("input")["hash"]
        );
    }
    // Pushed: origin has every run.
    assert_eq!(
        git(&meta_remote, &["rev-parse", "main"]),
        git(&meta, &["rev-parse", "main"])
    );
    // Sealing again commits nothing new.
    let before = git(&meta, &["rev-list", "--count", "main"]);
    ws.ok(&["seal", "run-3"]);
    assert_eq!(git(&meta, &["rev-list", "--count", "main"]), before);

    // Origin away: the run is sealed and in the local catalog; the push is pending.
    git(
        &meta,
        &["remote", "set-url", "origin", "/nonexistent/meta.git"],
    );
    ws.write("bin/late.py", b"print('late')\n");
    record(&ws, "run-late", "J", "code", "bin/late.py");
    let o = ws.run(&["seal", "run-late"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is in the catalog"), "{err}");
    git(&meta, &["show", "main:runs/diamond/run-late.json"]);
    let pending = fs::read_to_string(ws.p(".store/pending/push/run-late.json")).expect("pending");
    assert!(pending.contains("\"metadata\""), "{pending}");
    // Back: `store sync` pushes it and forgets it.
    git(
        &meta,
        &[
            "remote",
            "set-url",
            "origin",
            meta_remote.to_str().expect("utf8"),
        ],
    );
    ws.ok(&["sync"]);
    assert!(!ws.p(".store/pending/push/run-late.json").exists());
    assert_eq!(
        git(&meta_remote, &["rev-parse", "main"]),
        git(&meta, &["rev-parse", "main"])
    );
}
