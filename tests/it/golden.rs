//! Golden fixture: a store written once by format 1 (`tests/fixtures/golden/`, made by its
//! `regen.sh`) must stay readable, and its hashes must stay what `store-format.md` says.
//!
//! The fixture holds only `config.json` and the pack file; the index is rebuilt with
//! `store reindex` in a temporary copy (the fixture directory itself is never written to).
//! Module `spec` is an independent reader written from `store-format.md`: it does not call
//! the library's pack or manifest code, only `blake3`, `zstd` and `serde_json`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::Ws;

/// The fixture's `.store` directory (read-only for tests).
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/golden/ws/.store"
);

/// The pack-version-2 fixture (groups, store-format.md 5.4): the same data, its one pack and
/// root record, and what the record says.
const FIXTURE2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/golden/ws2/.store"
);
const PACK2: &str = "071faf3f361d328274eae0591a81925985843f70a19a5f7e2a1c7babaf954312";
const ROOT_RECORD2: &str = "cfb36bf2103b3fcc77f7ff44ee7bacd4e0c0939e9ba705238cbb42540f4885c4";
const ROOT_PATH2: &str = "/work/main/tests/fixtures/golden/ws2/data";
const ROOT_TIME_NS2: i64 = 1_796_544_014_277_951_295;

/// Tree hash printed by `store add data` when the fixture was made.
const TREE: &str = "16beff5aa6fa321f4a47cf1eab1bd36217e31f3b8c2a618c34e4dd09c58ecf3f";
/// Tree hash of `data/sub`.
const SUB_TREE: &str = "c5c147894b27767cb2a0b6f77d6b2455af3815ddba1038792616b4d01245496a";
/// File hashes.
const HELLO: &str = "1961408765824e3e357c155f07bd974f4bdd1c51164392d9a0addae6a790b444";
const EMPTY: &str = "fa7663fab3c2816f04c0723958f1f6af193bfddef95218778dc6d63ebc7d583a";
const RAND: &str = "9c1eff0d686b91d87d2286bc681452b186edeae3cdaf6d57005696239512b1a8";
const NOTES: &str = "ae22426fa308070f0c7fbca7b8eab72d363f0a696f3c8c595ffb05b42b49c235";
/// Chunk hash of `hello, store\n`.
const HELLO_CHUNK: &str = "3597f2813385d123b70eace35d29c39160857958561e0bd4a379d85ba470f2ac";
/// Chunks of rand.bin (FastCDC 2020, 16/64/256 KiB): hash and length, in order.
const RAND_CHUNKS: [(&str, u32); 2] = [
    (
        "9664dc2c315d0db99eafb9156dd63ca3f7899dfbe50680d3dc7e69124cf83e15",
        44_750,
    ),
    (
        "a574f563ea78383ba1ddd3e1cfd1b2c10b700b528d6fa862ce4ac56b835e326a",
        155_250,
    ),
];
/// The one pack of the fixture (its file name), and its root record.
const PACK: &str = "0e92c95f8675ca9dd2bc473d14939abe71d7d437afb9c154a3565e857565732d";
const ROOT_RECORD: &str = "d7ee8a430dc371d32aca3fb5008952557a2c23ecdbaef6d3f15091a8e619b926";
/// What the root record says (the absolute path the fixture was added from, and when).
const ROOT_PATH: &str = "/work/main/tests/fixtures/golden/ws/data";
const ROOT_TIME_NS: i64 = 1_795_822_900_761_091_917;
/// Objects in the pack, and the logical size of the tree.
const OBJECTS: usize = 11;
const TREE_SIZE: u64 = 13 + 9 + 200_000 + NOTES_LEN as u64;
const NOTES_LEN: usize = 9 + 32 * 41;

// ---------------------------------------------------------------------------------------------
// The fixture's content, regenerated (same recipe as regen.sh).

