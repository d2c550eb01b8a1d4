//! Checkout in a clone: file content the clone lacks is downloaded and written into the files
//! as it arrives (not fetched into packs first and read back), verified, and kept in the store.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{pseudo_random, Ws};
use crate::remote::{all_files, json};

/// A workspace whose `data/` (written by `fill`) is added and pushed to a directory remote,
/// and a clone of that remote (in `ws/` of a second workspace). Returns the remote's temporary
/// home (the remote is its `remote/`), the tree hash and the cloning workspace.
fn pushed_then_cloned(fill: impl FnOnce(&Ws)) -> (tempfile::TempDir, String, Ws) {
    let r = tempfile::tempdir().expect("tmp");
    let url = r.path().join("remote");
    let url = url.to_str().expect("utf8");
    let a = Ws::new();
    fill(&a);
    let tree = a.add("data");
    a.ok(&["remote", "add", "origin", url]);
    a.ok(&["push", "-q"]);
    let b = Ws::bare();
    b.ok(&["clone", url, "ws"]);
    (r, tree, b)
}

/// Runs the store in the clone `b` made by [`pushed_then_cloned`].
fn in_clone(b: &Ws, args: &[&str]) -> std::process::Output {
    b.cmd(args)
        .current_dir(b.p("ws"))
        .output()
        .expect("run store")
}

/// Like [`in_clone`], and it must succeed; its stdout.
fn ok_in_clone(b: &Ws, args: &[&str]) -> String {
    let out = in_clone(b, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// No temporary file of a restore is left anywhere under `dir`.
fn no_leftovers(dir: &Path) {
    let mut files = Vec::new();
    if dir.exists() {
        all_files(dir, &mut files);
    }
    let tmp: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains(".store-"))
        .collect();
    assert!(tmp.is_empty(), "left behind: {tmp:?}");
}

#[test]
fn checkout_in_a_clone_writes_downloaded_chunks_straight_into_files() {
    let shared = pseudo_random(3_000_000, 1);
    let tail = pseudo_random(2_000_000, 2);
    let block = pseudo_random(1_500_000, 3);
    // Many chunks, a prefix the clone will already hold, the same content under two names,
    // a repeated block (the same chunks twice in one file), an empty file, an executable and
    // a symbolic link.
    let mut big = shared.clone();
    big.extend_from_slice(&tail);
    let mut twice = block.clone();
    twice.extend_from_slice(&block);
    let (r, tree, b) = pushed_then_cloned(|a| {
        a.write("data/big.bin", &big);
        a.write("data/copy/big-again.bin", &big);
        a.write("data/twice.bin", &twice);
        a.write("data/empty", b"");
        a.write_exe("data/tool.sh", b"#!/bin/sh\necho hi\n");
        for i in 0..40 {
            a.write(
                &format!("data/small/{i:02}.txt"),
                format!("line {i}\n").as_bytes(),
            );
        }
        std::os::unix::fs::symlink("big.bin", a.p("data/link")).expect("symlink");
    });
    let ws = b.p("ws");
    // The clone holds the first 3 MB of big.bin already (its own file sharing that prefix).
    let mut local = shared.clone();
    local.extend_from_slice(&pseudo_random(500_000, 9));
    std::fs::write(ws.join("mine.bin"), &local).expect("write");
    ok_in_clone(&b, &["add", "-q", "mine.bin"]);
    let packed = || -> u64 {
        crate::common::packs(&ws.join(".store"))
            .iter()
            .map(|p| std::fs::metadata(p).expect("pack").len())
            .sum()
    };
    let before = packed();
    let report = json(&ok_in_clone(
        &b,
        &["checkout", &tree, "--to", "restored", "--json"],
    ));
    assert_eq!(report["files"], 45, "{report}");
    let got = ws.join("restored");
    assert_eq!(std::fs::read(got.join("big.bin")).expect("big"), big);
    assert_eq!(
        std::fs::read(got.join("copy/big-again.bin")).expect("again"),
        big
    );
    assert_eq!(std::fs::read(got.join("twice.bin")).expect("twice"), twice);
    assert_eq!(std::fs::read(got.join("empty")).expect("empty"), b"");
    assert_eq!(
        std::fs::read(got.join("small/07.txt")).expect("small"),
        b"line 7\n"
    );
    let mode = std::fs::metadata(got.join("tool.sh"))
        .expect("tool")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(got.join("link")).expect("link"),
        Path::new("big.bin")
    );
    no_leftovers(&got);
    // Only what the clone lacked came down: big.bin's last 2 MB (its first 3 MB are mine.bin's
    // chunks), one copy of the repeated block, the small files.
    let fetched = packed() - before;
    assert!(
        (3_400_000..4_600_000).contains(&fetched),
        "fetched {fetched} bytes"
    );
    // What came down is in the store, verified: with the remote gone, another checkout (this
    // time a copy from packs, hard links too) needs nothing from it.
    ok_in_clone(&b, &["verify"]);
    std::fs::rename(r.path().join("remote"), r.path().join("gone")).expect("hide remote");
    ok_in_clone(
        &b,
        &["checkout", &tree, "--to", "again", "--link", "copy", "-q"],
    );
    assert_eq!(std::fs::read(ws.join("again/big.bin")).expect("big"), big);
    ok_in_clone(
        &b,
        &[
            "checkout", &tree, "--to", "linked", "--link", "hardlink", "-q",
        ],
    );
    assert_eq!(
        std::fs::read(ws.join("linked/twice.bin")).expect("twice"),
        twice
    );
}

#[test]
fn hard_links_in_a_clone_fetch_first() {
    let data = pseudo_random(2_500_000, 4);
    let (_r, tree, b) = pushed_then_cloned(|a| {
        a.write("data/f.bin", &data);
    });
    ok_in_clone(
        &b,
        &["checkout", &tree, "--to", "out", "--link", "hardlink"],
    );
    assert_eq!(std::fs::read(b.p("ws/out/f.bin")).expect("f"), data);
}

/// A chunk damaged on the remote stops the checkout, naming the key; no file is left half
/// written and nothing unverified is kept.
#[test]
fn damaged_chunk_leaves_no_partial_file() {
    let (r, tree, b) = pushed_then_cloned(|a| {
        a.write("data/f.bin", &pseudo_random(4_000_000, 6));
        for i in 0..20 {
            a.write(&format!("data/s{i}.txt"), format!("{i}\n").as_bytes());
        }
    });
    let mut packs = Vec::new();
    all_files(&r.path().join("remote/packs"), &mut packs);
    packs.sort_by_key(|f| std::fs::metadata(f).expect("meta").len());
    let data_pack = packs.last().expect("a data pack");
    let mut bytes = std::fs::read(data_pack).expect("pack");
    bytes[2_000_000] ^= 0x10;
    std::fs::write(data_pack, &bytes).expect("damage");

    let out = in_clone(&b, &["checkout", &tree, "--to", "restored"]);
    assert_eq!(out.status.code(), Some(store::exit::CORRUPT));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("packs/") && err.contains("hash"), "{err}");
    assert!(!b.p("ws/restored/f.bin").exists());
    no_leftovers(&b.p("ws/restored"));
    ok_in_clone(&b, &["verify"]);
}
