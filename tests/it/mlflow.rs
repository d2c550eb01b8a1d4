//! MLflow linkage against a real MLflow tracking server (`.ci/run` starts one on loopback and
//! sets `STORE_TEST_MLFLOW_URI`): the federated example runs with `store run --mlflow`, and the
//! server is queried to check the experiment, the parent run, one child run per tracked job,
//! their tags and parameters, the metric the job's own Python code logged with the `mlflow`
//! client, and the links both ways; a run with the server unreachable completes, stays pending,
//! and a later `store mlflow sync` fills MLflow in without duplicates; through a proxy that
//! refuses, delays and loses answers (429, 503, a 502 after the server created a run), every
//! run is still created exactly once and nothing goes pending.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{packs, Ws};

/// A credential that must never be written anywhere.
const TOKEN: &str = "mlflow-token-3b9f1c77e2d04a";

/// The test server's URI, or None (skip) outside CI.
pub fn mlflow_uri() -> Option<String> {
    match std::env::var("STORE_TEST_MLFLOW_URI") {
        Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_string()),
        _ => {
            crate::skips::skip(
                "MLflow",
                "no MLflow server (STORE_TEST_MLFLOW_URI); `bash tests/run.sh` starts one",
                false,
            );
            None
        }
    }
}

fn federated() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated/workflow.yml")
}

/// One REST call to the server (through Python's standard library, independent of the store's
/// own client).
pub fn api(uri: &str, endpoint: &str, body: Value) -> Value {
    let script = r#"
import json, sys, urllib.request, urllib.error
uri, endpoint, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(uri + "/api/2.0/mlflow/" + endpoint, data=body.encode(),
                             headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=30).read().decode())
except urllib.error.HTTPError as e:
    print(json.dumps({"http_error": e.code, "body": e.read().decode()}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, uri, endpoint, &body.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json answer")
}

/// One `GET` of a path on the server (query included), as bytes.
fn http_get(uri: &str, path: &str) -> Vec<u8> {
    let script = r#"
import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1] + sys.argv[2], timeout=30).read())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, uri, path])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "GET {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The artifacts of an MLflow run, listed and read through the server's REST API: name ->
/// parsed JSON.
fn artifacts(uri: &str, run: &Value) -> BTreeMap<String, Value> {
    let id = run["info"]["run_id"].as_str().expect("run id");
    let list: Value = serde_json::from_slice(&http_get(
        uri,
        &format!("/api/2.0/mlflow/artifacts/list?run_id={id}"),
    ))
    .expect("list");
    let root = run["info"]["artifact_uri"].as_str().expect("artifact uri");
    let root = root
        .strip_prefix("mlflow-artifacts:")
        .expect("served by the server");
    list["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let name = f["path"].as_str().expect("path").to_string();
            let body = http_get(
                uri,
                &format!("/api/2.0/mlflow-artifacts/artifacts{root}/{name}"),
            );
            (name, serde_json::from_slice(&body).expect("json artifact"))
        })
        .collect()
}

fn experiment_id(uri: &str, name: &str) -> String {
    let v = api(uri, "experiments/search", json!({"max_results": 1000}));
    v["experiments"]
        .as_array()
        .expect("experiments")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["experiment_id"].as_str())
        .expect("experiment exists")
        .to_string()
}

