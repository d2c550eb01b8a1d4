//! Secrets inside values never land (issue 18): distinct canaries planted in every form a
//! secret takes inside an environment value, a package list or a remote setting; a full
//! tracked run pushed to a directory remote and to S3, linked to MLflow, its code committed to
//! a git repository with an origin, its metadata exported and committed; then every byte the
//! store, both remotes (read back through clones, decompressed by the store's own reader), the
//! git repositories, MLflow and the logs hold is scanned: no canary anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::Ws;
use crate::remote::{new_bucket, s3_endpoint, with_s3_env};

/// The canaries, each in the form it would take.
const CANARIES: &[&str] = &[
    "CANARYa7f3kq",
    "CANARYb9q2wz",
    "CANARYc4r8tx",
    "CANARYd1z5xv",
    "CANARYe6y7ub",
    "ghp_CANARYf0123456789",
    "CANARYg2h3jn",
];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Scans bytes for every canary; returns (place, canary) hits.
fn scan(place: &str, bytes: &[u8], hits: &mut Vec<String>, scanned: &mut usize) {
    *scanned += bytes.len();
    let text = String::from_utf8_lossy(bytes);
    for c in CANARIES {
        if text.contains(c) {
            hits.push(format!("{place}: {c}"));
        }
    }
}

fn scan_tree(dir: &Path, hits: &mut Vec<String>, scanned: &mut usize) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    for f in files {
        if let Ok(b) = std::fs::read(&f) {
            scan(&f.display().to_string(), &b, hits, scanned);
        }
    }
}

