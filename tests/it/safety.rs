//! Never lose data, never write outside the target: gc after an interrupted gc, and checkout
//! through symbolic links.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{packs, pseudo_random, Ws};

/// Copies a whole workspace (store included), as a crash would have left it.
fn copy_ws(from: &Ws) -> Ws {
    let to = Ws::bare();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.path().display()))
        .arg(to.path())
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a");
    to
}

/// A store with three versions of one path (sharing most chunks, so `--keep-last 1` repacks
/// instead of deleting) and five small adds (merged by any gc).
fn store_with_history() -> (Ws, String, Vec<u8>) {
    let ws = Ws::new();
    let mut data = pseudo_random(3 << 20, 7);
    let mut last = String::new();
    for v in 0..3u8 {
        data[(v as usize + 1) * 700_000] ^= 0xff;
        ws.write("model.bin", &data);
        last = ws.add("model.bin");
    }
    for i in 0..5 {
        ws.write(
            &format!("small{i}.txt"),
            format!("small file {i}\n").as_bytes(),
        );
        ws.add(&format!("small{i}.txt"));
    }
    (ws, last, data)
}

fn pack_names(ws: &Ws) -> BTreeSet<PathBuf> {
    packs(&ws.p(".store"))
        .into_iter()
        .map(|p| p.strip_prefix(ws.p(".store")).expect("under").to_path_buf())
        .collect()
}

/// verify is clean and `hash` restores exactly `data`.
fn assert_intact(ws: &Ws, hash: &str, data: &[u8], what: &str) {
    let v = ws.run(&["verify"]);
    assert!(
        v.status.success(),
        "{what}: verify exits {:?}: {}{}",
        v.status.code(),
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let out = ws.p(&format!("restored-{}", std::process::id()));
    ws.ok(&[
        "checkout",
        hash,
        "--to",
        out.to_str().expect("utf8"),
        "--link",
        "copy",
    ]);
    let got = std::fs::read(out.join("model.bin")).expect("restored file");
    assert!(got == data, "{what}: restored bytes differ");
}

/// Puts into `to` the packs a completed gc of `done` wrote (what an interrupted gc leaves
/// behind once it renamed its replacement packs into place).
fn plant_replacements(done: &Ws, before: &BTreeSet<PathBuf>, to: &Ws) -> usize {
    let new: Vec<_> = pack_names(done).difference(before).cloned().collect();
    for rel in &new {
        let dest = to.p(".store").join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(done.p(".store").join(rel), &dest).expect("copy pack");
    }
    new.len()
}

fn gc_after_interrupted_gc(args: &[&str], reindex_first: bool) {
    let (ws, last, data) = store_with_history();
    let before = pack_names(&ws);
    let interrupted = copy_ws(&ws);
    ws.ok(args);
    assert_intact(&ws, &last, &data, "the completed gc");
    let planted = plant_replacements(&ws, &before, &interrupted);
    assert!(planted > 0, "the gc wrote replacement packs");
    if reindex_first {
        interrupted.ok(&["reindex"]);
    }
    interrupted.ok(args);
    assert_intact(&interrupted, &last, &data, "a gc after an interrupted gc");
    // And once more: a second gc finds nothing to lose either.
    interrupted.ok(args);
    assert_intact(&interrupted, &last, &data, "a second gc");
}

#[test]
fn gc_keep_last_after_an_interrupted_gc_loses_nothing() {
    gc_after_interrupted_gc(&["gc", "--keep-last", "1", "--yes"], false);
}

#[test]
fn gc_after_an_interrupted_gc_loses_nothing() {
    gc_after_interrupted_gc(&["gc", "--yes"], false);
}

#[test]
fn gc_after_reindex_adopted_an_interrupted_gcs_packs_loses_nothing() {
    gc_after_interrupted_gc(&["gc", "--keep-last", "1", "--yes"], true);
    gc_after_interrupted_gc(&["gc", "--yes"], true);
}

const RUN: &str = "0d5c1e5a-aaaa-bbbb-cccc-000011112222";

fn record(ws: &Ws, job: &str, role: &str, path: &str) {
    ws.ok(&[
        "add", "-q", "--no-env", "--role", role, "--wf", "escape", "--run", RUN, "--job", job, path,
    ]);
}

/// Nothing at all was written into `victim`.
fn assert_untouched(victim: &Path) {
    let left: Vec<_> = std::fs::read_dir(victim)
        .expect("victim dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "checkout wrote outside its target: {left:?}"
    );
}

fn assert_refused_link(out: &std::process::Output, link: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(store::exit::BAD_PATH), "{err}");
    assert!(
        err.contains("symbolic link") && err.contains(link),
        "the error names the link {link}: {err}"
    );
}