/// `rand.bin`: 25,000 xorshift64 words, little-endian (the perl one-liner in regen.sh).
fn rand_bin() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(200_000);
    for _ in 0..25_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn notes_md() -> Vec<u8> {
    format!(
        "# notes\n\n{}",
        "store keeps every version of every file.\n".repeat(32)
    )
    .into_bytes()
}

/// Regular files of `data/`, relative path -> content.
fn expected_files() -> BTreeMap<&'static str, Vec<u8>> {
    BTreeMap::from([
        ("hello.txt", b"hello, store\n".to_vec()),
        ("empty", Vec::new()),
        ("rand.bin", rand_bin()),
        ("sub/notes.md", notes_md()),
    ])
}

/// Recreates `data/` under `dir` with the fixture's exact modes (they are part of the tree).
fn write_data(dir: &Path) {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).expect("mkdir");
    for (rel, content) in expected_files() {
        let p = data.join(rel);
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::os::unix::fs::symlink("hello.txt", data.join("link")).expect("symlink");
    for d in [data.join("sub"), data.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for ent in std::fs::read_dir(src).expect("read fixture") {
        let ent = ent.expect("entry");
        let to = dst.join(ent.file_name());
        if ent.file_type().expect("type").is_dir() {
            copy_dir(&ent.path(), &to);
        } else {
            std::fs::copy(ent.path(), &to).expect("copy");
        }
    }
}

/// Relative path -> (size, modified time) of every file of the fixture: must never change.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for ent in std::fs::read_dir(&d).expect("read") {
            let ent = ent.expect("entry");
            let m = ent.metadata().expect("meta");
            if m.is_dir() {
                stack.push(ent.path());
            } else {
                let rel = ent.path().strip_prefix(dir).expect("prefix").to_path_buf();
                out.insert(rel, (m.len(), m.modified().expect("mtime")));
            }
        }
    }
    out
}

/// A workspace holding a copy of the fixture store, reindexed.
fn fixture_ws() -> Ws {
    fixture_ws_of(FIXTURE)
}

/// A workspace holding a copy of the fixture store `fixture`, reindexed.
fn fixture_ws_of(fixture: &str) -> Ws {
    let ws = Ws::bare();
    copy_dir(Path::new(fixture), &ws.p(".store"));
    let out = ws.ok(&["reindex"]);
    assert!(
        out.contains(&format!("1 packs, {OBJECTS} objects")),
        "{out}"
    );
    ws
}

// ---------------------------------------------------------------------------------------------
// An independent reader, from store-format.md only.

mod spec {
    use std::collections::HashMap;

    pub const CHUNK: &str = "store 2026-11 chunk v1";
    pub const FILE: &str = "store 2026-11 file manifest v1";
    pub const TREE: &str = "store 2026-11 tree manifest v1";
    pub const ROOT: &str = "store 2026-11 root record v1";
    pub const PACK: &str = "store 2026-11 pack v1";
    pub const TOC: &str = "store 2026-11 pack toc v1";

    pub fn hash(context: &str, data: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(data);
        *h.finalize().as_bytes()
    }

