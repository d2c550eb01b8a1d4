//! Round trips through the library API and the CLI: bytes restored equal bytes added.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use store::{AddOptions, CheckoutOptions, LinkMode};

use crate::common::{pseudo_random, Ws};

const MIN: usize = 16 * 1024;
const AVG: usize = 64 * 1024;
const MAX: usize = 256 * 1024;

#[test]
fn files_of_many_sizes_round_trip_through_library() {
    let ws = Ws::new();
    let store = ws.open();
    let sizes = [
        0,
        1,
        2,
        63,
        64,
        65,
        MIN - 1,
        MIN,
        MIN + 1,
        AVG,
        MAX - 1,
        MAX,
        MAX + 1,
        3 * MAX + 7,
        5 << 20,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let data = pseudo_random(n, i as u64 + 1);
        let p = ws.write(&format!("f{i}.bin"), &data);
        let r = store.add(&[p], &AddOptions::default()).expect("add");
        let h = r.added[0].hash;
        assert_eq!(r.added[0].size, n as u64);
        let out = ws.p(&format!("out{i}"));
        store
            .checkout(
                &h,
                &out,
                &CheckoutOptions {
                    link: LinkMode::Copy,
                    progress: false,
                },
            )
            .expect("checkout");
        assert_eq!(
            fs::read(out.join(format!("f{i}.bin"))).expect("read"),
            data,
            "size {n}"
        );
        let mut cat = Vec::new();
        store.cat(&h, &mut cat).expect("cat");
        assert_eq!(cat, data, "cat of size {n}");
        let m = store.file_manifest(&h).expect("manifest");
        assert_eq!(m.size, n as u64);
        assert_eq!(m.hash(), h, "file hash is the manifest hash");
    }
    assert!(store.verify().expect("verify").problems.is_empty());
}

#[test]
fn compressible_data_is_compressed_and_restored() {
    let ws = Ws::new();
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i},{},{}\n", i % 7, i * 3).into_bytes())
        .collect();
    ws.write("t.csv", &text);
    let h = ws.add("t.csv");
    let stats: serde_json::Value =
        serde_json::from_str(&ws.ok(&["stats", "--json"])).expect("json");
    let stored = stats["stored_bytes"].as_u64().expect("stored");
    assert!(
        stored * 2 < text.len() as u64,
        "stored {stored} of {}",
        text.len()
    );
    let out = ws.run(&["cat", &h]);
    assert!(out.status.success());
    assert_eq!(out.stdout, text);
}

#[test]
fn directory_tree_round_trips_with_modes_symlinks_and_empty_dirs() {
    let ws = Ws::new();
    ws.write("d/a.txt", b"alpha\n");
    ws.write("d/sub/b.bin", &pseudo_random(300_000, 9));
    ws.write("d/sub/deeper/c", b"");
    fs::create_dir_all(ws.p("d/empty")).expect("mkdir");
    let exe = ws.write("d/run.sh", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("sub/b.bin", ws.p("d/link")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", ws.p("d/dangling")).expect("symlink");
    let h = ws.add("d");
    ws.ok(&["checkout", &h, "--to", "out", "--link", "copy"]);
    for f in ["a.txt", "sub/b.bin", "sub/deeper/c", "run.sh"] {
        assert_eq!(
            fs::read(ws.p(&format!("d/{f}"))).expect("src"),
            fs::read(ws.p(&format!("out/{f}"))).expect("dst"),
            "{f}"
        );
    }
    assert!(ws.p("out/empty").is_dir());
    assert_eq!(
        fs::metadata(ws.p("out/run.sh")).expect("meta").mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_link(ws.p("out/link")).expect("link").to_str(),
        Some("sub/b.bin")
    );
    assert_eq!(
        fs::read_link(ws.p("out/dangling")).expect("link").to_str(),
        Some("/nonexistent/target")
    );
    assert!(fs::symlink_metadata(ws.p("out/link"))
        .expect("meta")
        .file_type()
        .is_symlink());
    // The same tree added again has the same hash.
    assert_eq!(ws.add("d"), h);
}

#[test]
fn json_output_and_prefix_resolution() {
    let ws = Ws::new();
    ws.write("x.txt", b"some content\n");
    let v: serde_json::Value =
        serde_json::from_str(&ws.ok(&["add", "--json", "x.txt"])).expect("json");
    let h = v["added"][0]["hash"].as_str().expect("hash").to_string();
    assert_eq!(h.len(), 64);
    assert_eq!(v["added"][0]["kind"], "file");
    let out = ws.run(&["cat", &h[..10]]);
    assert_eq!(out.stdout, b"some content\n");
    let ls: serde_json::Value = serde_json::from_str(&ws.ok(&["ls", "--json"])).expect("json");
    assert_eq!(ls[0]["hash"], h.as_str());
}

/// `status --json` as (file name, change) pairs, sorted.
fn status_changes(ws: &Ws) -> Vec<(String, String)> {
    let st: serde_json::Value = serde_json::from_str(&ws.ok(&["status", "--json"])).expect("json");
    let mut seen: Vec<(String, String)> = st
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let p = e["path"].as_str().expect("path");
            (
                p.rsplit('/').next().expect("name").to_string(),
                e["change"].as_str().expect("change").to_string(),
            )
        })
        .collect();
    seen.sort();
    seen
}

