//! `store publish` (19.12): sealed runs as browsable folders, on a directory remote, S3 (moto)
//! and the Drive fake: the layout by role, whole files equal to what was recorded, URLs that
//! open them, server-side copies for unchanged files (request counts), idempotence, resuming,
//! the remote option `publish` at seal, and pending publications completed by `store sync`.

use std::collections::BTreeMap;

use store::remote::{Backend, DirBackend};

use crate::common::{pseudo_random, Ws};
use crate::remote::{json, new_bucket, run_ok, s3_endpoint, with_s3_env};

/// Two sealed runs of workflow `wf`: both read `in/shared.dat` and `code/train.py`; `run-a`
/// writes a directory `out/model/` and records `wf.yml`, `run-b` writes `out/b.bin`; and a
/// logical name that tries to leave its folder. Returns the files by their view path.
fn two_runs(ws: &Ws) -> BTreeMap<&'static str, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut put = |rel: &'static str, data: Vec<u8>| {
        ws.write(rel, &data);
        files.insert(rel, data);
    };
    put("in/shared.dat", pseudo_random(150_000, 1));
    put("code/train.py", b"print('train')\n".to_vec());
    put("out/model/weights.bin", pseudo_random(120_000, 2));
    put("out/model/cfg/params.json", b"{\"lr\": 0.1}\n".to_vec());
    put("wf.yml", b"pegasus: 5.0\njobs: []\n".to_vec());
    put("out/b.bin", pseudo_random(90_000, 3));
    let add = |run: &str, role: &str, extra: &[&str]| {
        let mut a = vec![
            "add", "-q", "--no-env", "--wf", "wf", "--run", run, "--job", "j1", "--role", role,
        ];
        a.extend_from_slice(extra);
        ws.ok(&a);
    };
    for run in ["run-a", "run-b"] {
        add(run, "input", &["in/shared.dat"]);
        add(run, "code", &["code/train.py"]);
    }
    add("run-a", "output", &["out/model"]);
    add("run-a", "workflow", &["wf.yml"]);
    add(
        "run-a",
        "output",
        &["--lfn", "../../escape.txt", "code/train.py"],
    );
    add("run-b", "output", &["out/b.bin"]);
    for run in ["run-a", "run-b"] {
        ws.ok(&["seal", "-q", "--no-push", run]);
    }
    files
}

