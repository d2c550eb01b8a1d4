//! Remotes against real backends: a directory, and a real S3-compatible server on loopback
//! (moto, started by `.ci/run`; `STORE_TEST_S3_ENDPOINT` names it). Under `CI=true` a missing
//! server is a failure, not a skip.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use store::remote::{Backend, DirBackend, RemoteSpec};

use crate::common::{pseudo_random, Ws};

/// The S3 test endpoint, or None (skip) outside CI.
pub fn s3_endpoint() -> Option<String> {
    match std::env::var("STORE_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            crate::skips::skip(
                "S3",
                "no S3 server (STORE_TEST_S3_ENDPOINT); `bash tests/run.sh` starts moto",
                false,
            );
            None
        }
    }
}

/// Creates a fresh bucket on the test server (moto accepts an unsigned CreateBucket).
pub fn new_bucket(endpoint: &str, name: &str) -> String {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).expect("connect to S3 server");
    let bucket = format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
            % 1_000_000_000
    );
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    bucket
}

/// Test credentials (moto accepts any); a distinctive secret so tests can look for leaks.
pub const SECRET: &str = "sEcReT-9f1c2e-do-not-store";

pub fn with_s3_env(c: &mut Command) -> &mut Command {
    c.env("AWS_ACCESS_KEY_ID", "AKIATESTKEY")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
}

fn s3_spec(endpoint: &str, bucket: &str, prefix: &str) -> RemoteSpec {
    let mut options = std::collections::BTreeMap::new();
    options.insert("endpoint".to_string(), endpoint.to_string());
    options.insert("allow_http".to_string(), "true".to_string());
    RemoteSpec {
        url: format!("s3://{bucket}/{prefix}"),
        options,
    }
}

pub(crate) fn open_s3(endpoint: &str, bucket: &str, prefix: &str) -> Box<dyn Backend> {
    // The same values in every test, so setting them from several threads is harmless.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIATESTKEY");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
    std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    s3_spec(endpoint, bucket, prefix).open().expect("open s3")
}

/// What a backend promises when several writers create one key at the same instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Racing {
    /// Exactly one creator wins (a directory's link(2), S3's conditional PUT, Drive as the
    /// backend reads it: the oldest file).
    OneWinner,
    /// At least one wins. moto's server checks `If-None-Match: *` and then stores the object
    /// without a lock in between (`put_object` in moto/s3/responses.py), so two racers can both
    /// get 200 there, where real S3 answers 412 to all but one. The store never depends on a
    /// single winner: packs and segments are named by their content, and racing writers of a
    /// run manifest write it from the one sealed snapshot.
    AtLeastOne,
}