/// Every MLflow run tagged with store run `run_id`.
fn runs_of(uri: &str, experiment: &str, run_id: &str) -> Vec<Value> {
    let v = api(
        uri,
        "runs/search",
        json!({"experiment_ids": [experiment], "max_results": 1000,
               "filter": format!("tags.`store.run_id` = '{run_id}'")}),
    );
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn tags(run: &Value) -> BTreeMap<String, String> {
    pairs(&run["data"]["tags"])
}

fn params(run: &Value) -> BTreeMap<String, String> {
    pairs(&run["data"]["params"])
}

fn pairs(v: &Value) -> BTreeMap<String, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().expect("key").to_string(),
                t["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The main jobs of the committed federated workflow (every one is tracked: store_track full).
fn main_jobs() -> BTreeSet<String> {
    let text = std::fs::read_to_string(federated()).expect("workflow");
    let doc: Value = serde_norway::from_str(&text).expect("yaml");
    doc["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect()
}

/// Parent and children of a store run; checks the structure and returns them.
fn check_structure(uri: &str, run_id: &str) -> (Value, BTreeMap<String, Value>) {
    let exp = experiment_id(uri, "federated");
    let runs = runs_of(uri, &exp, run_id);
    let parents: Vec<&Value> = runs
        .iter()
        .filter(|r| tags(r).get("store.kind").map(String::as_str) == Some("workflow"))
        .collect();
    assert_eq!(parents.len(), 1, "one parent run: {runs:#?}");
    let parent = parents[0].clone();
    let pt = tags(&parent);
    let name = parent["info"]["run_name"].as_str().expect("name");
    assert!(
        name.len() == 14 + "_federated".len()
            && name[..14].chars().all(|c| c.is_ascii_digit())
            && name.ends_with("_federated"),
        "parent name {name}"
    );
    assert_eq!(pt["store.workflow"], "federated");
    assert_eq!(pt["store.run_id"], run_id);
    let parent_id = parent["info"]["run_id"].as_str().expect("id").to_string();
    let mut children = BTreeMap::new();
    for r in runs.iter().filter(|r| tags(r)["store.kind"] == "job") {
        let t = tags(r);
        assert_eq!(t["mlflow.parentRunId"], parent_id);
        assert_eq!(t["store.workflow"], "federated");
        assert_eq!(t["store.run_id"], run_id);
        assert_eq!(
            r["info"]["run_name"].as_str(),
            Some(t["store.job_id"].as_str())
        );
        assert_eq!(r["info"]["experiment_id"].as_str(), Some(exp.as_str()));
        let old = children.insert(t["store.job_id"].clone(), r.clone());
        assert!(old.is_none(), "two runs for job {}", t["store.job_id"]);
    }
    assert_eq!(
        children.keys().cloned().collect::<BTreeSet<_>>(),
        main_jobs(),
        "one child run per tracked job"
    );
    assert_eq!(
        runs.len(),
        1 + children.len(),
        "nothing else tagged with the run"
    );
    (parent, children)
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The token appears in no file under the workspace and in no object of any pack.
fn assert_no_token(ws: &Ws) {
    let mut files = Vec::new();
    all_files(ws.path(), &mut files);
    for f in files {
        let data = std::fs::read(&f).expect("read");
        assert!(
            !data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "token in {}",
            f.display()
        );
    }
    for p in packs(&ws.p(".store")) {
        let r = store::pack::PackReader::open(&p).expect("pack");
        for e in r.entries().expect("toc") {
            let data = r.read(&e).expect("object");
            assert!(!data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
        }
    }
}

/// Runs workflow `wf` with `store run --mlflow` in `ws` (work directory `work`); returns the run
/// ID it printed and its stderr.
fn run_mlflow(ws: &Ws, wf: &Path, envs: &[(&str, &str)]) -> (String, String) {
    let wf = wf.to_str().expect("utf8");
    let (out, err) = run_store(ws, &["run", wf, "--mlflow", "--workdir", "work"], envs);
    (out.trim().to_string(), err)
}

/// A loopback port that refuses connections while this lives: a socket bound to it that never
/// listens, so no other test's listener can take the port meanwhile.
struct RefusingPort {
    fd: libc::c_int,
    port: u16,
}

impl RefusingPort {
    fn new() -> RefusingPort {
        // SAFETY: plain socket calls on a descriptor this struct owns; the address structs are
        // zero-initialized C structs of the sizes passed.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket");
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let p = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
            assert_eq!(libc::bind(fd, p, len), 0, "bind");
            assert_eq!(libc::getsockname(fd, p, &mut len), 0, "getsockname");
            RefusingPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }
}

impl Drop for RefusingPort {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this struct's own, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Runs store with the MLflow token in its environment (which must never be written anywhere)
/// and a generous MLflow time budget (a loaded CI machine shares one single-worker server among
/// the tests; `envs` may set `STORE_MLFLOW_TIMEOUT` lower), and checks it succeeded.
fn run_store(ws: &Ws, args: &[&str], envs: &[(&str, &str)]) -> (String, String) {
    let mut c = ws.cmd(args);
    c.env("MLFLOW_TRACKING_TOKEN", TOKEN)
        .env("STORE_MLFLOW_TIMEOUT", "60")
        .env_remove("MLFLOW_TRACKING_URI");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("run store");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "store {args:?}: {e}");
    assert!(!o.contains(TOKEN) && !e.contains(TOKEN), "token printed");
    (o, e)
}

#[test]
fn a_linked_run_has_an_experiment_a_parent_and_a_child_per_job_linked_both_ways() {
    let Some(uri) = mlflow_uri() else { return };
    let ws = Ws::new();
    ws.ok(&["config", "set", "mlflow.uri", &uri]);
    // A default remote, which the seal pushes the run to (every MLflow run names its
    // manifest) and publishes it on (files.json names the published files).
    let remote = tempfile::tempdir().expect("remote dir");
    let remote_dir = remote.path().to_str().expect("utf8");
    ws.ok(&["remote", "add", "origin", remote_dir, "--publish"]);
    let (run_id, _) = run_mlflow(&ws, &federated(), &[]);
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "sealed");
    assert!(ws.ok(&["mlflow", "pending"]).trim().is_empty());

    let (parent, children) = check_structure(&uri, &run_id);
    // Every run finished by the seal, and tagged with the manifest the seal pushed.
    let manifest = format!("{remote_dir}/runs/federated/{run_id}.json");
    let m: Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest pushed")).expect("json");
    assert_eq!(m["run_id"], run_id.as_str());
    assert_eq!(parent["info"]["status"], "FINISHED");
    assert_eq!(tags(&parent)["store.manifest_url"], manifest);
    for (job, r) in &children {
        assert_eq!(r["info"]["status"], "FINISHED", "{job}");
        assert_eq!(tags(r)["store.manifest_url"], manifest, "{job}");
    }

    // Hashes and sizes as parameters, the environment summary as tags: as the store has them.
    let snap: Value = serde_json::from_str(&ws.ok(&["show", "--json", &run_id])).expect("json");
    let entries = snap["entries"].as_array().expect("entries");

    // Artifacts: the parent has the whole run's metadata.json and files.json, each child its
    // job's part, read back through the server's REST API.
    let parent_artifacts = artifacts(&uri, &parent);
    assert_eq!(
        parent_artifacts.keys().collect::<Vec<_>>(),
        ["files.json", "metadata.json"]
    );
    let files = parent_artifacts["files.json"].as_array().expect("files");
    assert_eq!(files.len(), entries.len());
    let published = format!("file://{remote_dir}/published/federated/{run_id}/");
    let with_url = files
        .iter()
        .filter(|f| f["remote_urls"].to_string().contains(&published))
        .count();
    let plain_files = entries.iter().filter(|e| e["kind"] == "file").count();
    assert_eq!(
        with_url, plain_files,
        "every file's published URL in files.json"
    );
    for (f, e) in files.iter().zip(entries) {
        for k in [
            "role",
            "lfn",
            "path",
            "job_id",
            "hash",
            "size",
            "remote_urls",
            "mlflow_url",
        ] {
            assert_eq!(f[k], e[k], "{k} of {e}");
        }
    }
    let metadata = &parent_artifacts["metadata.json"];
    assert_eq!(metadata["run_id"], run_id.as_str());
    assert_eq!(metadata["status"], "sealed");
    let catalog: Value = serde_json::from_str(&ws.ok(&["metadata", "export"])).expect("json");
    assert_eq!(
        metadata["files"],
        catalog["federated"][run_id.as_str()]["files"],
        "metadata.json is the catalog's record of the run"
    );
    let child = artifacts(&uri, &children["train_0_0"]);
    let mine = child["files.json"].as_array().expect("files");
    let expected = entries
        .iter()
        .filter(|e| e["job_id"] == "train_0_0")
        .count();
    assert!(expected > 0);
    assert_eq!(mine.len(), expected);
    assert!(mine.iter().all(|f| f["job_id"] == "train_0_0"));
    assert_eq!(
        child["metadata.json"]["files"]
            .as_object()
            .expect("files")
            .len(),
        expected
    );
    let train = &children["train_0_0"];
    let p = params(train);
    let config = entries
        .iter()
        .find(|e| e["lfn"] == "config.json" && e["job_id"] == "train_0_0")
        .expect("config.json of train_0_0");
    assert_eq!(
        p["input/config.json/hash"],
        config["hash"].as_str().expect("hash")
    );
    assert_eq!(p["input/config.json/size"], config["size"].to_string());
    assert!(
        p.contains_key("intermediate/client_0_round_0.json/hash"),
        "{p:?}"
    );
    let t = tags(train);
    let env = entries
        .iter()
        .find(|e| e["role"] == "environment" && e["job_id"] == "train_0_0")
        .expect("environment of train_0_0");
    assert_eq!(t["store.env.record"], env["hash"].as_str().expect("hash"));
    assert!(t.contains_key("store.env.os") || t.contains_key("store.env.kernel"));
    // The run-level records (workflow file, code) describe the parent.
    let pp = params(&parent);
    assert!(
        pp.keys().any(|k| k.starts_with("workflow/")) && pp.keys().any(|k| k.starts_with("code/")),
        "{pp:?}"
    );

    // The job's own Python code logged a metric with the real mlflow client: it is in its run.
    let eval = &children["evaluate_0_0"];
    let metrics = eval["data"]["metrics"].as_array().expect("metrics");
    assert!(metrics.iter().any(|m| m["key"] == "mse"), "{metrics:?}");
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.p("work/eval_0_round_0.json")).expect("eval"),
    )
    .expect("json");
    assert!(
        metrics.iter().any(|m| m["key"] == "mse"
            && m["value"].as_f64() == result["mse"].as_f64()
            && m["step"].as_i64() == result["round"].as_i64()),
        "{metrics:?} vs {result}"
    );

    // Each entry links to its job's MLflow run (run-level entries to the parent).
    let exp = parent["info"]["experiment_id"].as_str().expect("exp");
    for e in entries {
        let job = e["job_id"].as_str().expect("job");
        let want = match children.get(job) {
            Some(r) => r["info"]["run_id"].as_str().expect("id"),
            None => parent["info"]["run_id"].as_str().expect("id"),
        };
        assert_eq!(
            e["mlflow_url"].as_str(),
            Some(format!("{uri}/#/experiments/{exp}/runs/{want}").as_str()),
            "{e}"
        );
    }
    assert!(ws.ok(&["show", &run_id]).contains("mlflow http"));

    // A sync of a complete run changes nothing and creates nothing.
    let (out, _) = run_store(&ws, &["mlflow", "sync", &run_id, "--json"], &[]);
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r[0]["created"], 0);
    check_structure(&uri, &run_id);

    // Augmenting for a cluster hands each main job its run and each tracker its URL; nothing
    // secret is written.
    let (out, _) = run_store(
        &ws,
        &[
            "augment",
            federated().to_str().expect("utf8"),
            "-o",
            "tracked.yml",
            "--mlflow",
            "--json",
        ],
        &[],
    );
    let rep: Value = serde_json::from_str(&out).expect("json");
    let tracked = rep["mlflow"]["tracked_jobs"].as_u64().expect("tracked");
    assert_eq!(tracked as usize, main_jobs().len());
    assert!(rep["mlflow"]["pending"].is_null(), "{rep}");
    let new_run = rep["run_id"].as_str().expect("run id").to_string();
    let (_, kids) = check_structure(&uri, &new_run);
    let text = std::fs::read_to_string(ws.p("tracked.yml")).expect("yaml");
    let doc: Value = serde_norway::from_str(&text).expect("yaml");
    for j in doc["jobs"].as_array().expect("jobs") {
        let id = j["id"].as_str().expect("id");
        if let Some(kid) = kids.get(id) {
            let env = &j["profiles"]["env"];
            assert_eq!(env["MLFLOW_RUN_ID"], kid["info"]["run_id"]);
            assert_eq!(env["MLFLOW_EXPERIMENT_NAME"], "federated");
            assert_eq!(env["MLFLOW_TRACKING_URI"], uri.as_str());
        } else if id.starts_with("store_in_") || id.starts_with("store_out_") {
            let args: Vec<&str> = j["arguments"]
                .as_array()
                .expect("args")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let at = args
                .iter()
                .position(|a| *a == "--mlflow-run")
                .expect("--mlflow-run");
            assert!(args[at + 1].starts_with(&format!("{uri}/#/experiments/")));
            assert!(args.windows(2).any(|w| w == ["--run", new_run.as_str()]));
        }
    }
    assert_no_token(&ws);
}

#[test]
fn with_the_server_away_the_run_completes_pending_and_a_later_sync_fills_mlflow_in_once() {
    let Some(uri) = mlflow_uri() else { return };
    let ws = Ws::new();
    // A port nobody listens on.
    let refusing = RefusingPort::new();
    let closed = refusing.port;
    ws.ok(&[
        "config",
        "set",
        "mlflow.uri",
        &format!("http://127.0.0.1:{closed}"),
    ]);
    let (run_id, err) = run_mlflow(&ws, &federated(), &[("STORE_MLFLOW_TIMEOUT", "1.5")]);
    assert!(err.contains("pending"), "the user is told: {err}");
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "sealed", "sealed despite MLflow");
    assert_eq!(ws.ok(&["mlflow", "pending"]).trim(), run_id);
    assert!(ws.p(&format!(".store/mlflow/pending/{run_id}")).is_file());
    // User code ran without MLFLOW_* (no failed import, no dead server to talk to).
    let log = std::fs::read_to_string(ws.p("work/logs/evaluate_0_0.err")).expect("log");
    assert!(log.trim().is_empty(), "{log}");

    // The server is back: sync fills MLflow in and clears the marker; again: no duplicates.
    ws.ok(&["config", "set", "mlflow.uri", &uri]);
    let (out, _) = run_store(&ws, &["mlflow", "sync", "--json"], &[]);
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r[0]["run_id"], run_id.as_str());
    assert_eq!(r[0]["created"].as_u64(), Some(main_jobs().len() as u64 + 1));
    assert!(ws.ok(&["mlflow", "pending"]).trim().is_empty());
    let (parent, children) = check_structure(&uri, &run_id);
    assert_eq!(parent["info"]["status"], "FINISHED");
    assert!(params(&children["report"]).contains_key("output/report.json/hash"));
    // The sync uploaded the artifacts the seal could not.
    let a = artifacts(&uri, &parent);
    assert_eq!(a["metadata.json"]["run_id"], run_id.as_str());
    let report = artifacts(&uri, &children["report"]);
    assert!(report["files.json"]
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f["lfn"] == "report.json" && f["role"] == "output"));
    for _ in 0..2 {
        let (out, _) = run_store(&ws, &["mlflow", "sync", &run_id, "--json"], &[]);
        let r: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(r[0]["created"], 0);
    }
    let (again, _) = check_structure(&uri, &run_id);
    assert_eq!(again["info"]["run_id"], parent["info"]["run_id"]);
    // The links recorded by the sync show up in the run.
    let snap: Value = serde_json::from_str(&ws.ok(&["show", "--json", &run_id])).expect("json");
    for e in snap["entries"].as_array().expect("entries") {
        assert!(
            e["mlflow_url"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{uri}/#/experiments/"))),
            "{e}"
        );
    }
    assert_no_token(&ws);
}