#[test]
fn status_reports_new_modified_and_deleted() {
    let ws = Ws::new();
    ws.write("d/keep", b"keep");
    ws.write("d/change", b"before");
    ws.write("d/remove", b"gone soon");
    ws.add("d");
    assert_eq!(
        ws.ok(&["status"]),
        "nothing changed\n",
        "nothing changed right after add"
    );
    ws.write("d/change", b"after!");
    ws.write("d/added", b"new file");
    fs::remove_file(ws.p("d/remove")).expect("rm");
    assert_eq!(
        status_changes(&ws),
        vec![
            ("added".into(), "new".into()),
            ("change".into(), "modified".into()),
            ("remove".into(), "deleted".into())
        ]
    );
    // Same size, same content rewritten: not modified (re-hashed, equal).
    ws.write("d/keep", b"keep");
    assert!(!ws.ok(&["status"]).contains("keep"));
    ws.add("d");
    assert_eq!(ws.ok(&["status"]), "nothing changed\n");

    // Links are recorded, not followed: retargeting one, adding one, removing one and turning
    // a file into one are all changes; a link whose target file changes is not.
    use std::os::unix::fs::symlink;
    symlink("keep", ws.p("d/to-keep")).expect("link");
    symlink("change", ws.p("d/to-change")).expect("link");
    symlink("added", ws.p("d/to-added")).expect("link");
    symlink("keep", ws.p("d/was-link")).expect("link");
    ws.add("d");
    assert_eq!(
        ws.ok(&["status"]),
        "nothing changed\n",
        "links unchanged right after add"
    );
    fs::remove_file(ws.p("d/to-change")).expect("rm");
    symlink("keep", ws.p("d/to-change")).expect("retarget");
    fs::remove_file(ws.p("d/to-added")).expect("rm");
    symlink("keep", ws.p("d/new-link")).expect("link");
    fs::remove_file(ws.p("d/added")).expect("rm");
    symlink("keep", ws.p("d/added")).expect("file becomes link");
    fs::remove_file(ws.p("d/was-link")).expect("rm");
    ws.write("d/was-link", b"now a file");
    ws.write("d/keep", b"KEEP");
    assert_eq!(
        status_changes(&ws),
        vec![
            ("added".into(), "modified".into()),
            ("keep".into(), "modified".into()),
            ("new-link".into(), "new".into()),
            ("to-added".into(), "deleted".into()),
            ("to-change".into(), "modified".into()),
            ("was-link".into(), "modified".into()),
        ]
    );
    ws.add("d");
    assert_eq!(ws.ok(&["status"]), "nothing changed\n");
}

