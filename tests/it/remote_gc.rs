//! `store remote gc` and `store remote du` against a directory remote: dry runs delete
//! nothing; packs of killed pushes go once older than the grace period, younger ones stay;
//! superseded segments go and every run stays restorable byte for byte; a torture run of
//! concurrent pushers, readers and gc loses nothing; du's per-run and shared figures match the
//! data pushed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{pseudo_random, Ws};
use crate::remote::{json, make_runs, run_ok};

fn ok_in(ws: &Ws, dir: &Path, args: &[&str]) -> String {
    run_ok(ws.cmd(args).current_dir(dir))
}

/// Every file under `dir` (relative path, size), sorted.
fn tree(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    crate::remote::all_files(dir, &mut files);
    for f in files {
        let rel = f
            .strip_prefix(dir)
            .expect("under")
            .to_string_lossy()
            .into_owned();
        out.push((rel, std::fs::metadata(&f).expect("meta").len()));
    }
    out.sort();
    out
}

/// A file that looks like a pack a killed push uploaded (no segment names it), written
/// `age` ago.
fn fake_orphan_pack(remote: &Path, seed: u64, age: Duration) -> PathBuf {
    let id = blake3::hash(&seed.to_le_bytes()).to_hex().to_string();
    let p = remote.join(format!("packs/{}/{id}.pack", &id[..2]));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, pseudo_random(40_000, seed)).expect("write pack");
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(SystemTime::now() - age).expect("set mtime");
    p
}

/// Clones `url` into `b/<dir>`, checks out each run of `runs` (id, [(path, bytes)]) and
/// compares every byte; verify --remote must be clean.
/// A run's ID and its files (path, bytes).
type RunFiles = (String, Vec<(String, Vec<u8>)>);

fn restore_all(url: &str, runs: &[RunFiles], dir: &str) {
    let b = Ws::bare();
    let c = json(&run_ok(&mut b.cmd(&["clone", url, dir, "--json"])));
    let ws = b.p(dir);
    assert_eq!(c["runs"].as_array().expect("runs").len(), runs.len(), "{c}");
    for (i, (id, files)) in runs.iter().enumerate() {
        let to = format!("restored-{i}");
        ok_in(&b, &ws, &["checkout", id, "--to", &to]);
        for (path, bytes) in files {
            let got = std::fs::read(ws.join(&to).join(path))
                .unwrap_or_else(|e| panic!("run {id}: {path}: {e}"));
            assert!(got == *bytes, "run {id}: {path} differs");
        }
    }
    let v = json(&ok_in(&b, &ws, &["verify", "--remote", "origin", "--json"]));
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
}

/// The files of `make_runs`' run `i`.
fn made_run(ws: &Ws, i: usize) -> RunFiles {
    let id = format!("run-{i:02}");
    let out = format!("out/{id}.bin");
    let files = vec![
        (
            "in/shared.dat".to_string(),
            std::fs::read(ws.p("in/shared.dat")).expect("input"),
        ),
        (out.clone(), std::fs::read(ws.p(&out)).expect("output")),
    ];
    (id, files)
}

