//! A shared remote is input written by others: names that are no safe path or print as
//! terminal escapes, damaged segments, trees a reader refuses, half-written uploads. Clone and
//! pull keep what is sound and name what is not by key (exit 10); `verify --remote` reports
//! every kind of damage a reader meets (exit 5). All against a directory remote, forged with
//! the library's own encoders and the layout of store-format.md section 19.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use store::manifest::{EntryKind, FileManifest, TreeEntry, TreeManifest};
use store::pack::{Compression, PackBuf};
use store::{exit, Hash, ObjectKind};

use crate::common::{pseudo_random, Ws};
use crate::remote::{all_files, make_runs};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory remote holding the pushed runs of a fresh workspace (`n` sealed runs of
/// workflow `wf`, one push each so each run has its own segment); returns the workspace, the
/// remote's directory (inside `tmp`) and the run IDs.
fn pushed(tmp: &Path, n: usize) -> (Ws, PathBuf, Vec<String>) {
    let a = Ws::new();
    let ids = make_runs(&a, "wf", n, 20_000);
    let remote = tmp.join("remote");
    a.ok(&["remote", "add", "origin", remote.to_str().expect("utf8")]);
    for id in &ids {
        a.ok(&["push", "-q", id]);
    }
    (a, remote, ids)
}

fn seg_keys(remote: &Path) -> Vec<String> {
    let mut v = Vec::new();
    if remote.join("index").exists() {
        all_files(&remote.join("index"), &mut v);
    }
    let mut keys: Vec<String> = v
        .iter()
        .map(|p| {
            p.strip_prefix(remote)
                .expect("under remote")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    keys.sort();
    keys
}

/// Writes `objects` (kind, raw bytes) into one pack on the remote, and a segment naming that
/// pack and publishing `runs` (19.3). Returns the pack's key, the segment's key and the
/// objects' hashes.
fn forge(
    remote: &Path,
    objects: &[(ObjectKind, Vec<u8>)],
    runs: Value,
) -> (String, String, Vec<Hash>) {
    let mut buf = PackBuf::default();
    let mut hashes = Vec::new();
    for (kind, raw) in objects {
        let h = Hash::of(*kind, raw);
        buf.append(h, *kind, Compression::Raw, raw.len() as u32, raw);
        hashes.push(h);
    }
    let (id, bytes, entries) = buf.finish();
    let hex = id.to_hex();
    let pack_key = format!("packs/{}/{hex}.pack", &hex[..2]);
    let p = remote.join(&pack_key);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, &bytes).expect("write pack");
    let objects: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!([
                e.hash.to_hex(),
                e.kind as u8,
                e.compression as u8,
                e.raw_len,
                e.stored_len,
                e.offset
            ])
        })
        .collect();
    let seg = json!({
        "format": "store-remote-segment", "version": 1, "created_ns": 1,
        "packs": [{"id": hex, "size": bytes.len(), "objects": objects}],
        "runs": runs, "roots": []
    });
    let z = zstd::bulk::compress(&serde_json::to_vec(&seg).expect("json"), 3).expect("zstd");
    let sid = Hash(
        *blake3::Hasher::new_derive_key("store 2026-11 remote segment v1")
            .update(&z)
            .finalize()
            .as_bytes(),
    );
    let seg_key = format!("index/{}.seg", sid.to_hex());
    std::fs::write(remote.join(&seg_key), &z).expect("write segment");
    (pack_key, seg_key, hashes)
}

/// A partial run manifest (16.1) as raw JSON bytes.
fn part(wf: &str, run: &str, job: &str, entries: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "format": 1, "workflow": wf, "run_id": run, "job_id": job, "host": null,
        "time_ns": 1, "entries": entries
    }))
    .expect("json")
}

/// A run entry recording `hash` (a `kind`) at `path`.
fn entry(path: &str, kind: &str, hash: &Hash) -> Value {
    json!({
        "role": "output", "lfn": path, "path": path, "kind": kind, "hash": hash.to_hex(),
        "size": 0, "mtime_ns": 0, "recorded_ns": 1, "job_id": "j", "environment": null,
        "remote_urls": [], "mlflow_url": null
    })
}

