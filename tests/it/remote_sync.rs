//! `store remote sync SRC DST [RUN...]`: a directory remote copied to S3 (moto) and back to
//! another directory restores byte for byte; a sync killed part-way completes when run again;
//! a sync of one run copies only what that run needs.

use std::path::Path;
use std::time::Duration;

use crate::common::Ws;
use crate::remote::{json, make_runs, run_ok, with_s3_env};

/// Packs of at most 1 MiB: a run's data spans several packs.
fn small_packs(ws: &Ws) {
    let p = ws.p(".store/config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).expect("config")).expect("json");
    c["pack_target_size"] = serde_json::json!(1 << 20);
    std::fs::write(&p, serde_json::to_vec(&c).expect("json")).expect("write config");
}

/// Clones `url`, checks out `runs` and compares with the files in `a`; verify --remote clean.
fn clone_and_restore(a: &Ws, url: &str, runs: &[&str], extra: &[&str]) -> usize {
    let b = Ws::bare();
    let mut args = vec!["clone", url, "w", "--json"];
    args.extend_from_slice(extra);
    let c = json(&run_ok(with_s3_env(&mut b.cmd(&args))));
    let ws = b.p("w");
    for id in runs {
        run_ok(with_s3_env(&mut b.cmd(&["checkout", id, "--to", id])).current_dir(&ws));
        for f in [format!("out/{id}.bin"), "in/shared.dat".to_string()] {
            let got = std::fs::read(ws.join(id).join(&f)).expect("restored");
            assert!(
                got == std::fs::read(a.p(&f)).expect("original"),
                "{id}: {f}"
            );
        }
    }
    let v = json(&run_ok(
        with_s3_env(&mut b.cmd(&["verify", "--remote", "origin", "--json"])).current_dir(&ws),
    ));
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    c["runs"].as_array().expect("runs").len()
}

#[test]
fn sync_dir_to_s3_to_dir_restores_byte_for_byte() {
    let Some(ep) = crate::remote::s3_endpoint() else {
        return;
    };
    let r = tempfile::tempdir().expect("tmp");
    let (d1, d2) = (r.path().join("d1"), r.path().join("d2"));
    let (d1, d2) = (d1.to_str().expect("utf8"), d2.to_str().expect("utf8"));
    let s3 = format!("s3://{}/synced", crate::remote::new_bucket(&ep, "sync"));
    let a = Ws::new();
    small_packs(&a);
    make_runs(&a, "wf", 3, 1_500_000);
    let ok = |args: &[&str]| run_ok(with_s3_env(&mut a.cmd(args)));
    ok(&["remote", "add", "d1", d1]);
    ok(&["push", "-q", "d1"]);
    ok(&[
        "remote",
        "add",
        "s3",
        &s3,
        "--endpoint",
        &ep,
        "--allow-http",
    ]);
    ok(&["remote", "add", "d2", d2]);
    let first = json(&ok(&["remote", "sync", "d1", "s3", "--json"]));
    assert!(
        first["packs_copied"].as_u64().expect("packs") >= 4,
        "{first}"
    );
    assert_eq!(first["runs"].as_array().expect("runs").len(), 3, "{first}");
    assert_eq!(first["manifests"], 3, "{first}");
    let back = json(&ok(&["remote", "sync", "s3", "d2", "--json"]));
    assert_eq!(back["packs_copied"], first["packs_copied"], "{back}");
    // Nothing new: nothing copied, no segment.
    let again = json(&ok(&["remote", "sync", "d1", "s3", "--json"]));
    assert_eq!(again["packs_copied"], 0, "{again}");
    assert!(again["segment"].is_null(), "{again}");
    assert!(Path::new(d2).join("runs/wf/run-01.json").exists());
    let runs = ["run-00", "run-01", "run-02"];
    assert_eq!(clone_and_restore(&a, d2, &runs, &[]), 3);
    assert_eq!(
        clone_and_restore(&a, &s3, &["run-02"], &["--endpoint", &ep, "--allow-http"]),
        3
    );
    eprintln!(
        "sync requests: dir->s3 {} src + {} dst; s3->dir {} src + {} dst; again {} + {}",
        first["src_requests"],
        first["dst_requests"],
        back["src_requests"],
        back["dst_requests"],
        again["src_requests"],
        again["dst_requests"]
    );
}

#[test]
fn killed_sync_completes_when_run_again_and_runs_sync_alone() {
    let r = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (r.path().join("s"), r.path().join("d"), r.path().join("o"));
    let (src, dst, one) = (
        src.to_str().expect("utf8"),
        dst.to_str().expect("utf8"),
        one.to_str().expect("utf8"),
    );
    let a = Ws::new();
    small_packs(&a);
    make_runs(&a, "wf", 3, 3_000_000);
    a.ok(&["remote", "add", "s", src]);
    a.ok(&["push", "-q", "s"]);
    a.ok(&["remote", "add", "d", dst]);
    a.ok(&["remote", "add", "o", one]);
    // Killed at a few points (each run copies what the killed ones left), then run to the end.
    for ms in [5, 15, 40, 100] {
        let mut child = a
            .cmd(&["remote", "sync", "s", "d", "--jobs", "1"])
            .spawn()
            .expect("spawn sync");
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    let done = json(&a.ok(&["remote", "sync", "s", "d", "--json"]));
    eprintln!("sync after kills: {done}");
    // Every pack of the source is on the destination, byte for byte.
    let packs = |root: &str| {
        let mut v = Vec::new();
        crate::remote::all_files(&Path::new(root).join("packs"), &mut v);
        let mut v: Vec<(String, Vec<u8>)> = v
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(root).expect("under").display().to_string(),
                    std::fs::read(&p).expect("pack"),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (sp, dp) = (packs(src), packs(dst));
    assert!(sp.len() >= 9, "{} packs", sp.len());
    assert!(sp == dp, "the destination's packs differ from the source's");
    let again = json(&a.ok(&["remote", "sync", "s", "d", "--json"]));
    assert_eq!(again["packs_copied"], 0, "{again}");
    assert_eq!(
        clone_and_restore(&a, dst, &["run-00", "run-01", "run-02"], &[]),
        3
    );
    // One run: only the packs it needs, and only it published.
    let o = json(&a.ok(&["remote", "sync", "s", "o", "run-01", "--json"]));
    assert_eq!(o["runs"], serde_json::json!(["run-01"]), "{o}");
    // Its 3 MB and the shared input, plus the rest of the packs they share with the other
    // runs (packs are cut by size, not by run): less than everything.
    let copied = o["bytes"].as_u64().expect("bytes");
    let everything: u64 = sp.iter().map(|(_, b)| b.len() as u64).sum();
    assert!(
        copied > 3_000_000 && copied < everything,
        "one run's sync copied {copied} of {everything} bytes"
    );
    assert_eq!(clone_and_restore(&a, one, &["run-01"], &[]), 1);
    // Then everything: the packs listed in part before are listed whole.
    let rest = json(&a.ok(&["remote", "sync", "s", "o", "--json"]));
    assert_eq!(rest["runs"].as_array().expect("runs").len(), 2, "{rest}");
    assert_eq!(
        clone_and_restore(&a, one, &["run-00", "run-01", "run-02"], &[]),
        3
    );
}