/// The behaviour every backend must have.
pub fn conformance(b: &dyn Backend, racing: Racing) {
    assert_eq!(b.get("a/missing").expect("get missing"), None);
    assert_eq!(b.head("a/missing").expect("head missing"), None);
    let data = pseudo_random(300_000, 7);
    assert!(
        b.put_new("a/b/one", data.clone()).expect("put"),
        "first put creates"
    );
    // A second put never replaces what is there.
    assert!(!b.put_new("a/b/one", b"other".to_vec()).expect("put again"));
    assert_eq!(b.get("a/b/one").expect("get").as_deref(), Some(&data[..]));
    assert_eq!(b.head("a/b/one").expect("head"), Some(data.len() as u64));
    assert_eq!(
        b.get_range("a/b/one", 1000..5000).expect("range"),
        &data[1000..5000]
    );
    assert!(b.put_new("a/two", b"2".to_vec()).expect("put two"));
    assert!(b.put_new("c/three", Vec::new()).expect("put empty"));
    assert_eq!(
        b.get("c/three").expect("get empty").as_deref(),
        Some(&b""[..])
    );
    let mut listed = b.list("a/").expect("list");
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("a/b/one".to_string(), data.len() as u64),
            ("a/two".to_string(), 1)
        ]
    );
    assert!(b.list("zzz/").expect("list empty").is_empty());
    // Racing creators of one key: exactly one wins, and the value is one of theirs, whole.
    let wins: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u8)
            .map(|i| s.spawn(move || b.put_new("race/key", vec![i; 100_000]).expect("race put")))
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    let winners = wins.iter().filter(|w| **w).count();
    match racing {
        Racing::OneWinner => assert_eq!(winners, 1, "{wins:?}"),
        Racing::AtLeastOne => assert!(winners >= 1, "{wins:?}"),
    }
    let v = b.get("race/key").expect("get race").expect("present");
    assert_eq!(v.len(), 100_000);
    assert!(v.iter().all(|x| *x == v[0]));
    // Ages: every backend here records when a value was written.
    let aged = b.list_aged("a/").expect("list aged");
    assert_eq!(aged.len(), 2, "{aged:?}");
    for l in &aged {
        let age = l.age.expect("an age");
        assert!(age < std::time::Duration::from_secs(600), "{l:?}");
    }
    // Delete: the value goes whole, deleting again (or an absent key) succeeds, and the key
    // can be created anew.
    b.delete("a/two").expect("delete");
    assert_eq!(b.get("a/two").expect("get deleted"), None);
    assert_eq!(b.head("a/two").expect("head deleted"), None);
    b.delete("a/two").expect("delete again");
    b.delete("never/was").expect("delete absent");
    assert!(b.put_new("d/gone", vec![9; 10]).expect("put d/gone"));
    b.delete("d/gone").expect("delete d/gone");
    assert!(b.list("d/").expect("list d").is_empty());
    let listed: Vec<String> = b
        .list("a/")
        .expect("list")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec!["a/b/one".to_string()]);
    assert!(b
        .put_new("a/two", b"again".to_vec())
        .expect("put after delete"));
    assert_eq!(b.get("a/two").expect("get").as_deref(), Some(&b"again"[..]));
    // Copy (server-side where the backend can): the same bytes under the new key, one request;
    // an absent source says so; the source stays.
    assert!(b.copy("a/b/one", "view/x/copy of one").expect("copy"));
    assert_eq!(
        b.get("view/x/copy of one").expect("get copy").as_deref(),
        Some(&data[..])
    );
    // Into a folder that exists: one request (Drive: also a lookup and a listing, 17.7).
    let before = b.requests();
    assert!(b.copy("a/b/one", "view/x/second").expect("copy"));
    assert!(b.requests() - before <= 3, "{}", b.requests() - before);
    assert_eq!(
        b.head("view/x/second").expect("head copy"),
        Some(data.len() as u64)
    );
    assert_eq!(
        b.head("a/b/one").expect("head source"),
        Some(data.len() as u64)
    );
    assert!(!b.copy("a/missing", "view/x/nothing").expect("copy missing"));
    assert_eq!(b.head("view/x/nothing").expect("head nothing"), None);
    // Every backend tells where a person finds a value.
    let urls = b.urls("view/x/copy of one").expect("urls");
    assert!(!urls.is_empty());
    // Pages a browser opens are escaped (an `s3://` URL keeps the key as the aws CLI takes it).
    assert!(
        urls.iter()
            .filter(|u| u.starts_with("http") || u.starts_with("file:"))
            .all(|u| !u.contains(' ')),
        "{urls:?}"
    );
    assert!(b.requests() > 0);
}

#[test]
fn dir_backend_conforms() {
    let d = tempfile::tempdir().expect("tmp");
    let b = DirBackend::open(d.path()).expect("open");
    conformance(&b, Racing::OneWinner);
    // Keys cannot escape the remote.
    assert!(b.put_new("../escape", b"x".to_vec()).is_err());
    assert!(b.get("a/../../etc/passwd").is_err());
}

#[test]
fn s3_backend_conforms() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "conf");
    conformance(&*open_s3(&ep, &bucket, "conf"), Racing::AtLeastOne);
}

/// A workspace with `n` sealed runs of workflow `wf`, each with a distinct output file
/// `out/<run>.bin` of `size` bytes and a shared input; returns the runs' IDs.
pub(crate) fn make_runs(ws: &Ws, wf: &str, n: usize, size: usize) -> Vec<String> {
    ws.write("in/shared.dat", &pseudo_random(200_000, 1));
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("run-{i:02}");
        ws.write(
            &format!("out/{id}.bin"),
            &pseudo_random(size, 100 + i as u64),
        );
        ws.ok(&[
            "add",
            "-q",
            "--role",
            "input",
            "--wf",
            wf,
            "--run",
            &id,
            "--job",
            "j1",
            "in/shared.dat",
        ]);
        ws.ok(&[
            "add",
            "-q",
            "--role",
            "output",
            "--wf",
            wf,
            "--run",
            &id,
            "--job",
            "j1",
            &format!("out/{id}.bin"),
        ]);
        ws.ok(&["seal", "-q", &id]);
        ids.push(id);
    }
    ids
}