fn publication(wf: &str, run: &str, part: &Hash) -> Value {
    json!({"workflow": wf, "run_id": run, "parts": [part.to_hex()], "snapshot": null})
}

/// `store clone REMOTE ws` in a fresh directory.
fn clone(remote: &Path) -> (Ws, Output) {
    let b = Ws::bare();
    let o = b.run(&["clone", remote.to_str().expect("utf8"), "ws"]);
    (b, o)
}

fn in_ws(b: &Ws, args: &[&str]) -> Output {
    b.cmd(args)
        .current_dir(b.p("ws"))
        .output()
        .expect("run store")
}

fn ok_in_ws(b: &Ws, args: &[&str]) -> String {
    let o = in_ws(b, args);
    assert!(
        o.status.success(),
        "store {args:?} failed ({:?}): {}",
        o.status.code(),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// `verify --remote origin --json` in `a`: its exit code and report.
fn verify_remote(a: &Ws) -> (Option<i32>, Value) {
    let o = a.run(&["verify", "--remote", "origin", "--json"]);
    let v = serde_json::from_slice(&o.stdout).expect("json report");
    (o.status.code(), v)
}

/// The problems of a `verify --remote` report as (key, object, detail).
fn problems(v: &Value) -> Vec<(String, String, String)> {
    v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["pack"].as_str().unwrap_or("").to_string(),
                p["object"].as_str().unwrap_or("").to_string(),
                p["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn no_raw_controls(what: &str, s: &[u8]) {
    assert!(
        !s.iter().any(|b| *b == 0x1b || *b == 0x07),
        "{what} carries raw control bytes: {:?}",
        text(s)
    );
}

/// Run IDs and workflow names from a remote are held to the rule of local input, both where
/// a segment publishes them and inside the run objects: a run whose ID would be a path out of
/// the store, or that prints terminal escapes, is refused by key and the rest is cloned.
#[test]
fn hostile_run_names_are_refused_by_key_and_the_rest_is_cloned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, remote, ids) = pushed(tmp.path(), 1);
    let escape = "../../../../escaped";
    let esc_run = "esc\x1b]0;pwned\x07run";
    let esc_wf = "wf\x1b[2J";
    let objects = vec![
        (ObjectKind::RunPart, part("wf", escape, "j", vec![])),
        (ObjectKind::RunPart, part(esc_wf, esc_run, "j", vec![])),
        // Valid where the segment publishes it, not inside the record.
        (ObjectKind::RunPart, part("wf", "../sneaky", "j", vec![])),
        (ObjectKind::RunPart, part("wf", "nl-run", "j\nk", vec![])),
    ];
    let hashes: Vec<Hash> = objects.iter().map(|(k, b)| Hash::of(*k, b)).collect();
    let runs = json!([
        publication("wf", escape, &hashes[0]),
        publication(esc_wf, esc_run, &hashes[1]),
        publication("wf", "sneaky", &hashes[2]),
        publication("wf", "nl-run", &hashes[3]),
    ]);
    let (pack_key, seg_key, _) = forge(&remote, &objects, runs);

    let (b, o) = clone(&remote);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(exit::PARTIAL), "{err}");
    no_raw_controls("clone's stderr", &o.stderr);
    // Each refusal names its key: the segment for the names it publishes, the pack for the
    // records that fail their decoding.
    for needle in [
        seg_key.as_str(),
        "\"../../../../escaped\"",
        "\"wf\\u{1b}[2J\"",
        pack_key.as_str(),
        "run sneaky not adopted",
        "\"../sneaky\"",
        "run nl-run not adopted",
        "\"j\\nk\"",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    let runs = ok_in_ws(&b, &["runs"]);
    assert!(runs.contains(&ids[0]), "{runs}");
    for refused in ["escaped", "pwned", "sneaky", "nl-run"] {
        assert!(!runs.contains(refused), "{refused} adopted: {runs}");
    }
    // The sound run is whole: its content comes on demand.
    ok_in_ws(&b, &["checkout", &ids[0], "--to", "restored"]);
    assert_eq!(
        std::fs::read(b.p("ws/restored/out/run-00.bin")).expect("restored"),
        std::fs::read(a.p("out/run-00.bin")).expect("original")
    );
    // Pulling again meets the same damage and says so again; nothing was written outside the
    // clone, and no run ID became a path (MLflow's pending markers are named by run ID).
    let o = in_ws(&b, &["pull"]);
    assert_eq!(o.status.code(), Some(exit::PARTIAL), "{}", text(&o.stderr));
    let o = in_ws(&b, &["mlflow", "sync", escape]);
    assert_eq!(
        o.status.code(),
        Some(exit::NOT_FOUND),
        "{}",
        text(&o.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(b.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["ws".to_string()]);
    assert!(!b.p("ws/.store/mlflow").exists());
    // verify --remote reports all four, by key.
    let (code, v) = verify_remote(&a);
    assert_eq!(code, Some(exit::CORRUPT), "{v}");
    let p = problems(&v);
    let at_seg = p.iter().filter(|(k, _, _)| *k == seg_key).count();
    assert_eq!(at_seg, 2, "{v}");
    for h in &hashes[2..] {
        assert!(
            p.iter().any(|(k, o, _)| *k == pack_key && *o == h.to_hex()),
            "{h} not reported: {v}"
        );
    }
}

/// One damaged segment on a shared remote hides only what it published: the clone gets every
/// other run, names the damaged key, and the writer's next push publishes the lost run again.
#[test]
fn a_damaged_segment_blocks_only_what_it_published() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, remote, ids) = pushed(tmp.path(), 2);
    let keys = seg_keys(&remote);
    assert_eq!(keys.len(), 2, "{keys:?}");
    // The segment that published the second run: pushed last, so the one the first push
    // did not write. Find it by content: it names run-01.
    let damaged = keys
        .iter()
        .find(|k| {
            let z = std::fs::read(remote.join(k)).expect("segment");
            let j = zstd::stream::decode_all(&z[..]).expect("zstd");
            text(&j).contains(&ids[1])
        })
        .expect("run-01's segment")
        .clone();
    let p = remote.join(&damaged);
    let mut z = std::fs::read(&p).expect("segment");
    let mid = z.len() / 2;
    z[mid] ^= 0x55;
    std::fs::write(&p, &z).expect("damage");

    let (b, o) = clone(&remote);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(exit::PARTIAL), "{err}");
    assert!(err.contains(&damaged), "{err}");
    let runs = ok_in_ws(&b, &["runs"]);
    assert!(runs.contains(&ids[0]) && !runs.contains(&ids[1]), "{runs}");
    ok_in_ws(&b, &["checkout", &ids[0], "--to", "restored"]);
    assert_eq!(
        std::fs::read(b.p("ws/restored/out/run-00.bin")).expect("restored"),
        std::fs::read(a.p("out/run-00.bin")).expect("original")
    );
    let (code, v) = verify_remote(&a);
    assert_eq!(code, Some(exit::CORRUPT), "{v}");
    assert!(problems(&v).iter().any(|(k, _, _)| *k == damaged), "{v}");
    // Recovery: the writer drops its cached copies of the segments (which are sound) and
    // pushes again; it finds its run missing on the remote and publishes it in a new segment
    // (its content is there already). The clone's next pull adopts it, still naming the damage.
    std::fs::remove_dir_all(a.p(".store/remotes/origin/segments")).expect("drop cache");
    let r: Value = serde_json::from_str(&a.ok(&["push", "--json"])).expect("json");
    assert_eq!(r["runs"], json!([ids[1]]), "{r}");
    // Its data pack is found in place (its records share a new pack with the root versions
    // this full push adds).
    assert!(r["packs_skipped"].as_u64() >= Some(1), "{r}");
    let o = in_ws(&b, &["pull", "--metadata-only"]);
    assert_eq!(o.status.code(), Some(exit::PARTIAL), "{}", text(&o.stderr));
    assert!(ok_in_ws(&b, &["runs"]).contains(&ids[1]));
}