fn git(args: &[&str]) -> Vec<u8> {
    let o = Command::new("git").args(args).output().expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// A fake `python3` whose package list has a direct-URL requirement with a token.
fn fake_python(dir: &Path) {
    let p = dir.join("python3");
    std::fs::write(
        &p,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.11.2'; exit 0; fi\n\
         echo 'numpy==1.26.4'\necho 'private @ git+https://oauth2:CANARYe6y7ub@git.example.com/p.git'\n",
    )
    .expect("python3");
    Command::new("chmod")
        .args(["+x", p.to_str().expect("utf8")])
        .status()
        .expect("chmod");
}

#[test]
fn no_canary_lands_anywhere_the_store_writes_uploads_or_sends() {
    let s3 = s3_endpoint();
    let mlflow = crate::mlflow::mlflow_uri();
    let ws = Ws::new();
    let script = ws.write_exe("bin/copy.sh", b"#!/bin/sh\ncp \"$1\" \"$2\"\n");
    let input = ws.write("data/in.txt", b"data\n");
    ws.write(
        "wf.yml",
        format!(
            "pegasus: '5.0'
name: canary
metadata:
  store_track: full
replicaCatalog:
  replicas:
  - lfn: in.txt
    pfns:
    - {{site: local, pfn: {}}}
transformationCatalog:
  transformations:
  - name: copy
    sites:
    - {{name: local, pfn: {}, type: installed}}
jobs:
- type: job
  name: copy
  id: J
  arguments: [in.txt, out.txt]
  uses:
  - {{lfn: in.txt, type: input}}
  - {{lfn: out.txt, type: output}}
",
            input.display(),
            script.display()
        )
        .as_bytes(),
    );
    // Remotes: a directory, and S3 when the test server is here (required under CI).
    let remote_dir = tempfile::tempdir().expect("remote");
    ws.ok(&[
        "remote",
        "add",
        "dir",
        remote_dir.path().to_str().expect("utf8"),
    ]);
    // An endpoint with a password is refused, and never stored.
    let o = ws.run(&[
        "remote",
        "add",
        "leaky",
        "s3://b/p",
        "--endpoint",
        "http://u:CANARYg2h3jn@127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(store::exit::USAGE));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("CANARYg2h3jn"));
    let s3_url = s3.as_ref().map(|ep| {
        let bucket = new_bucket(ep, "canary");
        let url = format!("s3://{bucket}/lab");
        ws.ok(&[
            "remote",
            "add",
            "s3",
            &url,
            "--endpoint",
            ep,
            "--allow-http",
        ]);
        url
    });
    // Git: a code repository with an origin, and a metadata repository.
    let git_dir = tempfile::tempdir().expect("git");
    let code = git_dir.path().join("code");
    let origin = git_dir.path().join("origin.git");
    let meta = git_dir.path().join("meta");
    git(&["init", "-q", "--bare", origin.to_str().expect("utf8")]);
    git(&["init", "-q", code.to_str().expect("utf8")]);
    git(&[
        "-C",
        code.to_str().expect("utf8"),
        "remote",
        "add",
        "origin",
        origin.to_str().expect("utf8"),
    ]);
    ws.ok(&["config", "set", "code.repo", code.to_str().expect("utf8")]);
    ws.ok(&[
        "config",
        "set",
        "metadata.repo",
        meta.to_str().expect("utf8"),
    ]);
    if let Some(uri) = &mlflow {
        ws.ok(&["config", "set", "mlflow.uri", uri]);
    }
    let bin = tempfile::tempdir().expect("bin");
    fake_python(bin.path());
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut run = ws.cmd(&["run", "wf.yml", "--workdir", "w"]);
    if mlflow.is_some() {
        run.arg("--mlflow");
    }
    let o = with_s3_env(&mut run)
        .env("PATH", &path)
        .env(
            "PEGASUS_SUBMIT_URL",
            "https://svc:CANARYa7f3kq@submit.example.com/x",
        )
        .env("SLURM_JOB_COMMENT", "token=CANARYb9q2wz")
        .env("STORE_ENV_ALLOW", "DATABASE_URL,HTTPS_PROXY")
        .env(
            "DATABASE_URL",
            "postgres://u:CANARYc4r8tx@db.example.com/db",
        )
        .env(
            "HTTPS_PROXY",
            "http://u:CANARYd1z5xv@proxy.example.com:3128",
        )
        .env("PYTHONPATH", "/opt/lib:ghp_CANARYf0123456789")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // The values were captured (redacted), not dropped: the test would pass vacuously otherwise.
    let show: Value = serde_json::from_str(&ws.ok(&["show", &id, "--json"])).expect("json");
    let env_hash = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["role"] == "environment" && e["job_id"] == "J")
        .expect("environment of J")["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let env: Value = serde_json::from_str(&ws.ok(&["cat", &env_hash])).expect("env json");
    let vars = &env["variables"];
    assert!(vars["PEGASUS_SUBMIT_URL"]
        .as_str()
        .expect("captured")
        .contains("***@submit.example.com"));
    assert!(vars["DATABASE_URL"]
        .as_str()
        .expect("captured")
        .contains("***@db.example.com"));
    assert!(
        env["pip_freeze"]
            .to_string()
            .contains("***@git.example.com"),
        "{env}"
    );

    // Everything pushed (the seal pushed to the default remote, `dir`), then to S3 as well.
    ws.ok(&["push", "dir"]);
    if s3_url.is_some() {
        let mut push = ws.cmd(&["push", "s3"]);
        let o = with_s3_env(&mut push).output().expect("push s3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    ws.ok(&["metadata", "commit"]);
    let export = ws.ok(&["metadata", "export"]);

    let mut hits = Vec::new();
    let mut scanned = 0usize;
    let mut places = 0usize;
    // The workspace: the store (raw), job logs and outputs, the environment cache.
    scan_tree(ws.path(), &mut hits, &mut scanned);
    places += 1;
    // Every object of the run, decompressed: each entry's content.
    for e in show["entries"].as_array().expect("entries") {
        let h = e["hash"].as_str().expect("hash");
        if e["kind"] == "file" {
            scan(
                &format!("object {h}"),
                ws.ok(&["cat", h]).as_bytes(),
                &mut hits,
                &mut scanned,
            );
        }
    }
    places += 1;
    scan(
        "metadata export",
        export.as_bytes(),
        &mut hits,
        &mut scanned,
    );
    scan("show", show.to_string().as_bytes(), &mut hits, &mut scanned);
    // The directory remote, raw and read back through a clone.
    scan_tree(remote_dir.path(), &mut hits, &mut scanned);
    let clones = tempfile::tempdir().expect("clones");
    let mut clone_sources = vec![(remote_dir.path().display().to_string(), Vec::new())];
    if let (Some(url), Some(ep)) = (&s3_url, &s3) {
        clone_sources.push((
            url.clone(),
            vec![
                "--endpoint".to_string(),
                ep.clone(),
                "--allow-http".to_string(),
            ],
        ));
    }
    for (i, (src, extra)) in clone_sources.iter().enumerate() {
        let dest = clones.path().join(format!("c{i}"));
        let mut c = Command::new(env!("CARGO_BIN_EXE_store"));
        c.args(["clone", src, dest.to_str().expect("utf8")])
            .args(extra);
        let o = with_s3_env(&mut c).output().expect("clone");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut cat = Command::new(env!("CARGO_BIN_EXE_store"));
        cat.args(["cat", &env_hash]).current_dir(&dest);
        let o = with_s3_env(&mut cat).output().expect("cat");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        scan(&format!("remote {src}"), &o.stdout, &mut hits, &mut scanned);
        scan_tree(&dest, &mut hits, &mut scanned);
        places += 1;
    }
    // Git: every commit of every repository, with its patches.
    for repo in [&code, &meta] {
        let log = git(&["-C", repo.to_str().expect("utf8"), "log", "-p", "--all"]);
        scan(&repo.display().to_string(), &log, &mut hits, &mut scanned);
    }
    let log = git(&[
        "--git-dir",
        origin.to_str().expect("utf8"),
        "log",
        "-p",
        "--all",
    ]);
    assert!(!log.is_empty(), "the code commit reached origin");
    scan("code origin", &log, &mut hits, &mut scanned);
    places += 3;
    // MLflow: every run of the experiment, with its params and tags.
    if let Some(uri) = &mlflow {
        let exps = crate::mlflow::api(
            uri,
            "experiments/search",
            serde_json::json!({"max_results": 1000}),
        );
        let ids: Vec<Value> = exps["experiments"]
            .as_array()
            .expect("experiments")
            .iter()
            .filter(|e| e["name"] == "canary")
            .map(|e| e["experiment_id"].clone())
            .collect();
        assert!(!ids.is_empty(), "{exps}");
        let runs = crate::mlflow::api(
            uri,
            "runs/search",
            serde_json::json!({"experiment_ids": ids, "max_results": 1000}),
        );
        assert!(
            runs["runs"].as_array().is_some_and(|r| !r.is_empty()),
            "{runs}"
        );
        scan(
            "MLflow runs",
            runs.to_string().as_bytes(),
            &mut hits,
            &mut scanned,
        );
        places += 1;
    }
    eprintln!(
        "canary scan: {places} places, {scanned} bytes, {} hits",
        hits.len()
    );
    assert_eq!(hits, Vec::<String>::new());
}