    pub fn hex(h: &[u8]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn u16le(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32le(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64le(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// One object of a pack, decoded and checked.
    pub struct Object {
        pub kind: u8,
        pub compression: u8,
        pub stored_len: u32,
        pub raw: Vec<u8>,
    }

    /// Parses a whole pack file, checking every rule of the spec; returns hex hash -> object.
    pub fn read_pack(name: &str, b: &[u8]) -> Vec<(String, Object)> {
        assert!(b.len() >= 16 + 56, "too short");
        assert_eq!(&b[0..8], b"STOREPAK", "header magic");
        let version = u32le(b, 8);
        assert!(version == 1 || version == 2, "pack version {version}");
        assert_eq!(u32le(b, 12), 0, "flags");
        let t = &b[b.len() - 56..];
        assert_eq!(&t[48..56], b"STOREEND", "trailer magic");
        let count = u32le(t, 0) as usize;
        assert_eq!(u32le(t, 4), 0, "trailer reserved");
        let toc_offset = u64le(t, 8) as usize;
        assert_eq!(
            toc_offset + count * 52,
            b.len() - 56,
            "TOC ends where the trailer starts"
        );
        let toc = &b[toc_offset..b.len() - 56];
        assert_eq!(hash(TOC, toc), t[16..48], "TOC checksum");
        // The pack id is the hash of the TOC bytes in the pack domain (not of the whole file).
        assert_eq!(hex(&hash(PACK, toc)), name, "pack file name is the pack id");
        let mut next = 16usize;
        let mut out = Vec::new();
        // The previous entry's (compression, offset, stored_len): group members share a frame.
        let mut prev = (0u8, 0usize, 0usize);
        for e in toc.chunks_exact(52) {
            let h = &e[0..32];
            let (kind, compression) = (e[32], e[33]);
            assert_eq!(u16le(e, 34), 0, "entry reserved");
            let raw_len = u32le(e, 36) as usize;
            let stored_len = u32le(e, 40) as usize;
            let offset = u64le(e, 44) as usize;
            // This writer stores objects back to back in TOC order, a group's frame once.
            if (compression, offset, stored_len) != (2, prev.1, prev.2) || prev.0 != 2 {
                assert_eq!(offset, next, "objects are contiguous in TOC order");
                next = offset + stored_len;
            }
            prev = (compression, offset, stored_len);
            assert!(next <= toc_offset, "object inside the data area");
            let stored = &b[offset..offset + stored_len];
            let raw = match compression {
                0 => {
                    assert_eq!(stored_len, raw_len);
                    stored.to_vec()
                }
                1 => {
                    assert!(raw_len >= 64, "objects under 64 bytes are stored raw");
                    assert!(
                        stored_len < raw_len - raw_len / 32,
                        "zstd only when it saves 1/32"
                    );
                    zstd::stream::decode_all(stored).expect("one zstd frame")
                }
                2 => {
                    assert_eq!(version, 2, "groups only in pack version 2");
                    group_member(stored, kind, h)
                }
                c => panic!("unknown compression {c}"),
            };
            assert_eq!(raw.len(), raw_len, "raw_len");
            let ctx = match kind {
                1 => CHUNK,
                2 => FILE,
                3 => TREE,
                4 => ROOT,
                k => panic!("kind {k} may not appear in a pack"),
            };
            assert_eq!(hash(ctx, &raw), h, "object hash in its kind's domain");
            out.push((
                hex(h),
                Object {
                    kind,
                    compression,
                    stored_len: stored_len as u32,
                    raw,
                },
            ));
        }
        assert_eq!(next, toc_offset, "TOC follows the last object");
        out
    }

    fn context(kind: u8) -> &'static str {
        match kind {
            1 => CHUNK,
            2 => FILE,
            3 => TREE,
            4 => ROOT,
            k => panic!("kind {k} may not appear in this fixture"),
        }
    }

    /// The member with hash `h` of a group frame (5.4): content = n u32, n lengths u32, n
    /// kind bytes, the members; every member is hashed in its kind's domain.
    fn group_member(frame: &[u8], kind: u8, h: &[u8]) -> Vec<u8> {
        let c = zstd::stream::decode_all(frame).expect("one zstd frame");
        let n = u32le(&c, 0) as usize;
        assert!(n >= 2, "a group has at least 2 members");
        let kinds = &c[4 + 4 * n..4 + 5 * n];
        let mut at = 4 + 5 * n;
        let mut found = None;
        for (i, &k) in kinds.iter().enumerate() {
            let len = u32le(&c, 4 + 4 * i) as usize;
            let m = &c[at..at + len];
            at += len;
            if hash(context(k), m) == h {
                assert_eq!(k, kind, "member kind");
                found = Some(m.to_vec());
            }
        }
        assert_eq!(at, c.len(), "the members fill the content exactly");
        found.expect("the entry's object is in its group")
    }

    /// File manifest: version 1, size u64, count u32, then (hash 32, len u32) per chunk.
    pub fn file_manifest(b: &[u8]) -> (u64, Vec<(String, u32)>) {
        assert_eq!(b[0], 1, "manifest version");
        let size = u64le(b, 1);
        let n = u32le(b, 9) as usize;
        assert_eq!(b.len(), 13 + 36 * n, "file manifest length");
        let chunks: Vec<_> = (0..n)
            .map(|i| {
                let at = 13 + 36 * i;
                (hex(&b[at..at + 32]), u32le(b, at + 32))
            })
            .collect();
        assert_eq!(chunks.iter().map(|c| u64::from(c.1)).sum::<u64>(), size);
        (size, chunks)
    }

    pub fn encode_file_manifest(chunks: &[([u8; 32], u32)]) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(
            &chunks
                .iter()
                .map(|c| u64::from(c.1))
                .sum::<u64>()
                .to_le_bytes(),
        );
        b.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
        for (h, l) in chunks {
            b.extend_from_slice(h);
            b.extend_from_slice(&l.to_le_bytes());
        }
        b
    }

    #[derive(Debug, PartialEq, Eq)]
    pub enum Target {
        File(String),
        Dir(String),
        Link(Vec<u8>),
    }

    #[derive(Debug, PartialEq, Eq)]
    pub struct TreeEntry {
        pub name: Vec<u8>,
        pub mode: u32,
        pub size: u64,
        pub target: Target,
    }

    /// Tree manifest: version 1, count u32, entries (tag, mode, size, name, hash or target).
    pub fn tree_manifest(b: &[u8]) -> Vec<TreeEntry> {
        assert_eq!(b[0], 1, "manifest version");
        let n = u32le(b, 1) as usize;
        let mut at = 5;
        let mut out: Vec<TreeEntry> = Vec::new();
        for _ in 0..n {
            let tag = b[at];
            let mode = u32le(b, at + 1);
            let size = u64le(b, at + 5);
            let name_len = u16le(b, at + 13) as usize;
            at += 15;
            let name = b[at..at + name_len].to_vec();
            at += name_len;
            assert!(!name.is_empty() && !name.contains(&b'/') && name != b"." && name != b"..");
            if let Some(prev) = out.last() {
                assert!(
                    prev.name < name,
                    "entries sorted by name bytes, no duplicates"
                );
            }
            let target = match tag {
                1 | 2 => {
                    let h = hex(&b[at..at + 32]);
                    at += 32;
                    if tag == 1 {
                        Target::File(h)
                    } else {
                        Target::Dir(h)
                    }
                }
                3 => {
                    let l = u16le(b, at) as usize;
                    let t = b[at + 2..at + 2 + l].to_vec();
                    at += 2 + l;
                    Target::Link(t)
                }
                t => panic!("unknown tag {t}"),
            };
            out.push(TreeEntry {
                name,
                mode,
                size,
                target,
            });
        }
        assert_eq!(at, b.len(), "no trailing bytes");
        out
    }

    pub fn encode_tree(entries: &[TreeEntry]) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            let tag = match e.target {
                Target::File(_) => 1u8,
                Target::Dir(_) => 2,
                Target::Link(_) => 3,
            };
            b.push(tag);
            b.extend_from_slice(&e.mode.to_le_bytes());
            b.extend_from_slice(&e.size.to_le_bytes());
            b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            b.extend_from_slice(&e.name);
            match &e.target {
                Target::File(h) | Target::Dir(h) => b.extend_from_slice(&unhex(h)),
                Target::Link(t) => {
                    b.extend_from_slice(&(t.len() as u16).to_le_bytes());
                    b.extend_from_slice(t);
                }
            }
        }
        b
    }