/// Runs a prepared store command; asserts it succeeded, returns stdout.
fn run_ok_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run store");
    assert!(
        out.status.success(),
        "store {:?} failed ({:?}): {}",
        cmd.get_args().collect::<Vec<_>>(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run_ok_bytes`] for text output.
pub(crate) fn run_ok(cmd: &mut Command) -> String {
    String::from_utf8(run_ok_bytes(cmd)).expect("utf8")
}

/// Runs `store ARGS` with the S3 test credentials; asserts success, returns stdout.
fn ok_env(ws: &Ws, args: &[&str]) -> String {
    run_ok(with_s3_env(&mut ws.cmd(args)))
}

/// Runs `store ARGS` in `dir` with the S3 test credentials; asserts success, returns stdout.
fn ok_in(ws: &Ws, dir: &Path, args: &[&str]) -> String {
    run_ok(with_s3_env(&mut ws.cmd(args)).current_dir(dir))
}

/// `remote add origin URL` for the S3 test server.
fn add_s3_origin(ws: &Ws, url: &str, ep: &str) {
    ok_env(
        ws,
        &[
            "remote",
            "add",
            "origin",
            url,
            "--endpoint",
            ep,
            "--allow-http",
        ],
    );
}

/// A command's JSON output.
pub(crate) fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("json output")
}

/// Bytes stored in a store's packs.
fn pack_bytes(store_dir: &Path) -> u64 {
    crate::common::packs(store_dir)
        .iter()
        .map(|p| std::fs::metadata(p).expect("meta").len())
        .sum()
}

pub(crate) fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Push to a remote, clone it elsewhere, check out one run by ID: bytes equal, and only what
/// that run needs was downloaded. Returns the pushing and the cloning workspace (the clone is
/// in `ws/` of the second).
pub(crate) fn push_clone_checkout(url: &str, extra: &[&str]) -> (Ws, Ws) {
    let a = Ws::new();
    let ids = make_runs(&a, "wf", 3, 3_000_000);
    let mut add = vec!["remote", "add", "origin", url];
    add.extend_from_slice(extra);
    ok_env(&a, &add);
    let r = json(&ok_env(&a, &["push", "--json"]));
    assert_eq!(r["runs"].as_array().expect("runs").len(), 3);
    assert!(r["packs_uploaded"].as_u64().expect("packs") >= 1);
    // Nothing new: a second push uploads nothing and publishes nothing.
    let r2 = json(&ok_env(&a, &["push", "--json"]));
    assert_eq!(r2["objects"], 0);
    assert_eq!(r2["segment"], serde_json::Value::Null);

    let b = Ws::bare();
    let mut clone = vec!["clone", url, "ws", "--json"];
    clone.extend_from_slice(extra);
    let c = json(&ok_env(&b, &clone));
    assert_eq!(c["runs"].as_array().expect("runs").len(), 3);
    let ws_b = b.p("ws");
    let before = pack_bytes(&ws_b.join(".store"));
    assert!(before < 200_000, "clone fetched content: {before} bytes");
    let runs = ok_in(&b, &ws_b, &["runs"]);
    for id in &ids {
        assert!(runs.contains(id.as_str()), "{runs}");
    }
    ok_in(&b, &ws_b, &["checkout", &ids[1], "--to", "restored"]);
    let restored = std::fs::read(ws_b.join("restored/out/run-01.bin")).expect("restored");
    assert_eq!(
        restored,
        std::fs::read(a.p("out/run-01.bin")).expect("orig")
    );
    assert_eq!(
        std::fs::read(ws_b.join("restored/in/shared.dat")).expect("restored input"),
        std::fs::read(a.p("in/shared.dat")).expect("orig input")
    );
    // Lazy: one run's content came down, not the other two runs' outputs.
    let after = pack_bytes(&ws_b.join(".store"));
    assert!(
        after > 3_000_000 && after < 5_000_000,
        "fetched {after} bytes"
    );
    ok_in(&b, &ws_b, &["verify"]);
    // The remote is sound and carries a human-readable manifest of each run.
    assert_eq!(
        json(&ok_env(&a, &["verify", "--remote", "origin", "--json"]))["problems"],
        serde_json::json!([])
    );
    (a, b)
}

#[test]
fn dir_remote_push_clone_checkout() {
    let r = tempfile::tempdir().expect("tmp");
    let url = r.path().join("remote");
    push_clone_checkout(url.to_str().expect("utf8"), &[]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(url.join("runs/wf/run-01.json")).expect("run manifest"),
    )
    .expect("json");
    assert_eq!(manifest["run_id"], "run-01");
    assert_eq!(manifest["workflow"], "wf");
    let files = manifest["files"].as_array().expect("files");
    let roles: Vec<&str> = files.iter().filter_map(|f| f["role"].as_str()).collect();
    assert!(
        roles.contains(&"input") && roles.contains(&"output"),
        "{roles:?}"
    );
    assert!(files
        .iter()
        .all(|f| f["version"].as_str().is_some_and(|h| h.len() == 64)));
}

#[test]
fn s3_remote_push_clone_checkout() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "e2e");
    push_clone_checkout(
        &format!("s3://{bucket}/team/store"),
        &["--endpoint", &ep, "--allow-http"],
    );
}

/// The standard AWS variables alone (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP) configure the client.
#[test]
fn s3_from_standard_environment() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "env");
    let a = Ws::new();
    a.write("f.bin", &pseudo_random(100_000, 3));
    a.ok(&["add", "-q", "f.bin"]);
    let url = format!("s3://{bucket}");
    a.ok(&["remote", "add", "origin", &url]);
    let standard = |cmd: &mut Command| {
        with_s3_env(cmd)
            .env("AWS_ENDPOINT_URL", &ep)
            .env("AWS_ALLOW_HTTP", "true");
    };
    let mut push = a.cmd(&["push", "--json"]);
    standard(&mut push);
    run_ok(&mut push);
    let b = Ws::bare();
    let mut clone = b.cmd(&["clone", &url, "ws"]);
    standard(&mut clone);
    run_ok(&mut clone);
    let h = a.ok(&["ls", "--json"]);
    let hash = json(&h)[0]["hash"].as_str().expect("hash").to_string();
    let mut cat = b.cmd(&["cat", &hash]);
    standard(cat.current_dir(b.p("ws")));
    assert_eq!(run_ok_bytes(&mut cat), pseudo_random(100_000, 3));
}

/// Thirty-two processes push different runs to one S3 remote at once: no lock, nothing lost.
#[test]
fn thirty_two_concurrent_pushers() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "many");
    let url = format!("s3://{bucket}/shared");
    let a = Ws::new();
    let ids = make_runs(&a, "fl", 32, 150_000);
    add_s3_origin(&a, &url, &ep);
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            with_s3_env(&mut a.cmd(&["push", "-q", "origin", id, "--jobs", "2"]))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn push")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let b = Ws::bare();
    let c = json(&ok_env(
        &b,
        &[
            "clone",
            &url,
            "ws",
            "--json",
            "--endpoint",
            &ep,
            "--allow-http",
        ],
    ));
    assert_eq!(c["runs"].as_array().expect("runs").len(), 32);
    ok_in(&b, &b.p("ws"), &["pull", "--json"]);
    for id in &ids {
        let to = format!("r/{id}");
        ok_in(&b, &b.p("ws"), &["checkout", id, "--to", &to]);
        let got = std::fs::read(b.p(&format!("ws/{to}/out/{id}.bin"))).expect("restored");
        assert_eq!(
            got,
            std::fs::read(a.p(&format!("out/{id}.bin"))).expect("orig")
        );
    }
}

/// Sets a small pack size so a test push makes many packs.
fn small_packs(ws: &Ws) {
    let p = ws.p(".store/config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).expect("config")).expect("json");
    c["pack_target_size"] = serde_json::json!(1 << 20);
    std::fs::write(&p, serde_json::to_vec(&c).expect("json")).expect("write config");
}

/// A push killed with SIGKILL mid-way leaves only complete packs, no index segment naming
/// them; the next push finds those packs and uploads only the rest.
#[test]
fn killed_push_resumes_without_reuploading() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "resume");
    let url = format!("s3://{bucket}");
    let a = Ws::new();
    small_packs(&a);
    a.write("big.bin", &pseudo_random(40 << 20, 9));
    a.ok(&["add", "-q", "big.bin"]);
    add_s3_origin(&a, &url, &ep);
    let mut child = with_s3_env(&mut a.cmd(&["push", "-q", "--jobs", "1"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let remote = open_s3(&ep, &bucket, "");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = remote.list("packs/").expect("list").len();
        if n >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "push made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let done = remote.list("packs/").expect("list").len() as u64;
    assert!(
        remote.list("index/").expect("list").is_empty(),
        "segment before all packs"
    );
    // verify --remote names the packs the stopped push left; the remote is sound meanwhile.
    let v = json(&ok_env(&a, &["verify", "--remote", "origin", "--json"]));
    assert_eq!(v["packs"], 0, "{v}");
    // (At least those seen after the kill: a PUT fully sent before it may land just after.)
    let left = v["unreferenced"].as_array().expect("unreferenced").len() as u64;
    assert!(
        left >= done && done >= 3,
        "{done} packs after the kill: {v}"
    );
    let r = json(&ok_env(&a, &["push", "--json", "--jobs", "2"]));
    let skipped = r["packs_skipped"].as_u64().expect("skipped");
    let uploaded = r["packs_uploaded"].as_u64().expect("uploaded");
    assert!(skipped >= done.saturating_sub(1) && skipped >= 2, "{r}");
    assert_eq!(
        skipped + uploaded,
        remote.list("packs/").expect("list").len() as u64
    );
    // The remote is complete and sound.
    let b = Ws::bare();
    ok_env(
        &b,
        &["clone", &url, "ws", "--endpoint", &ep, "--allow-http"],
    );
    ok_in(&b, &b.p("ws"), &["pull"]);
    ok_env(&a, &["verify", "--remote", "origin"]);
    // The resumed push named every pack the stopped one left.
    let v = json(&ok_env(&a, &["verify", "--remote", "origin", "--json"]));
    assert_eq!(v["unreferenced"], serde_json::json!([]), "{v}");
    assert_eq!(v["packs"].as_u64(), Some(skipped + uploaded), "{v}");
}

/// A remote object damaged in place is caught by its hash before use, and named.
#[test]
fn corrupt_remote_pack_is_detected() {
    let r = tempfile::tempdir().expect("tmp");
    let url = r.path().join("remote");
    let a = Ws::new();
    a.write("f.bin", &pseudo_random(2_000_000, 5));
    let h = a.add("f.bin");
    a.ok(&["remote", "add", "origin", url.to_str().expect("utf8")]);
    a.ok(&["push", "-q"]);
    let mut files = Vec::new();
    all_files(&url.join("packs"), &mut files);
    // One pack of records and manifests, one of chunks: damage the chunk pack.
    assert_eq!(files.len(), 2);
    files.sort_by_key(|f| std::fs::metadata(f).expect("meta").len());
    let data_pack = &files[1];
    let mut bytes = std::fs::read(data_pack).expect("pack");
    bytes[1_000_000] ^= 0x40;
    std::fs::write(data_pack, &bytes).expect("damage");
    let vr = a.run(&["verify", "--remote", "origin"]);
    assert_eq!(vr.status.code(), Some(store::exit::CORRUPT));
    // A damaged segment is found too, although the workspace that pushed it has a good copy
    // in its cache: verify --remote reads what the remote holds.
    let mut segs = Vec::new();
    all_files(&url.join("index"), &mut segs);
    assert_eq!(segs.len(), 1);
    let mut seg = std::fs::read(&segs[0]).expect("segment");
    let last = seg.len() - 1;
    seg[last] ^= 0x01;
    std::fs::write(&segs[0], &seg).expect("damage");
    let vr = a.run(&["verify", "--remote", "origin", "--json"]);
    assert_eq!(vr.status.code(), Some(store::exit::CORRUPT));
    let v = json(&String::from_utf8(vr.stdout).expect("utf8"));
    let named: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["pack"].as_str())
        .collect();
    assert!(named.iter().any(|k| k.starts_with("index/")), "{v}");
    seg[last] ^= 0x01;
    std::fs::write(&segs[0], &seg).expect("repair");
    let b = Ws::bare();
    b.ok(&["clone", url.to_str().expect("utf8"), "ws"]);
    // A pull passes the damaged object over, names its key and exits "partial".
    let out = b
        .cmd(&["pull"])
        .current_dir(b.p("ws"))
        .output()
        .expect("pull");
    assert_eq!(out.status.code(), Some(store::exit::PARTIAL));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("packs/") && err.contains("hash"), "{err}");
    // Restoring the file needs that object: refused, naming the key.
    let out = b
        .cmd(&["checkout", &h, "--to", "restored"])
        .current_dir(b.p("ws"))
        .output()
        .expect("checkout");
    assert_eq!(out.status.code(), Some(store::exit::CORRUPT));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("packs/") && err.contains("hash"), "{err}");
    // Nothing unverified was kept.
    let v = b
        .cmd(&["verify"])
        .current_dir(b.p("ws"))
        .output()
        .expect("verify");
    assert!(v.status.success());
}

/// Credentials come from the environment only: none lands in the store, the remote or output,
/// and a URL or option that carries one is refused.
#[test]
fn credentials_are_never_written() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "creds");
    let url = format!("s3://{bucket}/p");
    let a = Ws::new();
    let ids = make_runs(&a, "wf", 1, 100_000);
    // A tracking job on a node that has the credentials in its environment.
    a.write("extra.txt", b"extra");
    ok_env(
        &a,
        &[
            "add",
            "-q",
            "--role",
            "output",
            "--wf",
            "wf2",
            "--run",
            "r2",
            "--job",
            "j",
            "extra.txt",
        ],
    );
    ok_env(&a, &["seal", "-q", "r2"]);
    let out = a.run(&[
        "remote",
        "add",
        "x",
        &format!("s3://AKIA:{SECRET}@{bucket}/p"),
    ]);
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
    let out = a.run(&["remote", "add", "x", &url, "--endpoint", &ep]);
    assert!(out.status.success());
    ok_env(&a, &["remote", "remove", "x"]);
    add_s3_origin(&a, &url, &ep);
    let push = ok_env(&a, &["push", "--json"]);
    assert!(!push.contains(SECRET));
    // A failing request (no such bucket) names the remote, not the secret.
    ok_env(
        &a,
        &[
            "remote",
            "add",
            "bad",
            "s3://no-such-bucket-here",
            "--endpoint",
            &ep,
            "--allow-http",
        ],
    );
    let out = with_s3_env(&mut a.cmd(&["push", "bad"]))
        .output()
        .expect("push bad");
    assert_eq!(out.status.code(), Some(store::exit::REMOTE));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-bucket-here") && !err.contains(SECRET),
        "{err}"
    );
    let b = Ws::bare();
    ok_env(
        &b,
        &["clone", &url, "ws", "--endpoint", &ep, "--allow-http"],
    );
    let out = with_s3_env(&mut b.cmd(&["checkout", &ids[0], "--to", "o"]))
        .current_dir(b.p("ws"))
        .output()
        .expect("checkout");
    assert!(out.status.success());
    // Every byte written: both stores (objects decompressed too) and every remote object.
    for ws in [a.path().to_path_buf(), b.p("ws")] {
        let mut files = Vec::new();
        all_files(&ws.join(".store"), &mut files);
        for f in files {
            let data = std::fs::read(&f).expect("read");
            assert!(!contains(&data, SECRET.as_bytes()), "{}", f.display());
        }
        for p in crate::common::packs(&ws.join(".store")) {
            let r = store::pack::PackReader::open(&p).expect("pack");
            for e in r.entries().expect("toc") {
                let data = r.read(&e).expect("object");
                assert!(
                    !contains(&data, SECRET.as_bytes()),
                    "secret in {:?}",
                    e.kind
                );
            }
        }
    }
    let remote = open_s3(&ep, &bucket, "p");
    let keys = remote.list("").expect("list");
    assert!(keys.len() >= 4, "{keys:?}");
    for (k, _) in keys {
        let data = remote.get(&k).expect("get").expect("present");
        assert!(!contains(&data, SECRET.as_bytes()), "{k}");
        if k.ends_with(".seg") {
            let plain = zstd::stream::decode_all(&data[..]).expect("segment");
            assert!(!contains(&plain, SECRET.as_bytes()), "{k}");
        }
    }
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Clear errors for bad remotes.
#[test]
fn bad_remotes_are_named() {
    let a = Ws::new();
    let out = a.run(&["remote", "add", "o", "ftp://host/x"]);
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp"));
    let out = a.run(&["push"]);
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no remote configured"));
    let empty = tempfile::tempdir().expect("tmp");
    let b = Ws::bare();
    let out = b.run(&["clone", empty.path().to_str().expect("utf8"), "ws"]);
    assert_eq!(out.status.code(), Some(store::exit::REMOTE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a store remote"));
    // A run that is not on the remote is named.
    let r = tempfile::tempdir().expect("tmp");
    a.write("f", b"x");
    a.ok(&["add", "-q", "f"]);
    a.ok(&["remote", "add", "o", r.path().to_str().expect("utf8")]);
    a.ok(&["push", "-q"]);
    let out = a.run(&["pull", "o", "no-such-run"]);
    assert_eq!(out.status.code(), Some(store::exit::NOT_FOUND));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-run"));
}

/// The seal job of a tracked workflow publishes the run to the default remote; a fresh
/// workspace cloned from it restores the run by ID byte for byte and re-runs it identically.
#[test]
fn sealed_workflow_run_is_pushed_and_restored_elsewhere() {
    let r = tempfile::tempdir().expect("tmp");
    let url = r.path().join("remote");
    let url = url.to_str().expect("utf8");
    let a = Ws::new();
    a.ok(&["remote", "add", "origin", url]);
    let wf = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated/workflow.yml");
    let id = a
        .ok(&["run", wf.to_str().expect("utf8"), "--workdir", "work", "-q"])
        .trim()
        .to_string();
    let b = Ws::bare();
    b.ok(&["clone", url, "ws"]);
    let ws = b.p("ws");
    let run = |args: &[&str]| ok_in(&b, &ws, args);
    assert!(run(&["runs"]).contains(&id));
    run(&["checkout", &id, "--to", "restored", "--link", "copy"]);
    for f in ["report.json", "model_2.json", "data_2.csv"] {
        assert_eq!(
            std::fs::read(ws.join("restored/work").join(f)).expect(f),
            std::fs::read(a.p("work").join(f)).expect(f),
            "{f}"
        );
    }
    let v = json(&run(&["rerun", &id, "--workdir", "rr", "--json"]));
    assert_eq!(v["identical"], true, "{v}");
    // A run pushed after the clone is found on the remote by its ID at checkout.
    let id2 = a
        .ok(&[
            "run",
            wf.to_str().expect("utf8"),
            "--workdir",
            "work2",
            "-q",
        ])
        .trim()
        .to_string();
    assert!(!run(&["runs"]).contains(&id2));
    run(&["checkout", &id2, "--to", "restored2"]);
    assert_eq!(
        std::fs::read(ws.join("restored2/work2/report.json")).expect("report"),
        std::fs::read(a.p("work2/report.json")).expect("orig")
    );
}

/// Jobs on nodes that do not share a store push their records; the seal job, on yet another
/// node, pulls them and seals one run holding everything.
#[test]
fn jobs_on_separate_nodes_meet_in_one_sealed_run() {
    let r = tempfile::tempdir().expect("tmp");
    let url = r.path().join("remote");
    let url = url.to_str().expect("utf8");
    let nodes: Vec<Ws> = (0..3).map(|_| Ws::new()).collect();
    for n in &nodes {
        n.ok(&["remote", "add", "origin", url]);
    }
    nodes[0].write("in.dat", &pseudo_random(300_000, 1));
    nodes[1].write("out.dat", &pseudo_random(400_000, 2));
    let track = |n: &Ws, job: &str, spec: &str| {
        n.ok(&[
            "track", "--wf", "multi", "--run", "R1", "--job", job, spec, "--push",
        ]);
    };
    track(&nodes[0], "ID1", "input:in.dat");
    track(&nodes[1], "ID2", "output:out.dat");
    // The seal's push merges the jobs' segments and its own (the jobs' pushes never merge), so
    // the clone below reads the run from one merged segment: open parts and the seal together.
    ok_merging(&nodes[2], &["seal", "R1"], "2");
    let merged = merged_keys(Path::new(url));
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert!(merged[0].starts_with("0000000003-"), "{merged:?}");
    let show = json(&nodes[2].ok(&["show", "R1", "--json"]));
    let paths: Vec<&str> = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"in.dat") && paths.contains(&"out.dat"),
        "{paths:?}"
    );
    let c = Ws::bare();
    c.ok(&["clone", url, "ws"]);
    ok_in(&c, &c.p("ws"), &["checkout", "R1", "--to", "o"]);
    assert_eq!(
        std::fs::read(c.p("ws/o/in.dat")).expect("in"),
        pseudo_random(300_000, 1)
    );
    assert_eq!(
        std::fs::read(c.p("ws/o/out.dat")).expect("out"),
        pseudo_random(400_000, 2)
    );
}

/// Runs store in `ws` with `STORE_MERGE_SEGMENTS=merge_at`, checks it succeeded, returns stdout.
fn ok_merging(ws: &Ws, args: &[&str], merge_at: &str) -> String {
    run_ok(ws.cmd(args).env("STORE_MERGE_SEGMENTS", merge_at))
}

/// The names under a directory remote's `merged/`, sorted.
fn merged_keys(remote: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(remote.join("merged"))
        .expect("merged/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    keys.sort();
    keys
}

/// A push that finds at least `STORE_MERGE_SEGMENTS` segments outside a merged segment (its
/// own included) writes a merged segment covering everything it read: a clone then reads one
/// object where it would read many, and knows exactly what a clone of the same pushes without
/// merging knows.
#[test]
fn merged_segments_stand_for_many_and_change_nothing() {
    let r = tempfile::tempdir().expect("tmp");
    let merging = r.path().join("merging");
    let plain = r.path().join("plain");
    let (merging, plain) = (
        merging.to_str().expect("utf8"),
        plain.to_str().expect("utf8"),
    );
    let a = Ws::new();
    a.ok(&["remote", "add", "m", merging]);
    a.ok(&["remote", "add", "p", plain]);
    let push =
        |remote: &str, merge_at: &str| json(&ok_merging(&a, &["push", remote, "--json"], merge_at));
    let mut merged_at = Vec::new();
    for i in 0..7u64 {
        a.write(
            &format!("d/f{i}.bin"),
            &pseudo_random(50_000 + i as usize * 1000, i),
        );
        a.write("d/version.txt", format!("version {i}").as_bytes());
        a.ok(&["add", "-q", "d"]);
        let m = push("m", "3");
        assert!(m["segment"].is_string(), "{m}");
        if m["merged"].is_string() {
            merged_at.push(i);
        }
        let p = push("p", "0");
        assert!(p["merged"].is_null(), "{p}");
    }
    // Pushes 3 and 6 each found 3 segments outside a merged one (their own included).
    assert_eq!(merged_at, vec![2, 5]);
    let keys = merged_keys(Path::new(merging));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].starts_with("0000000003-") && keys[1].starts_with("0000000006-"));

    // Two clones, one of each remote: same runs, same versions, same bytes; the merged one read
    // one merged segment and one plain segment instead of seven plain ones.
    let c = Ws::bare();
    let clone = |url: &str, dir: &str| json(&c.ok(&["clone", url, dir, "--json"]));
    let cm = clone(merging, "wm");
    let cp = clone(plain, "wp");
    let (rm, rp) = (
        cm["requests"].as_u64().expect("requests"),
        cp["requests"].as_u64().expect("requests"),
    );
    // Plain: the marker, two listings, 7 segments, and each push's pack of records and
    // manifests read once, whole (not once per level of the graph). Merged: 1 merged and 1
    // plain segment instead of 7.
    assert!(rp <= 3 + 7 + 7, "plain clone: {rp} requests");
    assert!(rm + 5 <= rp, "merged clone {rm} requests, plain clone {rp}");
    assert_eq!(cm["roots"], cp["roots"]);
    let log = |dir: &str| ok_in(&c, &c.p(dir), &["log", "--json"]);
    assert_eq!(log("wm"), log("wp"));
    let v = json(&ok_in(
        &c,
        &c.p("wm"),
        &["verify", "--remote", "origin", "--json"],
    ));
    assert_eq!(v["segments"], 7, "{v}");
    assert!(
        v["problems"].as_array().expect("problems").is_empty(),
        "{v}"
    );
    // Every version of d is restorable from the merged remote, byte for byte.
    let versions = json(&log("wm"));
    let hashes: Vec<String> = versions
        .as_array()
        .expect("versions")
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/d")))
        .map(|e| e["hash"].as_str().expect("hash").to_string())
        .collect();
    assert_eq!(hashes.len(), 7);
    let newest = &hashes[0];
    ok_in(&c, &c.p("wm"), &["checkout", newest, "--to", "out"]);
    for i in 0..7u64 {
        assert_eq!(
            std::fs::read(c.p(&format!("wm/out/f{i}.bin"))).expect("restored"),
            pseudo_random(50_000 + i as usize * 1000, i)
        );
    }
    assert_eq!(
        std::fs::read(c.p("wm/out/version.txt")).expect("restored"),
        b"version 6"
    );

    // A damaged merged segment is passed over: a new clone reads the older merged segment and
    // the plain segments, knows the same, and verify --remote names the damaged key.
    let best = Path::new(merging).join("merged").join(&keys[1]);
    let mut bytes = std::fs::read(&best).expect("merged");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&best, &bytes).expect("damage");
    clone(merging, "wd");
    assert_eq!(log("wd"), log("wp"));
    let out = c
        .cmd(&["verify", "--remote", "origin", "--json"])
        .current_dir(c.p("wd"))
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(store::exit::CORRUPT));
    let v = json(&String::from_utf8(out.stdout).expect("utf8"));
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(problems[0]["pack"], format!("merged/{}", keys[1]));
}

/// Many pushers crossing the merge threshold at once: those that read the same state race for
/// one claim, so one of them merges (not every one, each re-uploading the whole index), and a
/// clone still knows every push.
#[test]
fn concurrent_pushers_crossing_the_threshold_merge_once() {
    let r = tempfile::tempdir().expect("tmp");
    let remote = r.path().join("remote");
    let url = remote.to_str().expect("utf8");
    let pushers: Vec<Ws> = (0..16).map(|_| Ws::new()).collect();
    for (i, ws) in pushers.iter().enumerate() {
        ws.ok(&["remote", "add", "origin", url]);
        ws.write(
            &format!("d{i}/f.bin"),
            &pseudo_random(20_000, 100 + i as u64),
        );
        ws.ok(&["add", "-q", &format!("d{i}")]);
    }
    // Three segments first: every concurrent push then finds the threshold crossed.
    for ws in &pushers[..3] {
        ok_merging(ws, &["push", "-q"], "0");
    }
    let children: Vec<_> = pushers[3..]
        .iter()
        .map(|ws| {
            ws.cmd(&["push", "--json"])
                .env("STORE_MERGE_SEGMENTS", "4")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("push")
        })
        .collect();
    let mut merged = 0;
    for c in children {
        let o = c.wait_with_output().expect("push");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        if json(&String::from_utf8_lossy(&o.stdout))["merged"].is_string() {
            merged += 1;
        }
    }
    let keys = merged_keys(&remote);
    assert_eq!(keys.len(), merged, "{keys:?}");
    // Each merge a claim: no two pushers merged what the same state covered.
    let claims = std::fs::read_dir(remote.join("claims"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(claims, merged);
    eprintln!("13 concurrent pushers over threshold 4: {merged} merged segments");
    assert!(
        (1..=4).contains(&merged),
        "13 pushers past the threshold wrote {merged} merged segments"
    );
    // Claims are only good for their minute: remote gc removes old ones, never a fresh one.
    let gc = json(&pushers[0].ok(&["remote", "gc", "--yes", "--json"]));
    assert_eq!(gc["claims"], serde_json::json!([]), "{gc}");
    for e in std::fs::read_dir(remote.join("claims")).expect("claims") {
        std::fs::File::options()
            .write(true)
            .open(e.expect("claim").path())
            .expect("open")
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
            .expect("mtime");
    }
    let gc = json(&pushers[0].ok(&["remote", "gc", "--yes", "--json"]));
    assert_eq!(
        gc["claims"].as_array().expect("claims").len(),
        merged,
        "{gc}"
    );
    assert_eq!(
        std::fs::read_dir(remote.join("claims"))
            .expect("dir")
            .count(),
        0
    );
    // Nothing is lost: a clone restores every pusher's data.
    let c = Ws::bare();
    c.ok(&["clone", url, "w"]);
    for i in 0..16 {
        let out = ok_in(&c, &c.p("w"), &["log", "--json"]);
        assert!(
            out.contains(&format!("/d{i}\"")) || out.contains(&format!("d{i}\"")),
            "d{i}: {out}"
        );
    }
}
