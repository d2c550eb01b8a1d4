//! Small objects compressed together in group frames (store-format.md 5.4): written once per
//! pack by every writer and copier, restored byte for byte, damage named.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use store::exit;

use crate::common::{packs, pseudo_random, Ws};

/// One table-of-contents entry: (hash hex, kind, compression, raw_len, stored_len, offset).
type TocEntry = (String, u8, u8, u32, u32, u64);

fn toc(pack: &Path) -> Vec<TocEntry> {
    let b = fs::read(pack).expect("read pack");
    let n = b.len();
    let count = u32::from_le_bytes(b[n - 56..n - 52].try_into().expect("4")) as usize;
    let at = u64::from_le_bytes(b[n - 48..n - 40].try_into().expect("8")) as usize;
    b[at..at + 52 * count]
        .chunks_exact(52)
        .map(|e| {
            let hex: String = e[..32].iter().map(|x| format!("{x:02x}")).collect();
            let u32at = |i: usize| u32::from_le_bytes(e[i..i + 4].try_into().expect("4"));
            let off = u64::from_le_bytes(e[44..52].try_into().expect("8"));
            (hex, e[32], e[33], u32at(36), u32at(40), off)
        })
        .collect()
}

/// Every entry of every pack of a store, with its pack.
fn entries(store: &Path) -> Vec<(PathBuf, TocEntry)> {
    packs(store)
        .into_iter()
        .flat_map(|p| toc(&p).into_iter().map(move |e| (p.clone(), e)))
        .collect()
}

/// The stored bytes of the packs' objects, a frame counted once per pack.
fn object_bytes(store: &Path) -> u64 {
    let mut seen = HashSet::new();
    entries(store)
        .into_iter()
        .filter(|(p, e)| seen.insert((p.clone(), e.5)))
        .map(|(_, e)| u64::from(e.4))
        .sum()
}

/// `data/` with `n` small text files in a few directories (source-like: similar, not equal),
/// and one large incompressible file.
fn small_files(ws: &Ws, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let rel = format!("data/d{}/f{i:04}.py", i % 7);
        let body = format!(
            "# module {i}\nimport os\n\ndef f{i}(x):\n    return x * {i} + len(os.sep)\n\n{}",
            "VALUE = 'store keeps every version'\n".repeat(1 + i % 5)
        );
        ws.write(&rel, body.as_bytes());
        files.insert(rel, body.into_bytes());
    }
    let big = pseudo_random(300_000, 7);
    ws.write("data/big.bin", &big);
    files.insert("data/big.bin".into(), big);
    files
}

/// The file hash of `rel` (under the tree `tree`), from `ls --json`.
fn file_hash(ws: &Ws, tree: &str, rel: &str) -> String {
    let mut at = tree.to_string();
    for name in rel.split('/') {
        let ls: serde_json::Value =
            serde_json::from_str(&ws.ok(&["ls", "--json", &at])).expect("json");
        let e = ls
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {ls}"));
        at = e["hash_or_target"].as_str().expect("hash").to_string();
    }
    at
}

fn same_files(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (rel, want) in files {
        let rel = rel.strip_prefix("data/").expect("under data/");
        let got = fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == *want, "{rel} differs");
    }
}

#[test]
fn small_files_share_frames_and_restore_byte_for_byte() {
    let ws = Ws::new();
    let files = small_files(&ws, 400);
    let tree = ws.add("data");
    let all = entries(&ws.p(".store"));
    for p in packs(&ws.p(".store")) {
        let b = fs::read(&p).expect("pack");
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().expect("4")), 2);
    }
    let members: Vec<_> = all.iter().filter(|(_, e)| e.2 == 2).collect();
    let frames: HashSet<_> = members.iter().map(|(p, e)| (p.clone(), e.5)).collect();
    // 400 chunks and 400 file manifests, 8 trees and a root record: a few dozen frames.
    assert!(members.len() >= 800, "{} members", members.len());
    assert!(frames.len() * 10 < members.len(), "{} frames", frames.len());
    for (_, e) in &members {
        assert!(e.3 < 16 * 1024, "only small objects are grouped");
    }
    // Members of a frame share its stored bytes, written once: the objects take less than
    // the sum of their stored lengths, and much less than their raw bytes.
    let listed: u64 = all.iter().map(|(_, e)| u64::from(e.4)).sum();
    let stored = object_bytes(&ws.p(".store"));
    let raw_small: u64 = members.iter().map(|(_, e)| u64::from(e.3)).sum();
    let stored_small: u64 = {
        let mut seen = HashSet::new();
        members
            .iter()
            .filter(|(p, e)| seen.insert((p.clone(), e.5)))
            .map(|(_, e)| u64::from(e.4))
            .sum()
    };
    assert!(stored < listed, "{stored} < {listed}");
    assert!(
        stored_small * 2 < raw_small,
        "{stored_small} vs {raw_small}"
    );

    let out = ws.ok(&["verify"]);
    assert!(out.contains(&format!("{} objects", all.len())), "{out}");
    ws.ok(&["checkout", &tree, "--to", "out", "--link", "copy"]);
    same_files(&ws.p("out"), &files);
    let one = ws.ok(&["cat", &file_hash(&ws, &tree, "d3/f0010.py")]);
    assert_eq!(one.as_bytes(), &files["data/d3/f0010.py"][..]);
}