#[test]
fn remote_gc_collects_killed_push_packs_after_the_grace_period_only() {
    let r = tempfile::tempdir().expect("tmp");
    let remote = r.path().join("remote");
    let url = remote.to_str().expect("utf8");
    let a = Ws::new();
    make_runs(&a, "wf", 3, 300_000);
    a.ok(&["remote", "add", "origin", url]);
    a.ok(&["push", "-q"]);
    let old = fake_orphan_pack(&remote, 1, Duration::from_secs(7200));
    let young = fake_orphan_pack(&remote, 2, Duration::from_secs(60));
    // A partial upload a killed writer left long ago.
    let tmp = remote.join("tmp/123-1-1.tmp");
    std::fs::write(&tmp, b"half").expect("tmp");
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .expect("open")
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .expect("mtime");

    // A dry run names the old pack and the partial upload, deletes nothing.
    let before = tree(&remote);
    let d = json(&a.ok(&["remote", "gc", "--json"]));
    assert_eq!(d["deleted"], false);
    let packs: Vec<&str> = d["packs"]
        .as_array()
        .expect("packs")
        .iter()
        .map(|p| p["key"].as_str().expect("key"))
        .collect();
    let old_key = old.strip_prefix(&remote).expect("under").to_string_lossy();
    assert_eq!(packs, vec![old_key.as_ref()], "{d}");
    assert_eq!(d["young_unreferenced_packs"], 1, "{d}");
    assert_eq!(d["partial_uploads"][0]["key"], "tmp/123-1-1.tmp", "{d}");
    assert_eq!(d["bytes"], 40_000 + 4, "{d}");
    assert_eq!(tree(&remote), before, "a dry run deleted something");
    let human = a.ok(&["remote", "gc"]);
    assert!(
        human.contains("would delete") && human.contains(old_key.as_ref()),
        "{human}"
    );

    // --yes: the old pack and the partial upload go; the young pack and everything named stay.
    let y = json(&a.ok(&["remote", "gc", "--yes", "--json"]));
    assert_eq!(y["deleted"], true);
    assert!(!old.exists() && !tmp.exists());
    assert!(
        young.exists(),
        "a pack younger than the grace period was deleted"
    );
    let after = tree(&remote);
    assert_eq!(after.len(), before.len() - 2);
    // A second cycle finds nothing more.
    let again = json(&a.ok(&["remote", "gc", "--yes", "--json"]));
    assert_eq!(again["packs"], serde_json::json!([]));
    // With a grace period shorter than its age, the young one goes too.
    a.ok(&["remote", "gc", "--yes", "--grace", "30s"]);
    assert!(!young.exists());
    let runs: Vec<_> = (0..3).map(|i| made_run(&a, i)).collect();
    restore_all(url, &runs, "c");
}

#[test]
fn remote_gc_removes_superseded_segments_and_changes_nothing_readers_see() {
    let r = tempfile::tempdir().expect("tmp");
    let remote = r.path().join("remote");
    let url = remote.to_str().expect("utf8");
    let a = Ws::new();
    a.ok(&["remote", "add", "origin", url]);
    let mut expected = Vec::new();
    for i in 0..7usize {
        let id = format!("run-{i:02}");
        let out = format!("out/{id}.bin");
        a.write(&out, &pseudo_random(30_000 + i * 100, 50 + i as u64));
        a.ok(&[
            "add", "-q", "--wf", "wf", "--run", &id, "--job", "j", "--role", "output", &out,
        ]);
        a.ok(&["seal", "-q", &id]);
        run_ok(a.cmd(&["push", "-q"]).env("STORE_MERGE_SEGMENTS", "3"));
        expected.push((
            id,
            vec![(out.clone(), std::fs::read(a.p(&out)).expect("out"))],
        ));
    }
    let count = |d: &str| std::fs::read_dir(remote.join(d)).expect("dir").count();
    // Each seal pushes, then each push: 14 plain segments, merged every third.
    let (plain, merged) = (count("index"), count("merged"));
    assert!(plain >= 7 && merged >= 2, "{plain} plain, {merged} merged");
    let largest = {
        let mut m: Vec<String> = std::fs::read_dir(remote.join("merged"))
            .expect("merged")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        m.sort();
        m.pop().expect("a merged segment")
    };
    let covered: usize = largest[..10].parse().expect("count");
    let log_before = {
        let b = Ws::bare();
        run_ok(&mut b.cmd(&["clone", url, "w", "--json"]));
        ok_in(&b, &b.p("w"), &["runs", "--json"])
    };
    // The merged segments are younger than the default grace period: nothing goes.
    let d = json(&a.ok(&["remote", "gc", "--yes", "--json"]));
    assert_eq!(d["segments"], serde_json::json!([]), "{d}");
    assert_eq!(
        d["young_superseded_segments"].as_u64(),
        Some((covered + merged - 1) as u64),
        "{d}"
    );
    assert_eq!((count("index"), count("merged")), (plain, merged));
    // A short grace period: the six plain segments the larger merged one covers and the
    // smaller merged one go; the seventh plain segment stays.
    std::thread::sleep(Duration::from_millis(1100));
    let y = json(&a.ok(&["remote", "gc", "--yes", "--grace", "1s", "--json"]));
    assert_eq!(
        y["segments"].as_array().expect("segments").len(),
        covered + merged - 1,
        "{y}"
    );
    assert_eq!((count("index"), count("merged")), (plain - covered, 1));
    let b = Ws::bare();
    run_ok(&mut b.cmd(&["clone", url, "w", "--json"]));
    assert_eq!(ok_in(&b, &b.p("w"), &["runs", "--json"]), log_before);
    restore_all(url, &expected, "c");
    // The pusher's cached view still pushes correctly, and merges again.
    a.write("out/late.bin", &pseudo_random(20_000, 99));
    a.ok(&[
        "add",
        "-q",
        "--wf",
        "wf",
        "--run",
        "late",
        "--job",
        "j",
        "--role",
        "output",
        "out/late.bin",
    ]);
    a.ok(&["seal", "-q", "late"]);
    run_ok(a.cmd(&["push", "-q"]).env("STORE_MERGE_SEGMENTS", "2"));
    expected.push((
        "late".into(),
        vec![("out/late.bin".into(), pseudo_random(20_000, 99))],
    ));
    restore_all(url, &expected, "c2");
}