#[test]
fn run_checkout_never_writes_through_a_link_it_restored_itself() {
    // Job 1 records x/l/pwned while x/l is a directory; then x/l becomes a link to a victim
    // directory and job 2 records x. A checkout restores x (with the link), then x/l/pwned.
    let ws = Ws::new();
    let victim = tempfile::tempdir().expect("victim");
    ws.write("x/l/pwned", b"written through a link\n");
    record(&ws, "j1", "output", "x/l/pwned");
    std::fs::remove_dir_all(ws.p("x/l")).expect("rm");
    std::os::unix::fs::symlink(victim.path(), ws.p("x/l")).expect("symlink");
    record(&ws, "j2", "output", "x");
    ws.ok(&["seal", RUN]);
    let out = ws.run(&["checkout", RUN, "--to", "out"]);
    assert_untouched(victim.path());
    assert_refused_link(&out, "out/x/l");
    // The link itself was restored as a link, pointing where it was recorded.
    let restored = std::fs::read_link(ws.p("out/x/l")).expect("x/l restored as a link");
    assert_eq!(restored, victim.path());
}

#[test]
fn run_checkout_never_follows_a_link_already_inside_the_target() {
    let ws = Ws::new();
    let victim = tempfile::tempdir().expect("victim");
    let data = pseudo_random(50_000, 3);
    ws.write("data/in.bin", &data);
    record(&ws, "j1", "input", "data/in.bin");
    ws.ok(&["seal", RUN]);
    std::fs::create_dir_all(ws.p("out")).expect("mkdir");
    std::os::unix::fs::symlink(victim.path(), ws.p("out/data")).expect("symlink");
    let out = ws.run(&["checkout", RUN, "--to", "out"]);
    assert_untouched(victim.path());
    assert_refused_link(&out, "out/data");
    // Into a clean target the same run restores byte for byte.
    ws.ok(&["checkout", RUN, "--to", "clean"]);
    assert!(std::fs::read(ws.p("clean/data/in.bin")).expect("restored") == data);
}

#[test]
fn hash_checkout_never_follows_a_link_already_inside_the_target() {
    let ws = Ws::new();
    let victim = tempfile::tempdir().expect("victim");
    ws.write("tree/sub/f.txt", b"hello\n");
    ws.write("tree/top.txt", b"top\n");
    let h = ws.add("tree");
    std::fs::create_dir_all(ws.p("out")).expect("mkdir");
    std::os::unix::fs::symlink(victim.path(), ws.p("out/sub")).expect("symlink");
    for link in ["reflink", "copy", "hardlink"] {
        let out = ws.run(&["checkout", &h, "--to", "out", "--link", link]);
        assert_untouched(victim.path());
        assert_refused_link(&out, "out/sub");
    }
    // The target root itself may be a link: it is the directory the user named.
    let real = tempfile::tempdir().expect("real");
    std::os::unix::fs::symlink(real.path(), ws.p("via-link")).expect("symlink");
    ws.ok(&["checkout", &h, "--to", "via-link"]);
    assert_eq!(
        std::fs::read(real.path().join("sub/f.txt")).expect("restored"),
        b"hello\n"
    );
}