#[test]
fn a_damaged_frame_is_named_and_its_members_are_never_returned() {
    let ws = Ws::new();
    let files = small_files(&ws, 100);
    let tree = ws.add("data");
    let (pack, e) = entries(&ws.p(".store"))
        .into_iter()
        .find(|(_, e)| e.2 == 2 && e.1 == 1)
        .expect("a chunk in a group");
    let mut b = fs::read(&pack).expect("pack");
    b[e.5 as usize + e.4 as usize / 2] ^= 0x40;
    fs::write(&pack, &b).expect("write");

    let o = ws.run(&["verify"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    let err = String::from_utf8_lossy(&o.stderr);
    let name = pack
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        err.contains(&name) && err.contains(&e.0),
        "names pack and object: {err}"
    );
    let o = ws.run(&["checkout", &tree, "--to", "out", "--link", "copy"]);
    assert_eq!(
        o.status.code(),
        Some(exit::CORRUPT),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The large file does not depend on the frame: it still restores alone.
    let big = ws.run(&["cat", &file_hash(&ws, &tree, "big.bin")]);
    assert!(
        big.status.success(),
        "{}",
        String::from_utf8_lossy(&big.stderr)
    );
    assert!(big.stdout == files["data/big.bin"]);
}

#[test]
fn gc_keeps_a_frame_while_one_of_its_members_lives() {
    let ws = Ws::new();
    let files = small_files(&ws, 200);
    ws.add("data");
    // A second version of half the files, then only the newest version is kept: the old
    // halves' chunks die, sharing frames with chunks that live on.
    let mut now = files.clone();
    for (i, (rel, body)) in files.iter().enumerate() {
        if i % 2 == 0 && rel.ends_with(".py") {
            let mut b = body.clone();
            b.extend_from_slice(format!("# edited {i}\n").as_bytes());
            ws.write(rel, &b);
            now.insert(rel.clone(), b);
        }
    }
    let tree = ws.add("data");
    let before = object_bytes(&ws.p(".store"));
    let dry: serde_json::Value =
        serde_json::from_str(&ws.ok(&["gc", "--keep-last", "1", "--json"])).expect("json");
    assert!(dry["dead_objects"].as_u64().expect("dead") >= 100, "{dry}");
    let dead = dry["dead_bytes"].as_u64().expect("bytes");
    // A frame counts once, and only when none of its members lives: the bytes gc says it
    // wins back are less than the stored bytes, not a multiple of them.
    assert!(dead < before, "{dead} < {before}");
    ws.ok(&["gc", "--keep-last", "1", "--yes"]);
    ws.ok(&["verify"]);
    let after = entries(&ws.p(".store"));
    let mut per_pack = HashSet::new();
    for (p, e) in &after {
        // No frame was copied twice into one pack: one (offset, stored_len) per frame, and
        // distinct frames do not overlap.
        per_pack.insert((p.clone(), e.5, e.4));
    }
    let mut spans: Vec<_> = per_pack.into_iter().collect();
    spans.sort();
    for w in spans.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(
                w[0].1 + u64::from(w[0].2) <= w[1].1,
                "overlapping objects {w:?}"
            );
        }
    }
    ws.ok(&["checkout", &tree, "--to", "out", "--link", "copy"]);
    same_files(&ws.p("out"), &now);
}

#[test]
fn push_clone_and_pull_copy_each_frame_once() {
    let r = tempfile::tempdir().expect("tmp");
    let url = r.path().join("remote");
    let url = url.to_str().expect("utf8");
    let a = Ws::new();
    let files = small_files(&a, 300);
    let tree = a.add("data");
    a.ok(&["remote", "add", "origin", url]);
    a.ok(&["push", "-q"]);
    let local = object_bytes(&a.p(".store"));
    let mut remote_packs = Vec::new();
    crate::remote::all_files(&r.path().join("remote"), &mut remote_packs);
    let remote: u64 = remote_packs
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .map(|p| {
            let mut seen = HashSet::new();
            toc(p)
                .into_iter()
                .filter(|e| seen.insert(e.5))
                .map(|e| u64::from(e.4))
                .sum::<u64>()
        })
        .sum();
    // The remote holds the objects once (the same frames; records and manifests in packs of
    // their own, so no frame is split).
    assert_eq!(remote, local, "remote object bytes equal local ones");

    let b = Ws::bare();
    b.ok(&["clone", url, "ws"]);
    ok_in_clone(&b, &["pull"]);
    assert_eq!(object_bytes(&b.p("ws/.store")), local, "pulled once");
    ok_in_clone(&b, &["checkout", &tree, "--to", "../out", "--link", "copy"]);
    same_files(&b.p("out"), &files);

    // A clone that checks out at once fetches the frames it needs while restoring.
    let c = Ws::bare();
    c.ok(&["clone", url, "ws"]);
    ok_in_clone(&c, &["checkout", &tree, "--to", "../out", "--link", "copy"]);
    same_files(&c.p("out"), &files);
    ok_in_clone(&c, &["verify"]);
}

/// Runs the store in the clone `ws/` of `b`; it must succeed.
fn ok_in_clone(b: &Ws, args: &[&str]) {
    let out = b
        .cmd(args)
        .current_dir(b.p("ws"))
        .output()
        .expect("run store");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