/// Publishes run-a, again, then run-b, checking the view through `view` (a backend on the
/// same remote), and `fetch` for URLs a person opens. Returns the three reports.
fn scenario(
    ws: &Ws,
    files: &BTreeMap<&'static str, Vec<u8>>,
    view: &dyn Backend,
    prefix: &str,
    fetch: &dyn Fn(&[String]) -> Option<Vec<u8>>,
) -> [serde_json::Value; 3] {
    let publish = |run: &str| {
        json(&run_ok(with_s3_env(
            &mut ws.cmd(&["publish", run, "--json"]),
        )))
    };
    let a = publish("run-a");
    let ra = &a["runs"][0];
    let folder = format!("{prefix}/wf/run-a");
    assert_eq!(ra["folder"], folder.as_str());
    // Whole files, by role, under their logical names; a directory's files below its name.
    let expect = [
        ("inputs/in/shared.dat", "in/shared.dat"),
        ("code/code/train.py", "code/train.py"),
        ("outputs/out/model/weights.bin", "out/model/weights.bin"),
        (
            "outputs/out/model/cfg/params.json",
            "out/model/cfg/params.json",
        ),
        ("workflow/wf.yml", "wf.yml"),
        ("outputs/%2E%2E/%2E%2E/escape.txt", "code/train.py"),
    ];
    for (key, src) in expect {
        let got = view
            .get(&format!("{folder}/{key}"))
            .expect("get")
            .unwrap_or_else(|| panic!("{key} not published"));
        assert_eq!(got, files[src], "{key}");
    }
    assert_eq!(ra["files"], 6);
    assert_eq!(ra["uploaded"], 5, "{ra}");
    assert_eq!(
        ra["copied"], 1,
        "the second copy of train.py is copied: {ra}"
    );
    assert_eq!(ra["metadata_written"], true);
    // metadata.json: Table I for every file, with the published URLs; those open the file.
    let meta: serde_json::Value = serde_json::from_slice(
        &view
            .get(&format!("{folder}/metadata.json"))
            .expect("get")
            .expect("metadata.json"),
    )
    .expect("metadata is JSON");
    assert_eq!(meta["run_id"], "run-a");
    let shared = &meta["files"]["in/shared.dat"];
    let urls: Vec<String> = serde_json::from_value(shared["remote_urls"].clone()).expect("urls");
    assert!(!urls.is_empty(), "{shared}");
    if let Some(bytes) = fetch(&urls) {
        assert_eq!(bytes, files["in/shared.dat"], "{urls:?}");
    }
    let published = meta["published"]["files"]
        .as_array()
        .expect("published files");
    assert_eq!(published.len(), 6);

    // Again: nothing written; the folder listed once and metadata.json read once.
    let again = publish("run-a");
    let r2 = &again["runs"][0];
    assert_eq!(
        (r2["uploaded"].as_u64(), r2["copied"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(r2["present"], 6);
    assert_eq!(r2["metadata_written"], false);

    // A second run: the unchanged input and code are copied server-side, only the new output
    // goes up.
    let b = publish("run-b");
    let rb = &b["runs"][0];
    assert_eq!(rb["files"], 3);
    assert_eq!(rb["uploaded"], 1, "{rb}");
    assert_eq!(rb["copied"], 2, "{rb}");
    assert_eq!(rb["bytes_uploaded"], files["out/b.bin"].len());
    for (key, src) in [
        ("inputs/in/shared.dat", "in/shared.dat"),
        ("outputs/out/b.bin", "out/b.bin"),
    ] {
        let got = view
            .get(&format!("{prefix}/wf/run-b/{key}"))
            .expect("get")
            .expect("published");
        assert_eq!(got, files[src], "{key}");
    }
    // show, metadata export and the record agree on the URLs.
    let show = json(&ws.ok(&["show", "run-b", "--json"]));
    let entry = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["path"] == "out/b.bin")
        .expect("out/b.bin")
        .clone();
    let b_urls: Vec<String> = serde_json::from_value(entry["remote_urls"].clone()).expect("urls");
    assert!(!b_urls.is_empty(), "{entry}");
    if let Some(bytes) = fetch(&b_urls) {
        assert_eq!(bytes, files["out/b.bin"]);
    }
    assert_eq!(show["published"][0]["folder"], format!("{prefix}/wf/run-b"));
    let export = ws.ok(&["metadata", "export"]);
    assert!(export.contains(&b_urls[0]), "{export}");

    // Resuming: a view that lost a file and its metadata.json (a publication killed before
    // its end) is completed, the rest left alone.
    view.delete(&format!("{folder}/workflow/wf.yml"))
        .expect("delete");
    view.delete(&format!("{folder}/metadata.json"))
        .expect("delete");
    let resumed = publish("run-a");
    let rr = &resumed["runs"][0];
    assert_eq!(rr["present"], 5, "{rr}");
    assert_eq!(rr["uploaded"], 1, "{rr}");
    assert_eq!(rr["metadata_written"], true);
    assert_eq!(
        view.get(&format!("{folder}/workflow/wf.yml"))
            .expect("get")
            .as_deref(),
        Some(&files["wf.yml"][..])
    );
    [a, again, b]
}

#[test]
fn publish_on_a_directory_remote() {
    let ws = Ws::new();
    let files = two_runs(&ws);
    let remote = tempfile::tempdir().expect("tmp");
    let url = remote.path().display().to_string();
    ws.ok(&["remote", "add", "origin", &url]);
    let view = DirBackend::open(remote.path()).expect("open");
    let fetch = |urls: &[String]| {
        let u = urls.iter().find(|u| u.starts_with("file://"))?;
        Some(std::fs::read(u.trim_start_matches("file://")).expect("read file URL"))
    };
    let [a, again, b] = scenario(&ws, &files, &view, "published", &fetch);
    // Request counts: one listing, an operation per file, metadata.json.
    assert_eq!(a["requests"], 1 + 6 + 1, "{a}");
    assert_eq!(again["requests"], 2, "{again}");
    assert_eq!(b["requests"], 1 + 3 + 1, "{b}");
    // remote sync --published: the second remote gets the runs and their views, with its own
    // URLs; show lists both.
    ws.ok(&["push", "-q"]);
    let second = tempfile::tempdir().expect("tmp");
    let second_url = second.path().display().to_string();
    ws.ok(&["remote", "add", "second", &second_url]);
    let synced = json(&ws.ok(&[
        "remote",
        "sync",
        "origin",
        "second",
        "--published",
        "--json",
    ]));
    assert_eq!(
        synced["published"]["runs"].as_array().expect("runs").len(),
        2,
        "{synced}"
    );
    assert_eq!(
        std::fs::read(second.path().join("published/wf/run-b/outputs/out/b.bin")).expect("view"),
        files["out/b.bin"]
    );
    let show = ws.ok(&["show", "run-b", "--json"]);
    assert!(show.contains(&format!(
        "file://{second_url}/published/wf/run-b/outputs/out/b.bin"
    )));
    assert!(show.contains(&format!(
        "file://{url}/published/wf/run-b/outputs/out/b.bin"
    )));
    // A hostile publish prefix is refused.
    let bad = ws.run(&["remote", "set", "origin", "publish_prefix", "packs"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("inside the store's own layout"));
}

#[test]
fn publish_on_s3_copies_server_side() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = new_bucket(&ep, "publish");
    let ws = Ws::new();
    let files = two_runs(&ws);
    let url = format!("s3://{bucket}/team");
    run_ok(with_s3_env(&mut ws.cmd(&[
        "remote",
        "add",
        "origin",
        &url,
        "--endpoint",
        &ep,
        "--allow-http",
        "--publish-prefix",
        "experiments",
    ])));
    let view = crate::remote::open_s3(&ep, &bucket, "team");
    // moto refuses unsigned GETs of private objects (403), so the https URL is checked by
    // reading the key it names, path-style on the endpoint, through the signed client.
    let fetch = |urls: &[String]| {
        let s3 = format!("s3://{bucket}/team/");
        let key = urls
            .iter()
            .find_map(|u| u.strip_prefix(&s3))
            .expect("an s3:// URL");
        let page = urls
            .iter()
            .find(|u| u.starts_with(ep.as_str()))
            .expect("a URL on the endpoint");
        assert_eq!(
            page,
            &format!(
                "{}/{bucket}/team/{}",
                ep.trim_end_matches('/'),
                key.replace(' ', "%20")
            )
        );
        view.get(key).expect("get")
    };
    let [a, again, b] = scenario(&ws, &files, view.as_ref(), "experiments", &fetch);
    // One listing, a PutObject or CopyObject per file, metadata.json.
    assert_eq!(a["requests"], 1 + 6 + 1, "{a}");
    assert_eq!(again["requests"], 2, "{again}");
    assert_eq!(b["requests"], 1 + 3 + 1, "{b}");
    // Table I's Bucket Storage URL.
    let export = json(&ws.ok(&["metadata", "export"]));
    let text = export.to_string();
    assert!(text.contains("\"bucket_url\":\"s3://"), "{text}");
    // No credential in anything published.
    for (k, _) in view.list("experiments/").expect("list") {
        let v = view.get(&k).expect("get").expect("value");
        assert!(
            !crate::remote::contains(&v, crate::remote::SECRET.as_bytes()),
            "{k}"
        );
    }
}

#[test]
fn publish_on_drive_uses_files_copy() {
    use crate::gdrive::fake::{FakeDrive, Route};
    let fake = FakeDrive::start();
    let (_d, creds) = crate::gdrive::user_creds();
    let ws = Ws::new();
    let files = two_runs(&ws);
    let token_url = fake.token_url();
    let creds_s = creds.display().to_string();
    ws.ok(&[
        "remote",
        "add",
        "origin",
        "gdrive://Lab/store",
        "--api-url",
        &fake.base,
        "--token-url",
        &token_url,
        "--credentials-file",
        &creds_s,
    ]);
    let spec = crate::gdrive::spec(&fake, "gdrive://Lab/store", &creds);
    let view = spec.open().expect("open");
    let fetch = |urls: &[String]| {
        let u = urls
            .iter()
            .find(|u| u.starts_with("https://drive.google.com/file/d/"))
            .expect("a Drive URL");
        let id = u.trim_start_matches("https://drive.google.com/file/d/");
        let f = fake
            .files()
            .into_iter()
            .find(|f| f.id == id)
            .expect("the file");
        Some(f.data)
    };
    let copies = |fake: &FakeDrive| {
        fake.log()
            .iter()
            .filter(|l| l.route == Some(Route::Copy) && l.status == 200)
            .count()
    };
    let [_, again, b] = scenario(&ws, &files, view.as_ref(), "published", &fetch);
    assert_eq!(b["runs"][0]["copied"], 2);
    // Publishing again asks a few listings and reads metadata.json: no lookup per file.
    let asked = again["requests"].as_u64().expect("requests");
    assert!(asked <= 12, "{again}");
    // Three files.copy: train.py's second name in run-a, the input and code of run-b.
    assert_eq!(copies(&fake), 3);
    // A person browsing Drive finds the run's folder.
    let top = "My Drive/Lab/store/published/wf/run-b";
    assert_eq!(fake.files_at(&format!("{top}/outputs/out/b.bin")).len(), 1);
    assert_eq!(fake.files_at(&format!("{top}/metadata.json")).len(), 1);
}

#[test]
fn seal_publishes_when_the_remote_says_so_and_sync_completes_it() {
    let ws = Ws::new();
    let remote = tempfile::tempdir().expect("tmp");
    let url = remote.path().display().to_string();
    ws.ok(&["remote", "add", "origin", &url, "--publish"]);
    ws.write("in.txt", b"input\n");
    ws.write("out.txt", b"output\n");
    let add = |run: &str, role: &str, path: &str| {
        ws.ok(&[
            "add", "-q", "--no-env", "--wf", "wf", "--run", run, "--job", "j", "--role", role, path,
        ]);
    };
    add("r1", "input", "in.txt");
    add("r1", "output", "out.txt");
    ws.ok(&["seal", "-q", "r1"]);
    let view = remote.path().join("published/wf/r1");
    assert_eq!(
        std::fs::read(view.join("outputs/out.txt")).expect("published at seal"),
        b"output\n"
    );
    assert!(view.join("metadata.json").is_file());
    // The view cannot be written (its folder is taken by a file): the seal succeeds, the run
    // is pushed, its publication is pending and says why.
    add("r2", "input", "in.txt");
    std::fs::write(remote.path().join("published/wf/r2"), b"in the way").expect("block");
    let out = ws.run(&["seal", "r2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("publication on origin is pending"), "{err}");
    let show = json(&ws.ok(&["show", "r2", "--json"]));
    assert!(show["pending"]["publish"][0] == "origin", "{show}");
    assert!(ws
        .ok(&["show", "r2"])
        .contains("publication on origin pending"));
    // Cleared, `store sync` publishes it and nothing is pending after.
    std::fs::remove_file(remote.path().join("published/wf/r2")).expect("unblock");
    let synced = ws.ok(&["sync"]);
    assert!(synced.contains("published run r2 on origin"), "{synced}");
    assert!(remote
        .path()
        .join("published/wf/r2/inputs/in.txt")
        .is_file());
    let show = json(&ws.ok(&["show", "r2", "--json"]));
    assert!(show.get("pending").is_none(), "{show}");
    let urls = show["entries"][0]["remote_urls"].to_string();
    assert!(urls.contains("published/wf/r2/inputs/in.txt"), "{urls}");
    // An open run is refused, by name.
    add("r3", "input", "in.txt");
    let open = ws.run(&["publish", "r3"]);
    assert!(!open.status.success());
    assert!(String::from_utf8_lossy(&open.stderr).contains("run r3 is open"));
}