    pub fn unhex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// Every object of every pack under a `.store`, checked; hex hash -> object.
    pub fn read_store(store: &std::path::Path) -> HashMap<String, Object> {
        let mut all = HashMap::new();
        for sub in std::fs::read_dir(store.join("packs")).expect("packs") {
            let sub = sub.expect("entry").path();
            for f in std::fs::read_dir(&sub).expect("fan-out dir") {
                let p = f.expect("entry").path();
                let file = p.file_name().unwrap().to_str().unwrap().to_string();
                let name = file.strip_suffix(".pack").expect(".pack suffix");
                assert_eq!(name.len(), 64);
                assert_eq!(
                    sub.file_name().unwrap().to_str().unwrap(),
                    &name[..2],
                    "fan-out"
                );
                let bytes = std::fs::read(&p).expect("read pack");
                all.extend(read_pack(name, &bytes));
            }
        }
        all
    }
}

// ---------------------------------------------------------------------------------------------

/// (a) The fixture reindexes, verifies, lists and checks out byte for byte.
#[test]
fn golden_fixture_reads_back() {
    let before = snapshot(Path::new(FIXTURE));
    let ws = fixture_ws();
    let out = ws.ok(&["verify"]);
    assert!(out.contains("checked 1 packs, 11 objects"), "{out}");

    let ls = ws.ok(&["ls"]);
    assert!(ls.contains(ROOT_PATH) && ls.contains(TREE), "{ls}");
    let roots: serde_json::Value = serde_json::from_str(&ws.ok(&["ls", "--json"])).expect("json");
    assert_eq!(
        roots,
        serde_json::json!([{"path": ROOT_PATH, "kind": "tree", "hash": TREE,
                             "size": TREE_SIZE, "time_ns": ROOT_TIME_NS}])
    );
    let tree: serde_json::Value =
        serde_json::from_str(&ws.ok(&["ls", "--json", TREE])).expect("json");
    assert_eq!(
        tree,
        serde_json::json!([
            {"name": "empty", "kind": "file", "hash_or_target": EMPTY, "size": 0, "mode": 0o100644},
            {"name": "hello.txt", "kind": "file", "hash_or_target": HELLO, "size": 13, "mode": 0o100644},
            {"name": "link", "kind": "link", "hash_or_target": "hello.txt", "size": 9, "mode": 0o120777},
            {"name": "rand.bin", "kind": "file", "hash_or_target": RAND, "size": 200_000, "mode": 0o100644},
            {"name": "sub", "kind": "tree", "hash_or_target": SUB_TREE, "size": NOTES_LEN, "mode": 0o40755},
        ])
    );
    assert_eq!(ws.ok(&["cat", &HELLO[..8]]), "hello, store\n");

    ws.ok(&["checkout", TREE, "--to", "out", "--link", "copy"]);
    for (rel, content) in expected_files() {
        let p = ws.p("out").join(rel);
        assert!(
            std::fs::read(&p).expect("restored file") == content,
            "{rel} differs"
        );
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o7777, 0o644, "{rel} mode");
    }
    let link = ws.p("out/link");
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(&link).expect("readlink"),
        Path::new("hello.txt")
    );
    let mut names: Vec<_> = std::fs::read_dir(ws.p("out"))
        .expect("out")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    names.sort();
    assert_eq!(names, ["empty", "hello.txt", "link", "rand.bin", "sub"]);

    assert_eq!(
        snapshot(Path::new(FIXTURE)),
        before,
        "the fixture must never be modified"
    );
}