/// Trees a reader refuses (an entry named `..` or holding `/`, two entries with one name):
/// the runs that need them are not adopted, everything else is, and `verify --remote` names
/// each tree in its pack.
#[test]
fn trees_with_invalid_or_duplicate_names_are_refused_by_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, remote, ids) = pushed(tmp.path(), 1);
    let empty = FileManifest {
        size: 0,
        chunks: Vec::new(),
    }
    .encode();
    let fh = Hash::of(ObjectKind::File, &empty);
    let tree = |names: &[&[u8]]| {
        TreeManifest {
            entries: names
                .iter()
                .map(|n| TreeEntry {
                    name: n.to_vec(),
                    mode: 0o100644,
                    size: 0,
                    kind: EntryKind::File(fh),
                })
                .collect(),
        }
        .encode()
    };
    let trees = [
        ("forged-ok", tree(&[b"fine"])),
        ("bad-dotdot", tree(&[b".."])),
        ("bad-slash", tree(&[b"a/b"])),
        ("bad-dup", tree(&[b"a", b"a"])),
        ("bad-unsorted-dup", tree(&[b"b", b"a", b"b"])),
    ];
    let mut objects = vec![(ObjectKind::File, empty.clone())];
    let mut runs = Vec::new();
    let mut tree_hashes = Vec::new();
    for (run, t) in &trees {
        let th = Hash::of(ObjectKind::Tree, t);
        tree_hashes.push(th);
        let p = part("wf", run, "j", vec![entry("out", "tree", &th)]);
        runs.push(publication("wf", run, &Hash::of(ObjectKind::RunPart, &p)));
        objects.push((ObjectKind::Tree, t.clone()));
        objects.push((ObjectKind::RunPart, p));
    }
    let (pack_key, _, _) = forge(&remote, &objects, Value::Array(runs));

    let (b, o) = clone(&remote);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(exit::PARTIAL), "{err}");
    for (i, (run, _)) in trees.iter().enumerate().skip(1) {
        assert!(
            err.contains(&format!("run {run} not adopted")),
            "{run}: {err}"
        );
        assert!(err.contains(&tree_hashes[i].to_hex()), "{run}: {err}");
    }
    assert!(err.contains(&pack_key), "{err}");
    let runs = ok_in_ws(&b, &["runs"]);
    assert!(
        runs.contains(&ids[0]) && runs.contains("forged-ok") && !runs.contains("bad-"),
        "{runs}"
    );
    // The forged run that is sound is whole and restores.
    ok_in_ws(&b, &["checkout", "forged-ok", "--to", "restored"]);
    assert_eq!(
        std::fs::read(b.p("ws/restored/out/fine")).expect("restored"),
        b""
    );
    // Nothing a reader refuses was kept in the clone.
    ok_in_ws(&b, &["verify"]);
    for h in &tree_hashes[1..] {
        let o = in_ws(&b, &["ls", &h.to_hex()]);
        assert_eq!(o.status.code(), Some(exit::NOT_FOUND), "{h} was kept");
    }

    let (code, v) = verify_remote(&a);
    assert_eq!(code, Some(exit::CORRUPT), "{v}");
    let p = problems(&v);
    for (i, why) in [
        (1, "invalid entry name"),
        (2, "invalid entry name"),
        (3, "duplicate entry name"),
        (4, "duplicate entry name"),
    ] {
        let h = tree_hashes[i].to_hex();
        assert!(
            p.iter()
                .any(|(k, o, d)| *k == pack_key && *o == h && d.contains(why)),
            "tree {i} ({why}) not reported: {v}"
        );
    }
    assert_eq!(p.len(), 4, "only the four trees: {v}");
}