/// Files written just before an add are trusted by the stat cache once the store's filesystem
/// clock has moved past them (the add's timestamp probe): a second add reads none of them, and
/// a same-size rewrite right after the add is still seen (its timestamps move past the probe's).
#[test]
fn files_written_just_before_add_are_not_reread() {
    let ws = Ws::new();
    for i in 0..20u64 {
        ws.write(&format!("d/f{i}"), &pseudo_random(1000, i));
    }
    ws.add("d");
    let v: serde_json::Value = serde_json::from_str(&ws.ok(&["add", "--json", "d"])).expect("json");
    assert_eq!(v["files_read"], 0, "{v}");
    assert_eq!(ws.ok(&["status"]), "nothing changed\n");
    let mut changed = pseudo_random(1000, 3);
    changed[500] ^= 1;
    ws.write("d/f3", &changed);
    assert_eq!(status_changes(&ws), vec![("f3".into(), "modified".into())]);
    let v: serde_json::Value = serde_json::from_str(&ws.ok(&["add", "--json", "d"])).expect("json");
    assert_eq!(v["files_read"], 1, "{v}");
}

/// A second add reads no unchanged file, given as a directory or by name, but reads again a
/// file whose hash the index no longer holds (the stat cache alone is not enough to skip it),
/// and so stores its objects again.
#[test]
fn second_add_skips_unchanged_files_only_while_the_index_holds_them() {
    let ws = Ws::new();
    for i in 0..5u64 {
        ws.write(&format!("d/sub/f{i}"), &pseudo_random(3000, i));
    }
    ws.write("top.txt", b"top level file\n");
    let add = |ws: &Ws| -> serde_json::Value {
        serde_json::from_str(&ws.ok(&["add", "--json", "d", "top.txt"])).expect("json")
    };
    add(&ws);
    let v = add(&ws);
    assert_eq!(
        (v["files"].as_u64(), v["files_read"].as_u64()),
        (Some(6), Some(0)),
        "{v}"
    );
    let store = ws.open();
    let f2 = store::Store::resolve(&store, &ws.add("d/sub/f2")).expect("hash");
    drop(store);
    let conn = rusqlite::Connection::open(ws.p(".store/index.sqlite")).expect("open index");
    let gone = conn
        .execute("DELETE FROM objects WHERE hash = ?1", [&f2.0[..]])
        .expect("delete row");
    assert_eq!(gone, 1);
    drop(conn);
    let v = add(&ws);
    assert_eq!(v["files_read"].as_u64(), Some(1), "{v}");
    assert!(v["new_objects"].as_u64().unwrap_or(0) >= 1, "{v}");
    ws.ok(&["verify"]);
    ws.ok(&["checkout", &f2.to_hex(), "--to", "out"]);
    assert_eq!(
        std::fs::read(ws.p("out/f2")).expect("restored"),
        pseudo_random(3000, 2)
    );
}

#[test]
fn dedup_means_second_add_of_same_content_stores_nothing() {
    let ws = Ws::new();
    let data = pseudo_random(2 << 20, 5);
    ws.write("a/x.bin", &data);
    ws.write("b/y.bin", &data);
    ws.add("a");
    let v: serde_json::Value = serde_json::from_str(&ws.ok(&["add", "--json", "b"])).expect("json");
    // Only the new tree and root record are new: no chunk, no file manifest.
    assert_eq!(v["new_objects"], 2, "{v}");
    let st: serde_json::Value = serde_json::from_str(&ws.ok(&["stats", "--json"])).expect("json");
    assert!(st["dedup_ratio"].as_f64().expect("ratio") > 1.9, "{st}");
}