#[test]
fn a_tracking_uri_with_credentials_is_refused() {
    let ws = Ws::new();
    let out = ws.run(&["config", "set", "mlflow.uri", "http://me:secret@host:5000"]);
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));
    assert!(!std::fs::read_to_string(ws.p(".store/config.json"))
        .expect("config")
        .contains("secret"));
    ws.ok(&["config", "set", "mlflow.uri", "http://127.0.0.1:5000/"]);
    let c: Value = serde_json::from_str(&ws.ok(&["config", "list"])).expect("json");
    assert_eq!(c["mlflow_uri"], "http://127.0.0.1:5000");
    // --mlflow without any server configured is a usage error, not a silent no-op.
    ws.ok(&["config", "set", "mlflow.uri", ""]);
    let out = ws
        .cmd(&["run", federated().to_str().expect("utf8"), "--mlflow"])
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
}

#[test]
fn custom_names_from_job_metadata_put_a_child_in_its_own_experiment_under_the_same_parent() {
    let Some(uri) = mlflow_uri() else { return };
    let ws = Ws::new();
    ws.ok(&["config", "set", "mlflow.uri", &uri]);
    // Unique names: the server is shared with other tests and other CI runs of the suite.
    let tag = format!(
        "{}{}",
        std::process::id(),
        store::util::now_ns() % 1_000_000
    );
    let (wf, exp) = (format!("mlcustom{tag}"), format!("custom-exp-{tag}"));
    ws.write("in.txt", b"hello\n");
    let yaml = format!(
        "pegasus: '5.0.4'
name: {wf}
metadata: {{store_track: basic}}
replicaCatalog:
  replicas:
  - lfn: in.txt
    pfns: [{{site: local, pfn: in.txt}}]
transformationCatalog:
  transformations:
  - name: copy
    sites: [{{name: local, pfn: /bin/cp, type: installed}}]
jobs:
- type: job
  name: copy
  id: first
  arguments: [in.txt, mid.txt]
  metadata: {{mlflow_experiment: {exp}, mlflow_run: first-copy}}
  uses:
  - {{lfn: in.txt, type: input}}
  - {{lfn: mid.txt, type: output, stageOut: false, registerReplica: false}}
- type: job
  name: copy
  id: second
  arguments: [mid.txt, out.txt]
  uses:
  - {{lfn: mid.txt, type: input}}
  - {{lfn: out.txt, type: output, stageOut: true, registerReplica: false}}
jobDependencies:
- {{id: first, children: [second]}}
"
    );
    ws.write("wf.yml", yaml.as_bytes());
    let (out, _) = run_store(
        &ws,
        &["run", "wf.yml", "--mlflow", "--workdir", "work"],
        &[],
    );
    let run_id = out.trim().to_string();
    let wf_exp = experiment_id(&uri, &wf);
    let custom_exp = experiment_id(&uri, &exp);
    let main = runs_of(&uri, &wf_exp, &run_id);
    assert_eq!(main.len(), 2, "parent and the auto-named child: {main:#?}");
    let parent = main
        .iter()
        .find(|r| tags(r)["store.kind"] == "workflow")
        .expect("parent");
    let second = main
        .iter()
        .find(|r| tags(r)["store.kind"] == "job")
        .expect("child");
    assert_eq!(second["info"]["run_name"], "second");
    let custom = runs_of(&uri, &custom_exp, &run_id);
    assert_eq!(custom.len(), 1, "{custom:#?}");
    let first = &custom[0];
    assert_eq!(first["info"]["run_name"], "first-copy");
    let t = tags(first);
    assert_eq!(t["store.job_id"], "first");
    assert_eq!(t["mlflow.parentRunId"], parent["info"]["run_id"]);
    assert_eq!(tags(second)["mlflow.parentRunId"], parent["info"]["run_id"]);
    let p = params(first);
    assert!(
        p.contains_key("input/in.txt/hash") && p.contains_key("intermediate/mid.txt/hash"),
        "{p:?}"
    );
    // The job's user code would have been told its own experiment.
    let snap: Value = serde_json::from_str(&ws.ok(&["show", "--json", &run_id])).expect("json");
    let url = snap["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["job_id"] == "first")
        .and_then(|e| e["mlflow_url"].as_str())
        .expect("url")
        .to_string();
    assert!(
        url.contains(&format!("/#/experiments/{custom_exp}/runs/")),
        "{url}"
    );
    // A store without the plan (as a clone, or a node's own store, would be) still finds the
    // child in its custom experiment through the recorded URLs: a sync creates nothing.
    std::fs::remove_file(ws.p(&format!(".store/mlflow/runs/{run_id}.json"))).expect("rm state");
    let (out, _) = run_store(&ws, &["mlflow", "sync", &run_id, "--json"], &[]);
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r[0]["created"], 0, "{r}");
    assert_eq!(runs_of(&uri, &custom_exp, &run_id).len(), 1);
    assert_eq!(runs_of(&uri, &wf_exp, &run_id).len(), 2);
}

