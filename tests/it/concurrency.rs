//! Many writers at once: real processes adding to one store concurrently.

use std::process::Stdio;

use crate::common::{pseudo_random, Ws};

#[test]
fn eight_concurrent_adders_all_succeed_and_nothing_is_lost() {
    let ws = Ws::new();
    let shared = pseudo_random(600_000, 1000);
    for i in 0..8u64 {
        // Each writer has unique data plus data shared with all others (dedup races).
        ws.write(&format!("w{i}/own.bin"), &pseudo_random(1_500_000, i));
        ws.write(&format!("w{i}/shared.bin"), &shared);
        for j in 0..20u64 {
            ws.write(
                &format!("w{i}/small/{j}.txt"),
                format!("writer {i} file {j}\n").repeat(50).as_bytes(),
            );
        }
    }
    let children: Vec<_> = (0..8)
        .map(|i| {
            ws.cmd(&["add", "-q", &format!("w{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut hashes = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "writer {i} failed: {err}");
        assert!(!err.contains("locked"), "{err}");
        hashes.push(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .expect("hash")
                .to_string(),
        );
    }
    let ls = ws.ok(&["ls"]);
    for (i, h) in hashes.iter().enumerate() {
        assert!(ls.contains(h), "writer {i}'s root is listed");
        ws.ok(&["checkout", h, "--to", &format!("out{i}"), "--link", "copy"]);
        assert_eq!(
            std::fs::read(ws.p(&format!("out{i}/own.bin"))).expect("read"),
            pseudo_random(1_500_000, i as u64)
        );
        assert_eq!(
            std::fs::read(ws.p(&format!("out{i}/shared.bin"))).expect("read"),
            shared
        );
        assert_eq!(
            std::fs::read(ws.p(&format!("out{i}/small/7.txt"))).expect("read"),
            format!("writer {i} file 7\n").repeat(50).as_bytes()
        );
    }
    ws.ok(&["verify"]);
    // Duplicate chunks written by racing writers are reclaimed by gc, and data survives.
    ws.ok(&["gc", "--yes"]);
    ws.ok(&["verify"]);
    ws.ok(&["checkout", &hashes[3], "--to", "after_gc", "--link", "copy"]);
    assert_eq!(
        std::fs::read(ws.p("after_gc/shared.bin")).expect("read"),
        shared
    );
}

#[test]
fn gc_refuses_to_run_while_a_writer_holds_the_store() {
    let ws = Ws::new();
    let store = ws.open();
    let _held = store.lock(store::LockMode::Shared).expect("shared lock");
    let o = ws.run(&["gc", "--yes"]);
    assert_eq!(
        o.status.code(),
        Some(store::exit::BUSY),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("busy"));
}