/// Uploads a killed push left in a directory remote's `tmp/` are listed by `verify --remote`
/// (name, size, age; not a problem), and the next push removes those older than an hour
/// while one being written now stays.
#[test]
fn stale_partial_uploads_are_reported_and_removed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let remote = tmp.path().join("remote");
    let a = Ws::new();
    a.write("f.bin", &pseudo_random(100_000, 3));
    a.ok(&["add", "-q", "f.bin"]);
    a.ok(&["remote", "add", "origin", remote.to_str().expect("utf8")]);
    a.ok(&["push", "-q"]);
    let stale = remote.join("tmp/4242-18f00000000-0.tmp");
    let fresh = remote.join("tmp/4343-18f00000001-3.tmp");
    std::fs::write(&stale, pseudo_random(2 << 20, 4)).expect("write");
    std::fs::write(&fresh, b"being written").expect("write");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .expect("open")
        .set_modified(two_hours_ago)
        .expect("set mtime");

    let (code, v) = verify_remote(&a);
    assert_eq!(code, Some(0), "partial uploads are no problem: {v}");
    let listed = v["partial_uploads"].as_array().expect("partial_uploads");
    assert_eq!(listed.len(), 2, "{v}");
    assert_eq!(listed[0]["key"], "tmp/4242-18f00000000-0.tmp");
    assert_eq!(listed[0]["size"], 2 << 20);
    assert!(listed[0]["age_secs"].as_u64().expect("age") >= 7000, "{v}");
    assert_eq!(listed[1]["key"], "tmp/4343-18f00000001-3.tmp");
    assert!(listed[1]["age_secs"].as_u64().expect("age") < 600, "{v}");
    let human = a.ok(&["verify", "--remote", "origin"]);
    assert!(
        human.contains("2 partial uploads") && human.contains("tmp/4242-18f00000000-0.tmp"),
        "{human}"
    );

    a.write("g.bin", &pseudo_random(50_000, 5));
    a.ok(&["add", "-q", "g.bin"]);
    let r: Value = serde_json::from_str(&a.ok(&["push", "--json"])).expect("json");
    let removed = r["stale_uploads_removed"].as_array().expect("removed");
    assert_eq!(removed.len(), 1, "{r}");
    assert_eq!(removed[0]["key"], "tmp/4242-18f00000000-0.tmp");
    assert!(!stale.exists());
    assert_eq!(std::fs::read(&fresh).expect("kept"), b"being written");
    let (_, v) = verify_remote(&a);
    assert_eq!(
        v["partial_uploads"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
}

/// Names from any source (here a file name with escapes and a newline) are printed with
/// their control characters escaped by runs, show, ls and log; `--json` keeps them exact.
#[test]
fn control_characters_never_reach_the_terminal() {
    let ws = Ws::new();
    let name = "evil\x1b[2J\u{9b}31m\u{7}\nname.txt";
    ws.write(&format!("d/{name}"), b"x");
    let tree = ws.add("d");
    ws.ok(&[
        "add",
        "-q",
        "--role",
        "output",
        "--wf",
        "wf",
        "--run",
        "r1",
        "--job",
        "j",
        &format!("d/{name}"),
    ]);
    let escaped = "evil\\x1b[2J\\u{9b}31m\\x07\\nname.txt";
    for args in [
        vec!["ls"],
        vec!["ls", tree.as_str()],
        vec!["log"],
        vec!["show", "r1"],
        vec!["runs"],
    ] {
        let out = ws.run(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        no_raw_controls(&format!("{args:?}"), &out.stdout);
        assert!(
            !text(&out.stdout).contains('\u{9b}'),
            "{args:?}: {}",
            text(&out.stdout)
        );
        if args[0] != "runs" {
            assert!(
                text(&out.stdout).contains(escaped),
                "{args:?}: {}",
                text(&out.stdout)
            );
        }
    }
    let j: Value = serde_json::from_str(&ws.ok(&["show", "r1", "--json"])).expect("json");
    assert!(
        j["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with(name))),
        "{j}"
    );
}