#[test]
fn jobs_inside_subworkflows_get_their_own_child_runs_under_the_one_parent() {
    let Some(uri) = mlflow_uri() else { return };
    let ws = Ws::new();
    ws.ok(&["config", "set", "mlflow.uri", &uri]);
    let (run_id, _) = run_mlflow(
        &ws,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/federated/workflow-sub.yml"),
        &[],
    );
    let exp = experiment_id(&uri, "federated");
    let runs = runs_of(&uri, &exp, &run_id);
    let parent = runs
        .iter()
        .find(|r| tags(r)["store.kind"] == "workflow")
        .expect("parent");
    let children: BTreeMap<String, &Value> = runs
        .iter()
        .filter(|r| tags(r)["store.kind"] == "job")
        .map(|r| (tags(r)["store.job_id"].clone(), r))
        .collect();
    // The same 19 plain jobs as the flat workflow: 5 in the root, 7 in each round, by job path.
    assert_eq!(children.len(), 19, "{:?}", children.keys());
    assert_eq!(runs.len(), 20);
    for (job, r) in &children {
        assert_eq!(
            tags(r)["mlflow.parentRunId"],
            parent["info"]["run_id"],
            "{job}"
        );
    }
    // User code inside a sub-workflow was handed its own run, and logged to it.
    let eval = children["round_1:evaluate_0_1"];
    assert_eq!(eval["info"]["run_name"], "round_1:evaluate_0_1");
    let metrics = eval["data"]["metrics"].as_array().expect("metrics");
    assert!(metrics.iter().any(|m| m["key"] == "mse"), "{metrics:?}");
    assert!(params(children["round_0:train_0_0"]).contains_key("input/config.json/hash"));
}