/// (b) Every pack parses with an independent reader written from store-format.md, and the
/// objects form the documented graph: root record -> tree -> files -> chunks.
#[test]
fn golden_packs_match_spec() {
    let store = Path::new(FIXTURE);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("config.json")).expect("config"))
            .expect("config json");
    assert_eq!(
        config,
        serde_json::json!({"format_version": 1, "chunker": "fastcdc-2020",
            "chunking": {"min": 16384, "avg": 65536, "max": 262144},
            "zstd_level": 3, "pack_target_size": 33554432})
    );
    let packs = crate::common::packs(store);
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].file_stem().unwrap().to_str().unwrap(), PACK);

    let objs = spec::read_store(store);
    assert_eq!(objs.len(), OBJECTS);
    let kinds: BTreeMap<u8, usize> = objs.values().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o.kind).or_default() += 1;
        m
    });
    // 4 chunks (2 of rand.bin, hello, notes; the empty file has none), 4 file manifests,
    // 2 trees, 1 root record.
    assert_eq!(kinds, BTreeMap::from([(1, 4), (2, 4), (3, 2), (4, 1)]));
    assert!(
        objs.values().any(|o| o.compression == 1),
        "fixture covers zstd objects"
    );
    assert!(objs
        .values()
        .any(|o| o.compression == 0 && o.raw.len() >= 64));
    assert!(objs
        .values()
        .all(|o| o.compression == 1 || o.stored_len as usize == o.raw.len()));

    // Root record: compact JSON with exactly these fields, in the root domain.
    let rec = &objs[ROOT_RECORD];
    assert_eq!(rec.kind, 4);
    let json = format!(
        r#"{{"path":"{ROOT_PATH}","kind":"tree","hash":"{TREE}","size":{TREE_SIZE},"time_ns":{ROOT_TIME_NS}}}"#
    );
    assert_eq!(String::from_utf8(rec.raw.clone()).expect("utf8"), json);

    // Walk the tree from the spec alone and rebuild every file.
    let get = |h: &str, kind: u8| -> &[u8] {
        let o = objs.get(h).unwrap_or_else(|| panic!("object {h} missing"));
        assert_eq!(o.kind, kind, "kind of {h}");
        &o.raw
    };
    let read_file = |h: &str| -> Vec<u8> {
        let (size, chunks) = spec::file_manifest(get(h, 2));
        let mut data = Vec::new();
        for (i, (c, len)) in chunks.iter().enumerate() {
            let raw = get(c, 1);
            assert_eq!(raw.len(), *len as usize);
            assert!(raw.len() <= 262_144, "max chunk");
            if i + 1 < chunks.len() {
                assert!(raw.len() >= 16_384, "min chunk (all but the last)");
            }
            data.extend_from_slice(raw);
        }
        assert_eq!(data.len() as u64, size);
        data
    };
    let root = spec::tree_manifest(get(TREE, 3));
    let expected = expected_files();
    let mut seen = BTreeSet::new();
    let mut check_dir = |entries: &[spec::TreeEntry], prefix: &str| {
        for e in entries {
            let rel = format!("{prefix}{}", String::from_utf8_lossy(&e.name));
            match &e.target {
                spec::Target::File(h) => {
                    assert_eq!(e.mode, 0o100644, "{rel}");
                    let data = read_file(h);
                    assert_eq!(data.len() as u64, e.size, "{rel} size");
                    assert!(data == expected[rel.as_str()], "{rel} content");
                    seen.insert(rel);
                }
                spec::Target::Link(t) => {
                    assert_eq!((rel.as_str(), t.as_slice()), ("link", &b"hello.txt"[..]));
                    assert_eq!((e.mode, e.size), (0o120777, 9));
                }
                spec::Target::Dir(h) => {
                    assert_eq!(
                        (rel.as_str(), h.as_str(), e.mode),
                        ("sub", SUB_TREE, 0o40755)
                    );
                }
            }
        }
    };
    check_dir(&root, "");
    let sub = spec::tree_manifest(get(SUB_TREE, 3));
    assert_eq!(sub.iter().map(|e| e.size).sum::<u64>(), NOTES_LEN as u64);
    check_dir(&sub, "sub/");
    assert_eq!(seen, expected.keys().map(|k| k.to_string()).collect());
    assert_eq!(
        root.iter().map(|e| e.size).sum::<u64>(),
        TREE_SIZE,
        "dir size = sum"
    );

    let (_, chunks) = spec::file_manifest(get(RAND, 2));
    let want: Vec<(String, u32)> = RAND_CHUNKS
        .iter()
        .map(|(h, l)| (h.to_string(), *l))
        .collect();
    assert_eq!(chunks, want);
}