#[test]
fn hardlink_checkout_is_read_only_and_shares_the_cache_inode() {
    let ws = Ws::new();
    let data = pseudo_random(100_000, 3);
    ws.write("h.bin", &data);
    let h = ws.add("h.bin");
    ws.ok(&["checkout", &h, "--to", "o1", "--link", "hardlink"]);
    ws.ok(&["checkout", &h, "--to", "o2", "--link", "hardlink"]);
    let m1 = fs::metadata(ws.p("o1/h.bin")).expect("meta");
    let m2 = fs::metadata(ws.p("o2/h.bin")).expect("meta");
    assert_eq!(m1.ino(), m2.ino());
    assert_eq!(m1.mode() & 0o222, 0, "hard-linked files are read-only");
    assert_eq!(fs::read(ws.p("o2/h.bin")).expect("read"), data);
    // Default (reflink) falls back to a verified copy where cloning is not supported.
    ws.ok(&["checkout", &h, "--to", "o3"]);
    assert_eq!(fs::read(ws.p("o3/h.bin")).expect("read"), data);
}

#[test]
fn gc_keep_last_removes_superseded_versions() {
    let ws = Ws::new();
    ws.write("d/f", &pseudo_random(500_000, 1));
    ws.add("d");
    let v2 = pseudo_random(500_000, 2);
    ws.write("d/f", &v2);
    let h2 = ws.add("d");
    let dry = ws.ok(&["gc", "--json", "--keep-last", "1"]);
    let dry: serde_json::Value = serde_json::from_str(&dry).expect("json");
    assert!(dry["dead_objects"].as_u64().expect("n") > 0);
    assert_eq!(dry["applied"], false);
    let before = ws.ok(&["stats", "--json"]);
    let gc: serde_json::Value =
        serde_json::from_str(&ws.ok(&["gc", "--yes", "--json", "--keep-last", "1"])).expect("json");
    assert_eq!(gc["applied"], true);
    assert_eq!(gc["versions_dropped"], 1);
    let after = ws.ok(&["stats", "--json"]);
    let sb: serde_json::Value = serde_json::from_str(&before).expect("json");
    let sa: serde_json::Value = serde_json::from_str(&after).expect("json");
    assert!(
        sa["stored_bytes"].as_u64() < sb["stored_bytes"].as_u64(),
        "{sb} -> {sa}"
    );
    ws.ok(&["verify"]);
    ws.ok(&["checkout", &h2, "--to", "out", "--link", "copy"]);
    assert_eq!(fs::read(ws.p("out/f")).expect("read"), v2);
    // Nothing left to collect.
    let again: serde_json::Value = serde_json::from_str(&ws.ok(&["gc", "--json"])).expect("json");
    assert_eq!(again["dead_objects"], 0);
}

#[test]
fn reindex_rebuilds_everything_from_packs() {
    let ws = Ws::new();
    ws.write("d/a", &pseudo_random(400_000, 4));
    ws.write("e", b"single file");
    let h = ws.add("d");
    let he = ws.add("e");
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = fs::remove_file(ws.p(&format!(".store/{f}")));
    }
    ws.ok(&["reindex"]);
    let ls = ws.ok(&["ls"]);
    assert!(ls.contains(&h) && ls.contains(&he), "{ls}");
    ws.ok(&["verify"]);
    ws.ok(&["checkout", &h, "--to", "out", "--link", "copy"]);
    assert_eq!(
        fs::read(ws.p("out/a")).expect("read"),
        pseudo_random(400_000, 4)
    );
}