/// A fault-injecting HTTP proxy in front of the real MLflow server, for the resilience test:
/// of the requests it receives, it refuses some with 429 or 503 before they reach the server,
/// answers some only after a delay, and forwards some `runs/create` to the server but replaces
/// the server's answer with a 502 (a gateway that lost the answer: the run exists, the client
/// does not know). One request per connection (`Connection: close` both ways).
mod proxy {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Default)]
    pub struct Counts {
        pub requests: AtomicUsize,
        pub refused: AtomicUsize,
        pub delayed: AtomicUsize,
        pub lost_creates: AtomicUsize,
        /// `runs/create` requests forwarded to the server.
        pub creates: AtomicUsize,
    }

    pub struct Proxy {
        pub uri: String,
        pub counts: Arc<Counts>,
    }

    pub fn start(upstream: &str) -> Proxy {
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let uri = format!("http://{}", l.local_addr().expect("addr"));
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (c, up) = (c.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &c);
                });
            }
        });
        Proxy { uri, counts }
    }

    /// Reads one request: head lines and body (by Content-Length).
    fn read_request(
        r: &mut BufReader<TcpStream>,
    ) -> std::io::Result<(String, Vec<String>, Vec<u8>)> {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let start = line.trim_end().to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let h = line.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if !lower.starts_with("connection:") && !lower.starts_with("keep-alive:") {
                headers.push(h);
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        Ok((start, headers, body))
    }

    fn answer(mut w: &TcpStream, status: &str, body: &str) -> std::io::Result<()> {
        write!(
            w,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        w.flush()
    }

    fn serve(conn: TcpStream, up: &str, c: &Counts) -> std::io::Result<()> {
        let mut r = BufReader::new(conn.try_clone()?);
        let (start, headers, body) = read_request(&mut r)?;
        let n = c.requests.fetch_add(1, Ordering::SeqCst);
        let create = start.contains("/runs/create");
        // Refused before reaching the server: a third of all requests.
        if n % 3 == 1 {
            c.refused.fetch_add(1, Ordering::SeqCst);
            return if n.is_multiple_of(2) {
                answer(
                    &conn,
                    "429 Too Many Requests",
                    r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
                )
            } else {
                answer(
                    &conn,
                    "503 Service Unavailable",
                    r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"overloaded"}"#,
                )
            };
        }
        if n % 5 == 2 {
            c.delayed.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut server = TcpStream::connect(up)?;
        write!(server, "{start}\r\n")?;
        for h in &headers {
            write!(server, "{h}\r\n")?;
        }
        write!(server, "Connection: close\r\n\r\n")?;
        server.write_all(&body)?;
        server.flush()?;
        let mut resp = Vec::new();
        server.read_to_end(&mut resp)?;
        // Every other create that reaches the server has its answer lost on the way back.
        if create && c.creates.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            c.lost_creates.fetch_add(1, Ordering::SeqCst);
            return answer(
                &conn,
                "502 Bad Gateway",
                r#"{"message":"upstream answer lost"}"#,
            );
        }
        // Relay the answer with `Connection: close` in place of whatever the server said.
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(resp.len(), |i| i + 4);
        let head = String::from_utf8_lossy(&resp[..split]);
        let mut out = String::new();
        for (i, l) in head.split("\r\n").filter(|l| !l.is_empty()).enumerate() {
            let lower = l.to_ascii_lowercase();
            if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut w = &conn;
        w.write_all(out.as_bytes())?;
        w.write_all(&resp[split..])?;
        w.flush()
    }
}

#[test]
fn a_flaky_slow_server_still_gets_every_run_exactly_once_and_nothing_goes_pending() {
    let Some(uri) = mlflow_uri() else { return };
    let p = proxy::start(&uri);
    let ws = Ws::new();
    ws.ok(&["config", "set", "mlflow.uri", &p.uri]);
    let (run_id, _) = run_mlflow(&ws, &federated(), &[]);
    let runs: Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "sealed");
    use std::sync::atomic::Ordering::SeqCst;
    let c = &p.counts;
    assert!(
        c.refused.load(SeqCst) >= 10
            && c.delayed.load(SeqCst) >= 5
            && c.lost_creates.load(SeqCst) >= 5,
        "faults injected: {} refused, {} delayed, {} creates lost of {} requests",
        c.refused.load(SeqCst),
        c.delayed.load(SeqCst),
        c.lost_creates.load(SeqCst),
        c.requests.load(SeqCst)
    );
    // Every send landed within its budget: nothing pending.
    assert!(ws.ok(&["mlflow", "pending"]).trim().is_empty());
    // Exactly one parent and one child per job, although creates were answered with 502 after
    // the server made the run (check_structure fails on two runs for one job).
    let (parent, children) = check_structure(&uri, &run_id);
    assert_eq!(parent["info"]["status"], "FINISHED");
    let snap: Value = serde_json::from_str(&ws.ok(&["show", "--json", &run_id])).expect("json");
    let entries = snap["entries"].as_array().expect("entries");
    for (job, r) in &children {
        assert_eq!(r["info"]["status"], "FINISHED", "{job}");
        // Each child holds the hash of every file its job recorded, and the job's entries link
        // to that child.
        let p = params(r);
        let mine: Vec<&Value> = entries
            .iter()
            .filter(|e| e["job_id"] == job.as_str())
            .collect();
        assert!(!mine.is_empty(), "{job} recorded nothing");
        for e in mine {
            let url = e["mlflow_url"].as_str().expect("mlflow_url");
            assert!(
                url.ends_with(r["info"]["run_id"].as_str().expect("id")),
                "{e}"
            );
            if e["role"] == "environment" {
                assert_eq!(
                    tags(r)["store.env.record"],
                    e["hash"].as_str().expect("hash")
                );
                continue;
            }
            assert!(
                p.values().any(|v| Some(v.as_str()) == e["hash"].as_str()),
                "{job}: no parameter holds {e}"
            );
        }
    }
    // The job's own client (MLflow's Python client, which retries 429/503 itself) got through.
    let metrics = children["evaluate_0_0"]["data"]["metrics"]
        .as_array()
        .expect("metrics");
    assert!(metrics.iter().any(|m| m["key"] == "mse"), "{metrics:?}");
    assert_no_token(&ws);
}

