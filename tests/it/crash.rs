//! Crash safety: SIGKILL a writer or gc at many points; the store must still verify and hold
//! everything committed before, and gc must clean the leftovers.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{pseudo_random, Ws};

/// Delays (microseconds) spread over the life of an add/gc of a few MiB in a release build.
fn delays(n: usize, max_us: u64) -> Vec<u64> {
    let r = pseudo_random(n * 8, 0xC0FFEE);
    r.chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) % max_us)
        .collect()
}

fn check_committed(ws: &Ws, committed: &[(String, Vec<u8>)]) {
    let v = ws.run(&["verify"]);
    assert!(
        v.status.success(),
        "verify after kill: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    for (h, data) in committed {
        let out = ws.run(&["cat", h]);
        assert!(
            out.status.success(),
            "cat {h}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&out.stdout, data, "committed file {h} intact");
    }
}

#[test]
fn killed_adds_leave_a_verifiable_store_with_all_committed_data() {
    let ws = Ws::new();
    let base = pseudo_random(700_000, 1);
    ws.write("base.bin", &base);
    let mut committed = vec![(ws.add("base.bin"), base)];
    // Kill points spread over how long such an add takes on this machine (timed on one like
    // those below), so that most land mid-operation on a fast machine and a slow one alike.
    ws.write("probe/big.bin", &pseudo_random(6 << 20, 99));
    for j in 0..30 {
        ws.write(
            &format!("probe/s{j}"),
            &pseudo_random(3000, 9900 + j as u64),
        );
    }
    let t = std::time::Instant::now();
    ws.ok(&["add", "-q", "probe/big.bin", "probe"]);
    let span = (t.elapsed().as_micros() as u64 * 3 / 2).max(1_000);
    let mut killed_mid = 0;
    for (i, d) in delays(25, span).into_iter().enumerate() {
        let data = pseudo_random(6 << 20, 100 + i as u64);
        ws.write(&format!("v{i}/big.bin"), &data);
        for j in 0..30 {
            ws.write(
                &format!("v{i}/s{j}"),
                &pseudo_random(3000, (i * 100 + j) as u64),
            );
        }
        let mut child = ws
            .cmd(&["add", "-q", &format!("v{i}/big.bin"), &format!("v{i}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(d));
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        if out.status.success() {
            let h = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .expect("hash")
                .to_string();
            committed.push((h, data));
        } else {
            killed_mid += 1;
        }
        check_committed(&ws, &committed);
    }
    assert!(
        killed_mid >= 5,
        "most kills should land mid-operation (got {killed_mid})"
    );
    // gc removes the leftovers (orphan packs, temporary files) and keeps committed data.
    ws.ok(&["gc", "--yes"]);
    let tmp: Vec<_> = std::fs::read_dir(ws.p(".store/tmp"))
        .expect("tmp")
        .collect();
    assert!(tmp.is_empty(), "temporary files cleaned: {tmp:?}");
    let again: serde_json::Value = serde_json::from_str(&ws.ok(&["gc", "--json"])).expect("json");
    assert_eq!(again["orphan_packs"].as_array().map(Vec::len), Some(0));
    check_committed(&ws, &committed);
}

#[test]
fn killed_gc_leaves_a_verifiable_store_with_all_live_data() {
    let ws = Ws::new();
    let mut live = Vec::new();
    for (i, d) in delays(15, 60_000).into_iter().enumerate() {
        // Make garbage: two versions of a directory, the first superseded.
        for v in 0..2u64 {
            ws.write("d/a.bin", &pseudo_random(2 << 20, i as u64 * 10 + v));
            ws.write("d/b.bin", &pseudo_random(300_000, 7));
            ws.add("d");
        }
        let keep = pseudo_random(2 << 20, i as u64 * 10 + 1);
        let store = ws.open();
        let root = store
            .roots()
            .expect("roots")
            .into_iter()
            .find(|r| r.path.ends_with("/d"))
            .expect("root");
        let file = store.tree_manifest(&root.hash).expect("tree").entries[0]
            .kind
            .clone();
        drop(store);
        let store::manifest::EntryKind::File(fh) = file else {
            panic!("a.bin is a file")
        };
        live.retain(|(h, _): &(String, Vec<u8>)| h != &fh.to_hex());
        live.push((fh.to_hex(), keep));
        let mut child = ws
            .cmd(&["gc", "--yes", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(d));
        let _ = child.kill();
        let _ = child.wait();
        // Only the newest version of d is live; earlier `live` entries are superseded roots
        // that gc may legitimately remove, so check just the current one.
        check_committed(&ws, &live[live.len() - 1..]);
    }
    ws.ok(&["gc", "--yes", "--keep-last", "1"]);
    check_committed(&ws, &live[live.len() - 1..]);
}

/// A gc --keep-last killed at any point, then a complete gc: nothing live is lost (the second
/// gc writes replacement packs with the names the killed one left behind).
#[test]
fn killed_gc_keep_last_then_a_second_gc_loses_nothing() {
    let ws = Ws::new();
    let mut data = pseudo_random(4 << 20, 42);
    let versions = |ws: &Ws, data: &mut Vec<u8>, round: usize| -> String {
        let mut last = String::new();
        for v in 0..3usize {
            // Versions share most chunks, so the superseded ones leave partly dead packs.
            data[(round * 3 + v) % 5 * 800_000 + 1000] ^= 0x5a;
            ws.write("m/model.bin", data);
            ws.write(&format!("m/note{round}-{v}.txt"), b"small\n");
            last = ws.add("m");
        }
        last
    };
    // Time one complete gc of such a store, to spread the kills over it.
    versions(&ws, &mut data, 0);
    let t = std::time::Instant::now();
    ws.ok(&["gc", "--keep-last", "1", "--yes", "-q"]);
    let mut span = (t.elapsed().as_micros() as u64 * 3 / 2).max(2_000);
    let mut killed_mid = 0;
    // Twelve trials, more (up to 30) while fewer than three kills landed mid-gc: a loaded
    // machine makes gc's duration vary, so each kill is timed by the last complete gc.
    for (i, frac) in delays(30, 1_000).into_iter().enumerate() {
        if i >= 12 && killed_mid >= 3 {
            break;
        }
        let d = span * frac / 1_000;
        let h = versions(&ws, &mut data, i + 1);
        let mut child = ws
            .cmd(&["gc", "--keep-last", "1", "--yes", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(d));
        let _ = child.kill();
        if !child.wait().expect("wait").success() {
            killed_mid += 1;
        }
        let t = std::time::Instant::now();
        ws.ok(&["gc", "--keep-last", "1", "--yes", "-q"]);
        span = (t.elapsed().as_micros() as u64 * 3 / 2).max(2_000);
        let out = ws.p(&format!("out{i}"));
        let out_s = out.to_str().expect("utf8");
        let v = ws.run(&["verify"]);
        assert!(
            v.status.success(),
            "trial {i}: verify after a killed gc and a complete one: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        ws.ok(&["checkout", &h, "--to", out_s, "--link", "copy"]);
        assert!(
            std::fs::read(out.join("model.bin")).expect("restored") == data,
            "trial {i}: the kept version restores byte for byte"
        );
    }
    assert!(
        killed_mid >= 3,
        "kills should land mid-gc (got {killed_mid})"
    );
}