/// (c) File and tree hashes recomputed from the documented encodings.
#[test]
fn golden_hashes_from_spec() {
    let hello = b"hello, store\n";
    let chunk = spec::hash(spec::CHUNK, hello);
    assert_eq!(spec::hex(&chunk), HELLO_CHUNK);
    let manifest = spec::encode_file_manifest(&[(chunk, hello.len() as u32)]);
    assert_eq!(manifest.len(), 49);
    assert_eq!(spec::hex(&spec::hash(spec::FILE, &manifest)), HELLO);
    // Same bytes, other domains: different hashes.
    assert_ne!(spec::hash(spec::FILE, hello), chunk);

    // The empty file: no chunks at all.
    let empty = spec::encode_file_manifest(&[]);
    assert_eq!(empty, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(spec::hex(&spec::hash(spec::FILE, &empty)), EMPTY);

    // rand.bin from its chunk list.
    let chunks: Vec<_> = RAND_CHUNKS
        .iter()
        .map(|(h, l)| (spec::unhex(h), *l))
        .collect();
    let rand = rand_bin();
    assert_eq!(
        spec::hex(&spec::hash(spec::CHUNK, &rand[..RAND_CHUNKS[0].1 as usize])),
        RAND_CHUNKS[0].0
    );
    assert_eq!(
        spec::hex(&spec::hash(
            spec::FILE,
            &spec::encode_file_manifest(&chunks)
        )),
        RAND
    );

    // Trees, bottom up.
    use spec::{Target, TreeEntry};
    let file = |name: &str, size: u64, h: &str| TreeEntry {
        name: name.into(),
        mode: 0o100644,
        size,
        target: Target::File(h.into()),
    };
    let sub = vec![file("notes.md", NOTES_LEN as u64, NOTES)];
    assert_eq!(
        spec::hex(&spec::hash(spec::TREE, &spec::encode_tree(&sub))),
        SUB_TREE
    );
    let root = vec![
        file("empty", 0, EMPTY),
        file("hello.txt", 13, HELLO),
        TreeEntry {
            name: b"link".to_vec(),
            mode: 0o120777,
            size: 9,
            target: Target::Link(b"hello.txt".to_vec()),
        },
        file("rand.bin", 200_000, RAND),
        TreeEntry {
            name: b"sub".to_vec(),
            mode: 0o40755,
            size: NOTES_LEN as u64,
            target: Target::Dir(SUB_TREE.into()),
        },
    ];
    let enc = spec::encode_tree(&root);
    assert_eq!(enc.len(), 248);
    assert_eq!(spec::hex(&spec::hash(spec::TREE, &enc)), TREE);
}

/// The pack version in a pack file's header.
fn pack_version(pack: &Path) -> u32 {
    let b = std::fs::read(pack).expect("pack");
    u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"))
}

/// (e) The pack-version-2 fixture, whose small objects are grouped (store-format.md 5.4),
/// reindexes, verifies and checks out byte for byte; the independent reader finds in it
/// exactly the format-1 fixture's objects (but the root record), three of them raw and the
/// rest in three group frames.
#[test]
fn golden2_groups_read_back_and_match_spec() {
    let before = snapshot(Path::new(FIXTURE2));
    let ws = fixture_ws_of(FIXTURE2);
    let out = ws.ok(&["verify"]);
    assert!(out.contains("checked 1 packs, 11 objects"), "{out}");
    let roots: serde_json::Value = serde_json::from_str(&ws.ok(&["ls", "--json"])).expect("json");
    assert_eq!(
        roots,
        serde_json::json!([{"path": ROOT_PATH2, "kind": "tree", "hash": TREE,
                             "size": TREE_SIZE, "time_ns": ROOT_TIME_NS2}])
    );
    assert_eq!(ws.ok(&["cat", &HELLO[..8]]), "hello, store\n");
    ws.ok(&["checkout", TREE, "--to", "out", "--link", "copy"]);
    for (rel, content) in expected_files() {
        let p = ws.p("out").join(rel);
        assert!(
            std::fs::read(&p).expect("restored") == content,
            "{rel} differs"
        );
    }
    assert_eq!(
        std::fs::read_link(ws.p("out/link")).expect("readlink"),
        Path::new("hello.txt")
    );

    let packs = crate::common::packs(Path::new(FIXTURE2));
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].file_stem().unwrap().to_str().unwrap(), PACK2);
    assert_eq!(pack_version(&packs[0]), 2);
    let new = spec::read_store(Path::new(FIXTURE2));
    let old = spec::read_store(Path::new(FIXTURE));
    let non_root =
        |m: &std::collections::HashMap<String, spec::Object>| -> BTreeMap<String, (u8, Vec<u8>)> {
            m.iter()
                .filter(|(_, o)| o.kind != 4)
                .map(|(h, o)| (h.clone(), (o.kind, o.raw.clone())))
                .collect()
        };
    assert_eq!(non_root(&new), non_root(&old));
    let rec = &new[ROOT_RECORD2];
    let json = format!(
        r#"{{"path":"{ROOT_PATH2}","kind":"tree","hash":"{TREE}","size":{TREE_SIZE},"time_ns":{ROOT_TIME_NS2}}}"#
    );
    assert_eq!(String::from_utf8(rec.raw.clone()).expect("utf8"), json);
    let raw: BTreeSet<&str> = new
        .iter()
        .filter(|(_, o)| o.compression == 0)
        .map(|(h, _)| h.as_str())
        .collect();
    assert_eq!(
        raw,
        BTreeSet::from([RAND_CHUNKS[0].0, RAND_CHUNKS[1].0]),
        "only the two large chunks are stored alone"
    );
    assert!(new.values().all(|o| o.compression != 1));
    assert_eq!(
        snapshot(Path::new(FIXTURE2)),
        before,
        "the fixture must never be modified"
    );
}