#[test]
fn store_is_found_from_subdirectories_and_by_env() {
    let ws = Ws::new();
    ws.write("deep/er/f.txt", b"x");
    let out = ws
        .cmd(&["add", "-q", "f.txt"])
        .current_dir(ws.p("deep/er"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Ws::bare();
    let out = other
        .cmd(&["ls"])
        .env("STORE_DIR", ws.p(".store"))
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("f.txt"));
    let out = other
        .cmd(&["ls", "--store", ws.p(".store").to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("f.txt"));
}

#[test]
fn gc_keeps_every_version_by_default_and_log_lists_them() {
    let ws = Ws::new();
    let v1 = pseudo_random(300_000, 11);
    let v2 = pseudo_random(300_000, 12);
    ws.write("d/f", &v1);
    let h1 = ws.add("d");
    ws.write("d/f", &v2);
    let h2 = ws.add("d");
    let log: serde_json::Value =
        serde_json::from_str(&ws.ok(&["log", "--json", "d"])).expect("json");
    let hashes: Vec<&str> = log
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["hash"].as_str().expect("hash"))
        .collect();
    assert_eq!(hashes, vec![h2.as_str(), h1.as_str()], "newest first");
    let gc: serde_json::Value =
        serde_json::from_str(&ws.ok(&["gc", "--yes", "--json"])).expect("json");
    assert_eq!(gc["dead_objects"], 0, "{gc}");
    ws.ok(&["checkout", &h1, "--to", "old", "--link", "copy"]);
    assert_eq!(fs::read(ws.p("old/f")).expect("read"), v1);
    // ls shows only the current version.
    let ls = ws.ok(&["ls"]);
    assert!(ls.contains(&h2) && !ls.contains(&h1), "{ls}");
}

#[test]
fn large_file_spanning_packs_round_trips_through_windowed_restore() {
    let ws = Ws::new();
    // 40 MiB + an odd tail: several 8 MiB restore windows, two packs, an unaligned end.
    let mut data = pseudo_random((40 << 20) + 12_345, 21);
    // Make part of it compressible so both raw and zstd chunks are restored.
    for b in data[10 << 20..14 << 20].iter_mut() {
        *b %= 4;
    }
    ws.write("big.bin", &data);
    let h = ws.add("big.bin");
    let st: serde_json::Value = serde_json::from_str(&ws.ok(&["stats", "--json"])).expect("json");
    assert!(st["packs"].as_u64().expect("packs") >= 2, "{st}");
    for mode in ["copy", "hardlink", "reflink"] {
        ws.ok(&[
            "checkout",
            &h,
            "--to",
            &format!("out-{mode}"),
            "--link",
            mode,
        ]);
        assert!(
            fs::read(ws.p(&format!("out-{mode}/big.bin"))).expect("read") == data,
            "{mode}"
        );
    }
    // The hard-link cache is checked before reuse: damage it and restore again.
    let cached: Vec<_> = fs::read_dir(ws.p(".store/cache"))
        .expect("cache")
        .flat_map(|d| fs::read_dir(d.expect("d").path()).expect("sub"))
        .collect();
    assert_eq!(cached.len(), 1);
    let cpath = cached[0].as_ref().expect("entry").path();
    let mut perm = fs::metadata(&cpath).expect("meta").permissions();
    perm.set_mode(0o644);
    fs::set_permissions(&cpath, perm).expect("chmod");
    let mut damaged = fs::read(&cpath).expect("read");
    damaged[5] ^= 1;
    fs::write(&cpath, damaged).expect("write");
    ws.ok(&["checkout", &h, "--to", "out-again", "--link", "hardlink"]);
    assert!(fs::read(ws.p("out-again/big.bin")).expect("read") == data);
}

#[test]
fn hardlinked_executables_keep_their_execute_bit() {
    let ws = Ws::new();
    let exe = ws.write("tool/run.sh", b"#!/bin/sh\necho ok\n");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    ws.write("tool/data.txt", b"#!/bin/sh\necho ok\n");
    let h = ws.add("tool");
    ws.ok(&["checkout", &h, "--to", "out", "--link", "hardlink"]);
    assert_eq!(
        fs::metadata(ws.p("out/run.sh")).expect("meta").mode() & 0o777,
        0o555
    );
    assert_eq!(
        fs::metadata(ws.p("out/data.txt")).expect("meta").mode() & 0o777,
        0o444
    );
}

#[test]
fn copy_checkout_reads_an_unchanged_workspace_file_and_never_a_changed_one() {
    let ws = Ws::new();
    let data = pseudo_random((20 << 20) + 333, 77);
    let p = ws.write("big.bin", &data);
    // Old enough for the stat cache to trust it (not "racy").
    let touch = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&p)
        .status()
        .expect("touch");
    assert!(touch.success());
    let h = ws.add("big.bin");
    ws.ok(&["checkout", &h, "--to", "a", "--link", "copy"]);
    assert!(fs::read(ws.p("a/big.bin")).expect("read") == data);
    // Change the workspace file (same size): checkout must not take its bytes.
    let mut changed = data.clone();
    changed[10 << 20] ^= 0xff;
    fs::write(&p, &changed).expect("write");
    let touch = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&p)
        .status()
        .expect("touch");
    assert!(touch.success());
    ws.ok(&["checkout", &h, "--to", "b", "--link", "copy"]);
    assert!(
        fs::read(ws.p("b/big.bin")).expect("read") == data,
        "restored the stored version"
    );
}