#[test]
fn configuration_files_become_parameters_of_the_parent_and_of_the_job_that_read_them() {
    let Some(uri) = mlflow_uri() else { return };
    let ws = Ws::new();
    ws.ok(&["config", "set", "mlflow.uri", &uri]);
    let example = federated();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(example.parent().expect("example dir"))
        .arg(ws.p("fed"))
        .status()
        .expect("cp");
    assert!(status.success());
    // train_0_0 reads config.json: its keys become its run's parameters; train_1_0 names a
    // file it never read.
    let wf = ws.p("fed/workflow.yml");
    let text = std::fs::read_to_string(&wf).expect("workflow");
    let text = text
        .replacen(
            "  id: train_0_0\n",
            "  id: train_0_0\n  metadata:\n    mlflow_params: config.json\n",
            1,
        )
        .replacen(
            "  id: train_1_0\n",
            "  id: train_1_0\n  metadata:\n    mlflow_params: missing.json\n",
            1,
        );
    std::fs::write(&wf, text).expect("write");
    ws.write(
        "hyper.yml",
        b"optimizer:\n  name: sgd\n  momentum: 0.9\nbatch: 32\n",
    );
    let (out, _) = run_store(
        &ws,
        &[
            "run",
            "fed/workflow.yml",
            "--mlflow",
            "--mlflow-params",
            "hyper.yml",
            "--workdir",
            "work",
        ],
        &[],
    );
    let run_id = out.trim().to_string();
    let (parent, children) = check_structure(&uri, &run_id);
    let p = params(&parent);
    assert_eq!(p["optimizer.name"], "sgd");
    assert_eq!(p["optimizer.momentum"], "0.9");
    assert_eq!(p["batch"], "32");
    let config: Value = serde_json::from_slice(
        &std::fs::read(example.parent().expect("dir").join("config.json")).expect("config"),
    )
    .expect("json");
    let t = params(&children["train_0_0"]);
    for (k, v) in config.as_object().expect("config keys") {
        assert_eq!(t[k], v.to_string(), "{k}");
    }
    // The file's own parameters stay beside them.
    assert!(t.contains_key("input/config.json/hash"), "{t:?}");
    assert!(!params(&children["train_1_0"]).contains_key("lr"));
    // The seal said why train_1_0 has none (in its job's log: `store run` ran it).
    let logs = std::fs::read_dir(ws.p("work/logs")).expect("logs");
    let said = logs
        .filter_map(|e| std::fs::read_to_string(e.expect("entry").path()).ok())
        .any(|t| t.contains("job train_1_0: mlflow_params names \"missing.json\""));
    assert!(said, "no warning about missing.json in the seal's log");
    // What is logged is what the job read: an edit after the run changes nothing in a sync.
    std::fs::write(ws.p("fed/config.json"), br#"{"lr": 99}"#).expect("edit");
    run_store(&ws, &["mlflow", "sync", &run_id], &[]);
    let (_, again) = check_structure(&uri, &run_id);
    assert_eq!(params(&again["train_0_0"])["lr"], config["lr"].to_string());
}