/// (d) Adding the same files to a fresh store with the same chunking gives the same hashes
/// and the same objects (format stability). Only the root record differs (path and time).
#[test]
fn golden_readd_is_stable() {
    let ws = Ws::bare();
    // The fixture's parameters, explicitly: a later change of the defaults must not break this.
    ws.ok(&["init", "--chunk-avg", "65536", "--zstd-level", "3"]);
    write_data(ws.path());
    let out = ws.ok(&["add", "-q", "data"]);
    assert_eq!(out.split_whitespace().next(), Some(TREE), "{out}");
    ws.ok(&["verify"]);

    let new = spec::read_store(&ws.p(".store"));
    let old = spec::read_store(Path::new(FIXTURE));
    // Written today: pack version 2, the trees and the root record (stored last, by one
    // thread) in one group.
    for p in crate::common::packs(&ws.p(".store")) {
        assert_eq!(pack_version(&p), 2);
    }
    assert!(
        new.values()
            .filter(|o| o.kind >= 3 && o.compression == 2)
            .count()
            == 3,
        "trees and root record grouped"
    );
    let non_root = |m: &std::collections::HashMap<String, spec::Object>| -> BTreeSet<(String, u8)> {
        m.iter()
            .filter(|(_, o)| o.kind != 4)
            .map(|(h, o)| (h.clone(), o.kind))
            .collect()
    };
    assert_eq!(non_root(&new), non_root(&old));
    let roots: Vec<_> = new.values().filter(|o| o.kind == 4).collect();
    assert_eq!(roots.len(), 1);
    let rec: serde_json::Value = serde_json::from_slice(&roots[0].raw).expect("root json");
    assert_eq!(rec["hash"], TREE);
    assert_eq!(rec["kind"], "tree");
    assert_eq!(rec["size"], TREE_SIZE);
    let want = std::fs::canonicalize(ws.path())
        .expect("canon")
        .join("data");
    assert!(
        rec["path"] == want.to_str().unwrap() || rec["path"] == ws.p("data").to_str().unwrap(),
        "{rec}"
    );
}
