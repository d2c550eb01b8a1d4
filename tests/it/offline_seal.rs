//! Sealing never needs the network (issue 11): a run whose remote and git origin are away is
//! sealed with its pushes pending, and `store push` / `store sync` complete them later; no
//! credential lookup reaches a cloud metadata service unless asked.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Ws;
use crate::remote::{new_bucket, s3_endpoint, with_s3_env};

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

fn run_env(ws: &Ws, args: &[&str]) -> Output {
    with_s3_env(&mut ws.cmd(args)).output().expect("run store")
}

fn ok_env(ws: &Ws, args: &[&str]) -> String {
    let o = run_env(ws, args);
    assert!(
        o.status.success(),
        "store {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A port nothing listens on (until someone binds it again).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Forwards every connection on `port` to `target` (host:port), until the test ends.
fn forward(port: u16, target: String) {
    let l = TcpListener::bind(("127.0.0.1", port)).expect("rebind the port");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let Ok(up) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut a, mut b) = (
                c.try_clone().expect("clone"),
                up.try_clone().expect("clone"),
            );
            let (mut c2, mut up2) = (c, up);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut up2);
                let _ = up2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut b, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

/// A one-job workflow whose script is tracked as code.
fn workflow(ws: &Ws) {
    let script = ws.write_exe("bin/double.sh", b"#!/bin/sh\ncat \"$1\" \"$1\" > \"$2\"\n");
    let input = ws.write("data/in.txt", b"offline\n");
    ws.write(
        "wf.yml",
        format!(
            "pegasus: '5.0'
name: offline
replicaCatalog:
  replicas:
  - lfn: in.txt
    pfns:
    - site: local
      pfn: {}
transformationCatalog:
  transformations:
  - name: double
    sites:
    - name: local
      pfn: {}
      type: installed
jobs:
- type: job
  name: double
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
}

#[test]
fn a_run_seals_with_its_remote_and_git_origin_away_and_push_completes_later() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = new_bucket(&endpoint, "offline");
    let ws = Ws::new();
    workflow(&ws);
    let port = dead_port();
    let url = format!("s3://{bucket}/runs");
    ok_env(
        &ws,
        &[
            "remote",
            "add",
            "origin",
            &url,
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--allow-http",
        ],
    );
    // The code repository's origin is a bare repository that does not exist yet.
    let git_dir = tempfile::tempdir().expect("git");
    let code = git_dir.path().join("code");
    let bare = git_dir.path().join("origin.git");
    assert!(Command::new("git")
        .args(["init", "-q", code.to_str().expect("utf8")])
        .status()
        .expect("git")
        .success());
    assert!(Command::new("git")
        .args(["-C", code.to_str().expect("utf8")])
        .args(["remote", "add", "origin", bare.to_str().expect("utf8")])
        .status()
        .expect("git")
        .success());
    ws.ok(&["config", "set", "code.repo", code.to_str().expect("utf8")]);
    ws.ok(&["config", "set", "push.timeout", "5"]);

    let o = run_env(
        &ws,
        &["run", "wf.yml", "--policy", "full", "--workdir", "w"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let log = std::fs::read_to_string(ws.p("w/logs/store_seal.err")).expect("seal log");
    assert!(
        log.contains("push to origin pending") && log.contains("store push"),
        "{log}"
    );
    assert!(log.contains("code commit is not on origin yet"), "{log}");
    assert!(!log.contains(crate::remote::SECRET), "{log}");
    let runs = json(&ws.ok(&["runs", "--json"]));
    let r = &runs.as_array().expect("runs")[0];
    assert_eq!(r["status"], "sealed", "{r}");
    assert_eq!(r["pending"]["remote"][0], "origin", "{r}");
    assert!(r["pending"]["git"]["error"].is_string(), "{r}");
    let text = ws.ok(&["runs"]);
    assert!(text.contains("push to origin pending"), "{text}");
    let show = json(&ws.ok(&["show", &id, "--json"]));
    assert_eq!(show["pending"]["run_id"], id.as_str(), "{show}");

    // The network comes back: the endpoint answers (moto behind the same port) and the
    // origin repository exists.
    forward(
        port,
        endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    );
    assert!(Command::new("git")
        .args(["init", "-q", "--bare", bare.to_str().expect("utf8")])
        .status()
        .expect("git")
        .success());
    ok_env(&ws, &["push"]);
    let runs = json(&ws.ok(&["runs", "--json"]));
    assert!(runs[0].get("pending").is_none(), "{runs}");
    assert_eq!(ok_env(&ws, &["sync"]).trim(), "nothing pending");
    ok_env(&ws, &["push"]);
    // The bare repository has the code commit.
    let log = Command::new("git")
        .args([
            "--git-dir",
            bare.to_str().expect("utf8"),
            "log",
            "--format=%s",
            "offline",
        ])
        .output()
        .expect("git log");
    assert!(
        String::from_utf8_lossy(&log.stdout).contains(&id),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    // A clone restores the run byte for byte.
    let b = Ws::bare();
    let mut clone = b.cmd(&[
        "clone",
        &url,
        "ws",
        "--endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--allow-http",
    ]);
    let o = with_s3_env(&mut clone).output().expect("clone");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut co = b.cmd(&["checkout", &id, "--to", "restored"]);
    co.current_dir(b.p("ws"));
    let o = with_s3_env(&mut co).output().expect("checkout");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(b.p("ws/restored/w/out.txt")).expect("restored"),
        b"offline\noffline\n"
    );
}

/// A listener that counts connections and answers none (a black hole, or a metadata service
/// that must never be asked).
fn silent_listener() -> (u16, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (h, st) = (hits.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            held.push(c);
            if st.load(Ordering::SeqCst) {
                break;
            }
        }
    });
    (port, hits, stop)
}

#[test]
fn no_credentials_means_no_metadata_request_and_a_black_hole_is_bounded() {
    let ws = Ws::new();
    workflow(&ws);
    let (meta_port, meta_hits, _) = silent_listener();
    let (hole_port, hole_hits, _) = silent_listener();
    ws.ok(&[
        "remote",
        "add",
        "origin",
        "s3://bucket/runs",
        "--endpoint",
        &format!("http://127.0.0.1:{hole_port}"),
        "--allow-http",
    ]);
    ws.ok(&["config", "set", "push.timeout", "2"]);
    let meta = format!("http://127.0.0.1:{meta_port}");
    // No credentials at all: the remote fails at once, naming why, and nobody is asked.
    let o = ws
        .cmd(&["run", "wf.yml", "--policy", "basic", "--workdir", "w1"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &meta)
        .env("AWS_METADATA_ENDPOINT", &meta)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = std::fs::read_to_string(ws.p("w1/logs/store_seal.err")).expect("seal log");
    assert!(log.contains("no S3 credentials"), "{log}");
    assert_eq!(
        meta_hits.load(Ordering::SeqCst),
        0,
        "asked the metadata service"
    );
    assert_eq!(hole_hits.load(Ordering::SeqCst), 0, "{log}");
    // With credentials, an endpoint that accepts and never answers: the seal ends within its
    // bound, the push pending.
    let start = Instant::now();
    let o = with_s3_env(&mut ws.cmd(&["run", "wf.yml", "--policy", "basic", "--workdir", "w2"]))
        .output()
        .expect("run");
    let took = start.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(hole_hits.load(Ordering::SeqCst) > 0);
    let log = std::fs::read_to_string(ws.p("w2/logs/store_seal.err")).expect("seal log");
    assert!(log.contains("no answer within 2 s"), "{log}");
    let runs = json(&ws.ok(&["runs", "--json"]));
    assert!(
        runs.as_array()
            .expect("runs")
            .iter()
            .all(|r| r["status"] == "sealed" && r["pending"]["remote"][0] == "origin"),
        "{runs}"
    );
    // Still away: sync says so (exit 12) and keeps it pending.
    let o = with_s3_env(&mut ws.cmd(&["sync"])).output().expect("sync");
    assert_eq!(o.status.code(), Some(store::exit::REMOTE));
}