/// Checkout reads chunks of a large file from its unchanged workspace copy, but checks each
/// against its hash: content that changed behind the stat cache's back (bit rot, a write
/// that kept the timestamps) is taken from the packs instead.
#[test]
fn checkout_from_workspace_copy_verifies_every_chunk() {
    let ws = Ws::new();
    let data = pseudo_random(20 << 20, 77);
    ws.write("big.bin", &data);
    let h = ws.add("big.bin");
    // Damage the workspace copy in three places (one across the 8 MiB window edge), then make
    // the stat cache describe the damaged file as if it were unchanged.
    let mut bad = data.clone();
    for at in [100usize, (8 << 20) - 3, 15 << 20] {
        bad[at] ^= 0xff;
        bad[at + 1] ^= 0xff;
        bad[at + 2] ^= 0xff;
        bad[at + 3] ^= 0xff;
    }
    std::fs::write(ws.p("big.bin"), &bad).expect("damage");
    let meta = std::fs::metadata(ws.p("big.bin")).expect("meta");
    let script = format!(
        "import sqlite3; c = sqlite3.connect({db:?}); \
         n = c.execute('UPDATE stat_files SET ino=?, mtime_ns=?, ctime_ns=?, trusted=1', \
         ({ino}, {m}, {c})).rowcount; c.commit(); assert n == 1, n",
        db = ws.p(".store/index.sqlite").to_str().expect("utf8"),
        ino = meta.ino(),
        m = meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        c = meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.ok(&["checkout", &h, "--to", "out", "--link", "copy"]);
    assert!(std::fs::read(ws.p("out/big.bin")).expect("restored") == data);
}

/// Many small packs (one per tracking job, one per small add) are merged by `gc`, and every
/// version stays restorable.
#[test]
fn gc_merges_small_packs() {
    let ws = Ws::new();
    let mut added = Vec::new();
    for i in 0..6u64 {
        let name = format!("f{i}.bin");
        ws.write(&name, &pseudo_random(50_000, i));
        added.push((ws.add(&name), i));
    }
    let before = crate::common::packs(&ws.p(".store")).len();
    assert!(before >= 6, "{before}");
    let dry: serde_json::Value = serde_json::from_str(&ws.ok(&["gc", "--json"])).expect("json");
    assert_eq!(dry["packs_merged"], before as u64);
    assert_eq!(
        crate::common::packs(&ws.p(".store")).len(),
        before,
        "dry run changed nothing"
    );
    let r: serde_json::Value =
        serde_json::from_str(&ws.ok(&["gc", "--yes", "--json"])).expect("json");
    assert_eq!(r["packs_merged"], before as u64);
    assert_eq!(r["dead_objects"], 0);
    assert_eq!(crate::common::packs(&ws.p(".store")).len(), 1);
    ws.ok(&["verify"]);
    for (h, i) in added {
        let out = ws.run(&["cat", &h]);
        assert!(out.status.success());
        assert!(out.stdout == pseudo_random(50_000, i));
    }
    // Nothing small is left to merge.
    let again: serde_json::Value = serde_json::from_str(&ws.ok(&["gc", "--json"])).expect("json");
    assert_eq!(again["packs_merged"], 0);
}