/// Pack bytes a directory remote holds.
fn remote_pack_bytes(remote: &Path) -> u64 {
    tree(remote)
        .iter()
        .filter(|(k, _)| k.starts_with("packs/"))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn remote_gc_keep_last_removes_runs_and_reclaims_their_packs() {
    let r = tempfile::tempdir().expect("tmp");
    let remote = r.path().join("remote");
    let url = remote.to_str().expect("utf8");
    let a = Ws::new();
    // The remote first: each seal pushes its run, so each run's output has packs of its own.
    a.ok(&["remote", "add", "origin", url]);
    make_runs(&a, "wf", 4, 100_000);
    let before = tree(&remote);
    let bytes_before = remote_pack_bytes(&remote);

    // A dry run names the runs and the packs, and changes nothing.
    let d = json(&a.ok(&[
        "remote",
        "gc",
        "--keep-last",
        "2",
        "--grace",
        "1s",
        "--json",
    ]));
    let sel: Vec<&str> = d["runs_selected"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run_id"].as_str().expect("id"))
        .collect();
    assert_eq!(sel, vec!["run-01", "run-00"], "{d}");
    for r in d["runs_selected"].as_array().expect("runs") {
        let u = r["unique_bytes"].as_u64().expect("unique");
        assert!((100_000..110_000).contains(&u), "{r}");
    }
    assert!(
        !d["packs_condemned"].as_array().expect("c").is_empty(),
        "{d}"
    );
    assert_eq!(tree(&remote), before, "a dry run changed the remote");
    let human = a.ok(&["remote", "gc", "--keep-last", "2"]);
    assert!(human.contains("would remove run wf/run-00"), "{human}");
    // Sealed moments ago: none is older than a day.
    let d = json(&a.ok(&[
        "remote",
        "gc",
        "--keep-last",
        "1",
        "--older-than",
        "1d",
        "--json",
    ]));
    assert_eq!(d["runs_selected"], serde_json::json!([]), "{d}");

    // Cycle 1: the runs go from every reader's view, their packs are condemned (still there).
    let y = json(&a.ok(&[
        "remote",
        "gc",
        "--yes",
        "--keep-last",
        "2",
        "--grace",
        "1s",
        "--json",
    ]));
    assert!(y["tombstones"].is_string(), "{y}");
    assert_eq!(y["packs"], serde_json::json!([]), "{y}");
    assert!(!remote.join("runs/wf/run-00.json").exists());
    assert!(remote.join("runs/wf/run-02.json").exists());
    assert_eq!(remote_pack_bytes(&remote), bytes_before);
    let b = Ws::bare();
    let c = json(&run_ok(&mut b.cmd(&["clone", url, "w", "--json"])));
    assert_eq!(c["runs"].as_array().expect("runs").len(), 2, "{c}");
    // A new run pushed meanwhile; the removed run pushed again is not published again.
    a.write("out/run-04.bin", &pseudo_random(50_000, 404));
    a.ok(&[
        "add",
        "-q",
        "--role",
        "output",
        "--wf",
        "wf",
        "--run",
        "run-04",
        "--job",
        "j1",
        "out/run-04.bin",
    ]);
    a.ok(&["seal", "-q", "run-04"]);
    a.ok(&["push", "-q", "origin", "run-00"]);
    // Cycle 2, after the grace period: the packs only the removed runs needed are deleted.
    std::thread::sleep(Duration::from_millis(3200));
    let y2 = json(&a.ok(&["remote", "gc", "--yes", "--grace", "1s", "--json"]));
    let deleted = y2["packs"].as_array().expect("packs");
    assert!(!deleted.is_empty(), "{y2}");
    let freed: u64 = deleted
        .iter()
        .map(|p| p["size"].as_u64().expect("size"))
        .sum();
    assert!(freed >= 100_000, "{y2}");
    assert!(remote_pack_bytes(&remote) < bytes_before);
    let mut kept: Vec<_> = (2..4).map(|i| made_run(&a, i)).collect();
    kept.push((
        "run-04".into(),
        vec![("out/run-04.bin".into(), pseudo_random(50_000, 404))],
    ));
    restore_all(url, &kept, "c");
    // A third cycle finds nothing more to do.
    let y3 = json(&a.ok(&["remote", "gc", "--yes", "--grace", "1s", "--json"]));
    assert_eq!(y3["packs"], serde_json::json!([]), "{y3}");
    assert_eq!(y3["packs_condemned"], serde_json::json!([]), "{y3}");
    restore_all(url, &kept, "c2");
}

#[test]
fn remote_du_counts_unique_and_shared_bytes() {
    let r = tempfile::tempdir().expect("tmp");
    let remote = r.path().join("remote");
    let url = remote.to_str().expect("utf8");
    let a = Ws::new();
    // Three runs: a 200,000-byte input they share, and 100,000 bytes of output each.
    make_runs(&a, "wf", 3, 100_000);
    // A second workflow's run shares the input too.
    a.write("out/other.bin", &pseudo_random(50_000, 7));
    a.ok(&[
        "add",
        "-q",
        "--role",
        "input",
        "--wf",
        "wf2",
        "--run",
        "o1",
        "--job",
        "j",
        "in/shared.dat",
    ]);
    a.ok(&[
        "add",
        "-q",
        "--role",
        "output",
        "--wf",
        "wf2",
        "--run",
        "o1",
        "--job",
        "j",
        "out/other.bin",
    ]);
    a.ok(&["seal", "-q", "o1"]);
    a.ok(&["remote", "add", "origin", url]);
    a.ok(&["push", "-q"]);
    let u = json(&a.ok(&["remote", "du", "--json"]));
    let runs = u["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 4, "{u}");
    let within = |v: &serde_json::Value, lo: u64, hi: u64| {
        let n = v.as_u64().expect("number");
        assert!((lo..hi).contains(&n), "{n} not in {lo}..{hi}: {u}");
    };
    for r in runs {
        let out = if r["workflow"] == "wf" {
            100_000
        } else {
            50_000
        };
        // Random data does not compress: stored bytes are the data plus small records.
        within(&r["unique_bytes"], out, out + 10_000);
        within(&r["shared_bytes"], 200_000, 202_000);
        assert_eq!(
            r["bytes"].as_u64(),
            Some(r["unique_bytes"].as_u64().expect("u") + r["shared_bytes"].as_u64().expect("s"))
        );
        assert_eq!(r["missing"], 0);
    }
    let wfs = u["workflows"].as_array().expect("workflows");
    assert_eq!(wfs.len(), 2);
    assert_eq!(
        (wfs[0]["workflow"].as_str(), wfs[0]["runs"].as_u64()),
        (Some("wf"), Some(3))
    );
    // The input is shared across workflows; each workflow's outputs are its own.
    within(&wfs[0]["unique_bytes"], 300_000, 320_000);
    within(&wfs[0]["shared_bytes"], 200_000, 202_000);
    within(&wfs[1]["unique_bytes"], 50_000, 55_000);
    within(&u["shared_bytes"], 200_000, 202_000);
    let human = a.ok(&["remote", "du"]);
    assert!(human.contains("run-02") && human.contains("wf2"), "{human}");
    assert!(u["requests"].as_u64().expect("requests") > 0);
}

/// Pushers of new runs, readers (clone, pull) and gc cycles removing all but the newest runs
/// of each workflow with a short grace period, all at once on one directory remote;
/// afterwards exactly the kept runs are on the remote, each restores byte for byte, and
/// verify --remote is clean.
#[test]
fn remote_gc_torture() {
    const PUSHERS: usize = 4;
    const READERS: usize = 2;
    const KEEP: usize = 6;
    let keep = KEEP.to_string();
    let secs: u64 = std::env::var("STORE_GC_TORTURE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let grace = "5s";
    let r = tempfile::tempdir().expect("tmp");
    let remote = r.path().join("remote");
    let url = remote.to_str().expect("utf8").to_string();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (pushed, reads, cycles) = std::thread::scope(|s| {
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|p| {
                let url = url.clone();
                s.spawn(move || {
                    let ws = Ws::new();
                    ws.ok(&["remote", "add", "origin", &url]);
                    ws.write("in/common.dat", &pseudo_random(60_000, 1));
                    let mut runs = Vec::new();
                    let mut pushes = 0u64;
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let id = format!("p{p}-r{i}");
                        let wf = format!("wf{p}");
                        let out = format!("out/{id}.bin");
                        let data =
                            pseudo_random(20_000 + (i as usize % 5) * 3000, (p as u64) << 32 | i);
                        ws.write(&out, &data);
                        for (role, path) in [("input", "in/common.dat"), ("output", out.as_str())] {
                            ws.ok(&[
                                "add", "-q", "--role", role, "--wf", &wf, "--run", &id, "--job",
                                "j", path,
                            ]);
                        }
                        ws.ok(&["seal", "-q", &id]);
                        // Every third push of pusher 0 is killed mid-way first, then resumed.
                        if p == 0 && i % 3 == 2 {
                            let mut child = ws
                                .cmd(&["push", "-q", "origin", &id])
                                .spawn()
                                .expect("spawn push");
                            std::thread::sleep(Duration::from_millis(15));
                            let _ = child.kill();
                            let _ = child.wait();
                        }
                        let t = Instant::now();
                        // The run by name: `push` without RUN would also publish every path
                        // version, which keeps the objects of removed runs alive (19.9).
                        run_ok(
                            ws.cmd(&["push", "-q", "origin", &id])
                                .env("STORE_MERGE_SEGMENTS", "3"),
                        );
                        assert!(
                            t.elapsed() < Duration::from_secs(5),
                            "a push took longer than the grace period"
                        );
                        pushes += 1;
                        runs.push((
                            id,
                            vec![
                                ("in/common.dat".to_string(), pseudo_random(60_000, 1)),
                                (out, data),
                            ],
                        ));
                        i += 1;
                    }
                    (runs, pushes)
                })
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|k| {
                let url = url.clone();
                let stop = &stop;
                s.spawn(move || {
                    let b = Ws::bare();
                    let mut n = 0u64;
                    std::thread::sleep(Duration::from_millis(500));
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let dir = format!("c{n}");
                        let out = b
                            .cmd(&["clone", &url, &dir, "--json"])
                            .output()
                            .expect("clone");
                        if !out.status.success() {
                            // The remote is not created until the first push (which may
                            // create it right after this clone looked: the error is the one
                            // of a missing marker, not whether the remote exists now).
                            let e = String::from_utf8_lossy(&out.stderr).into_owned();
                            assert!(
                                e.contains("not a store remote (no store-remote.json"),
                                "reader {k} clone failed: {e}"
                            );
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                        let ws = b.p(&dir);
                        // A pull of everything, fetching content as gc runs.
                        ok_in(&b, &ws, &["pull", "-q"]);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let keep = &keep;
        let url = &url;
        let gc = s.spawn(move || {
            let a = Ws::new();
            a.ok(&["remote", "add", "origin", url]);
            let mut cycles = 0u64;
            let mut deleted = (0u64, 0u64, 0u64, 0u64, 0u64);
            std::thread::sleep(Duration::from_millis(300));
            while Instant::now() < deadline {
                if remote_exists(url) {
                    // What a push killed for good leaves: a pack no segment will ever name.
                    fake_orphan_pack(Path::new(url), 1000 + cycles, Duration::ZERO);
                    let y = json(&a.ok(&[
                        "remote",
                        "gc",
                        "--yes",
                        "--grace",
                        grace,
                        "--keep-last",
                        keep,
                        "--json",
                    ]));
                    deleted.0 += y["packs"].as_array().expect("packs").len() as u64;
                    deleted.1 += y["segments"].as_array().expect("segs").len() as u64;
                    deleted.2 += y["runs_selected"].as_array().expect("runs").len() as u64;
                    deleted.3 += y["packs_condemned"].as_array().expect("c").len() as u64;
                    deleted.4 += y["packs_revived"].as_array().expect("r").len() as u64;
                    cycles += 1;
                }
                std::thread::sleep(Duration::from_millis(400));
            }
            (cycles, deleted)
        });
        let results: Vec<_> = pushers
            .into_iter()
            .map(|h| h.join().expect("pusher"))
            .collect();
        let gc = gc.join().expect("gc");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|h| h.join().expect("reader")).sum();
        (results, reads, gc)
    });
    let all: usize = pushed.iter().map(|(r, _)| r.len()).sum();
    // The newest KEEP runs of each pusher's workflow are the ones kept.
    let runs: Vec<_> = pushed
        .iter()
        .flat_map(|(r, _)| r[r.len().saturating_sub(KEEP)..].to_vec())
        .collect();
    let pushes: u64 = pushed.iter().map(|(_, n)| n).sum();
    // Two last cycles, the grace period (and the condemnation margin) apart: the runs pushed
    // since the last removal go, and then the packs they alone needed.
    let a = Ws::new();
    a.ok(&["remote", "add", "origin", &url]);
    let gc_args = [
        "remote",
        "gc",
        "--yes",
        "--grace",
        grace,
        "--keep-last",
        &keep,
        "--json",
    ];
    std::thread::sleep(Duration::from_secs(5));
    let first = json(&a.ok(&gc_args));
    std::thread::sleep(Duration::from_secs(7));
    let last = json(&a.ok(&gc_args));
    assert_eq!(last["runs_selected"], serde_json::json!([]), "{last}");
    restore_all(&url, &runs, "final");
    // Every orphan went, once older than the grace period.
    for c in 0..cycles.0 {
        let id = blake3::hash(&(1000 + c).to_le_bytes()).to_hex().to_string();
        let p = Path::new(&url).join(format!("packs/{}/{id}.pack", &id[..2]));
        assert!(!p.exists(), "orphan pack {c} survived");
    }
    let (cycles, (packs_deleted, segs_deleted, removed_during, condemned, revived)) = cycles;
    let count = |v: &serde_json::Value, k: &str| v[k].as_array().expect(k).len();
    eprintln!(
        "gc torture: {all} runs pushed, {} kept (newest {KEEP} per workflow), {} removed, {pushes} pushes, {reads} clones+pulls, {} gc cycles, {} packs and {} segments deleted during ({condemned} packs condemned, {revived} revived), {} packs and {} segments at the end, 0 lost objects",
        runs.len(),
        removed_during as usize + count(&first, "runs_selected"),
        cycles + 2,
        packs_deleted,
        segs_deleted,
        count(&first, "packs") + count(&last, "packs"),
        count(&first, "segments") + count(&last, "segments")
    );
    assert_eq!(
        removed_during as usize + count(&first, "runs_selected"),
        all - runs.len()
    );
    assert!(all >= PUSHERS * (KEEP + 2), "too few runs: {all}");
    assert!(cycles >= 5, "too few gc cycles: {cycles}");
    assert!(
        segs_deleted > 0,
        "gc deleted no superseded segment during the run"
    );
}

fn remote_exists(url: &str) -> bool {
    Path::new(url).join("store-remote.json").exists()
}

/// The same on a real S3-compatible server (moto): ages come from `LastModified`, deletes are
/// `DeleteObject`. A killed push's pack goes after the grace period; removed runs' packs go
/// two cycles later; the kept run restores byte for byte and verify --remote is clean.
#[test]
fn s3_remote_gc_reclaims_and_keeps_what_runs_need() {
    let Some(ep) = crate::remote::s3_endpoint() else {
        return;
    };
    let bucket = crate::remote::new_bucket(&ep, "gc");
    let url = format!("s3://{bucket}/store");
    let a = Ws::new();
    let ok = |args: &[&str]| run_ok(crate::remote::with_s3_env(&mut a.cmd(args)));
    ok(&[
        "remote",
        "add",
        "origin",
        &url,
        "--endpoint",
        &ep,
        "--allow-http",
    ]);
    make_runs(&a, "wf", 3, 100_000);
    // The seals' pushes had no credentials (pending): each run pushed by name now.
    for id in ["run-00", "run-01", "run-02"] {
        ok(&["push", "-q", "origin", id]);
    }
    // A pack a killed push left: named like a pack, named by no segment.
    let mut options = std::collections::BTreeMap::new();
    options.insert("endpoint".to_string(), ep.clone());
    options.insert("allow_http".to_string(), "true".to_string());
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIATESTKEY");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", crate::remote::SECRET);
    std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    let backend = store::remote::RemoteSpec {
        url: url.clone(),
        options,
    }
    .open()
    .expect("open s3");
    let id = blake3::hash(b"killed").to_hex().to_string();
    let orphan = format!("packs/{}/{id}.pack", &id[..2]);
    assert!(backend
        .put_new(&orphan, pseudo_random(30_000, 3))
        .expect("put orphan"));
    let d = json(&ok(&["remote", "gc", "--json"]));
    assert_eq!(d["packs"], serde_json::json!([]), "{d}");
    assert_eq!(d["young_unreferenced_packs"], 1, "{d}");
    std::thread::sleep(Duration::from_millis(2100));
    let y = json(&ok(&[
        "remote",
        "gc",
        "--yes",
        "--grace",
        "1s",
        "--keep-last",
        "1",
        "--json",
    ]));
    assert_eq!(y["packs"][0]["key"], orphan.as_str(), "{y}");
    assert_eq!(y["runs_selected"].as_array().expect("runs").len(), 2, "{y}");
    assert_eq!(backend.head(&orphan).expect("head"), None);
    std::thread::sleep(Duration::from_millis(3300));
    let y2 = json(&ok(&["remote", "gc", "--yes", "--grace", "1s", "--json"]));
    let freed: u64 = y2["packs"]
        .as_array()
        .expect("packs")
        .iter()
        .map(|p| p["size"].as_u64().expect("size"))
        .sum();
    assert!(freed >= 100_000, "{y2}");
    for p in y2["packs"].as_array().expect("packs") {
        let key = p["key"].as_str().expect("key");
        assert_eq!(backend.head(key).expect("head"), None, "{key} still there");
    }
    let b = Ws::bare();
    let c = json(&run_ok(crate::remote::with_s3_env(&mut b.cmd(&[
        "clone",
        &url,
        "w",
        "--endpoint",
        &ep,
        "--allow-http",
        "--json",
    ]))));
    assert_eq!(c["runs"].as_array().expect("runs").len(), 1, "{c}");
    let ws = b.p("w");
    run_ok(crate::remote::with_s3_env(
        b.cmd(&["checkout", "run-02", "--to", "r"]).current_dir(&ws),
    ));
    let (_, files) = made_run(&a, 2);
    for (path, bytes) in files {
        assert!(
            std::fs::read(ws.join("r").join(&path)).expect("restored") == bytes,
            "{path}"
        );
    }
    let v = json(&run_ok(crate::remote::with_s3_env(
        b.cmd(&["verify", "--remote", "origin", "--json"])
            .current_dir(&ws),
    )));
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    eprintln!(
        "s3 gc: cycle 1 {} requests, cycle 2 {} requests",
        y["requests"], y2["requests"]
    );
}
