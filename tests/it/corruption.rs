//! Corruption detection: bit flips and truncation are found and named, never returned as data.

use std::fs;

use store::exit;

use crate::common::{packs, pseudo_random, Ws};

fn setup() -> (Ws, String, Vec<u8>) {
    let ws = Ws::new();
    let data = pseudo_random(1 << 20, 42);
    ws.write("data.bin", &data);
    let h = ws.add("data.bin");
    (ws, h, data)
}

#[test]
fn bit_flip_in_a_chunk_is_named_by_verify_and_refused_by_checkout() {
    let (ws, h, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    let mut bytes = fs::read(&pack).expect("read");
    bytes[1000] ^= 0x01; // inside the first object's data
    fs::write(&pack, &bytes).expect("write");
    let o = ws.run(&["verify"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    let e = String::from_utf8_lossy(&o.stderr);
    let name = pack
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(e.contains(&name), "names the pack: {e}");
    assert!(
        e.contains("object") && e.contains("chunk"),
        "names the object: {e}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&ws.run(&["verify", "--json"]).stdout).expect("json");
    assert!(v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .any(|p| p["object"].is_string()));
    let o = ws.run(&["checkout", &h, "--to", "out", "--link", "copy"]);
    assert_eq!(
        o.status.code(),
        Some(exit::CORRUPT),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // No partially restored file is visible.
    let leftovers: Vec<_> = fs::read_dir(ws.p("out")).expect("out").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let o = ws.run(&["cat", &h]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
}

#[test]
fn truncated_pack_is_named() {
    let (ws, h, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    let bytes = fs::read(&pack).expect("read");
    fs::write(&pack, &bytes[..bytes.len() / 2]).expect("truncate");
    let o = ws.run(&["verify"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&pack.file_name().expect("n").to_string_lossy().into_owned()),
        "{e}"
    );
    assert!(e.contains("truncated") || e.contains("trailer"), "{e}");
    let o = ws.run(&["checkout", &h, "--to", "out", "--link", "copy"]);
    assert_ne!(o.status.code(), Some(0));
    // reindex skips the damaged pack and says so.
    let o = ws.run(&["reindex"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    assert!(String::from_utf8_lossy(&o.stderr).contains("damaged pack"));
}

#[test]
fn flipped_table_of_contents_and_renamed_pack_are_detected() {
    let (ws, _, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    let mut bytes = fs::read(&pack).expect("read");
    let n = bytes.len();
    bytes[n - 56 - 10] ^= 0x80; // inside the table of contents
    fs::write(&pack, &bytes).expect("write");
    let o = ws.run(&["verify"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    assert!(String::from_utf8_lossy(&o.stderr).contains("table of contents"));

    let (ws2, _, _) = setup();
    let pack = packs(&ws2.p(".store")).pop().expect("one pack");
    let mut bytes = fs::read(&pack).expect("read");
    bytes[0] = b'X';
    fs::write(&pack, &bytes).expect("write");
    let o = ws2.run(&["verify"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    assert!(String::from_utf8_lossy(&o.stderr).contains("magic"));
}

#[test]
fn missing_pack_is_reported() {
    let (ws, _, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    fs::remove_file(&pack).expect("rm");
    let o = ws.run(&["verify"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing on disk"));
}

/// Rewrites a pack's table of contents with `edit`, fixing up the checksum so only the edit
/// itself is wrong (what a buggy or malicious writer could produce).
fn edit_toc(pack: &std::path::Path, edit: impl Fn(&mut [u8])) {
    let mut b = fs::read(pack).expect("read");
    let n = b.len();
    let count = u32::from_le_bytes(b[n - 56..n - 52].try_into().expect("4")) as usize;
    let toc_off = u64::from_le_bytes(b[n - 48..n - 40].try_into().expect("8")) as usize;
    let toc_end = toc_off + count * 52;
    edit(&mut b[toc_off..toc_end]);
    let sum = blake3::Hasher::new_derive_key("store 2026-11 pack toc v1")
        .update(&b[toc_off..toc_end])
        .finalize();
    b[n - 40..n - 8].copy_from_slice(sum.as_bytes());
    fs::write(pack, b).expect("write");
}

#[test]
fn crafted_offsets_are_refused_not_a_crash() {
    let (ws, _, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    edit_toc(&pack, |toc| {
        toc[44..52].copy_from_slice(&(u64::MAX - 10).to_le_bytes())
    });
    let o = ws.run(&["verify"]);
    assert_eq!(
        o.status.code(),
        Some(exit::CORRUPT),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside the data area"));
}

#[test]
fn unknown_object_kind_means_newer_format() {
    let (ws, _, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    edit_toc(&pack, |toc| toc[32] = 42);
    let o = ws.run(&["reindex"]);
    assert_eq!(
        o.status.code(),
        Some(exit::NEWER_FORMAT),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Refusing to reindex changed nothing: the index still serves the data.
    assert!(ws.ok(&["ls"]).contains("data.bin"));
}

#[test]
fn gc_never_deletes_a_pack_it_cannot_read() {
    let (ws, _, _) = setup();
    let pack = packs(&ws.p(".store")).pop().expect("one pack");
    let mut bytes = fs::read(&pack).expect("read");
    let n = bytes.len();
    bytes[n - 20] ^= 0xff; // damage the trailer checksum
    fs::write(&pack, &bytes).expect("write");
    // reindex skips it (reported), so it becomes an unindexed pack...
    assert_eq!(ws.run(&["reindex"]).status.code(), Some(exit::CORRUPT));
    // ...which gc must keep: it may hold the only copy of someone's data.
    let gc: serde_json::Value =
        serde_json::from_str(&ws.ok(&["gc", "--yes", "--json"])).expect("json");
    assert_eq!(
        gc["kept_unreadable_packs"].as_array().map(Vec::len),
        Some(1),
        "{gc}"
    );
    assert!(pack.exists());
}

#[test]
fn reindex_does_not_adopt_a_root_whose_data_is_gone() {
    let ws = Ws::new();
    ws.write("a.bin", &pseudo_random(200_000, 1));
    ws.add("a.bin");
    let b = pseudo_random(200_000, 2);
    ws.write("b.bin", &b);
    let before_b = packs(&ws.p(".store"));
    ws.add("b.bin");
    let b_pack: Vec<_> = packs(&ws.p(".store"))
        .into_iter()
        .filter(|p| !before_b.contains(p))
        .collect();
    // The same content under another name: its pack holds only a root record (dedup).
    ws.write("c.bin", &b);
    let before_c = packs(&ws.p(".store"));
    ws.add("c.bin");
    let c_pack: Vec<_> = packs(&ws.p(".store"))
        .into_iter()
        .filter(|p| !before_c.contains(p))
        .collect();
    assert_eq!((b_pack.len(), c_pack.len()), (1, 1));
    // Lose b's pack (the data): c's root record now points at nothing.
    fs::remove_file(&b_pack[0]).expect("rm");
    let o = ws.run(&["reindex"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("root record not adopted") || o.status.success(),
        "{e}"
    );
    let ls = ws.ok(&["ls"]);
    assert!(
        ls.contains("a.bin") && !ls.contains("b.bin") && !ls.contains("c.bin"),
        "{ls}"
    );
    // gc can walk every adopted root, and a's data is intact.
    ws.ok(&["gc", "--yes"]);
    ws.ok(&["verify"]);
}

#[test]
fn invalid_config_is_named() {
    let (ws, _, _) = setup();
    let cfg = ws.p(".store/config.json");
    let s = fs::read_to_string(&cfg).expect("config");
    fs::write(&cfg, s.replace("\"avg\": 65536", "\"avg\": 5")).expect("write");
    let o = ws.run(&["ls"]);
    assert_eq!(o.status.code(), Some(exit::CORRUPT));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("config.json") && e.contains("FastCDC"), "{e}");
}

/// Turns the healthy index file's bytes into damaged ones.
type Damage = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// One way of damaging `.store/index.sqlite`.
struct IndexDamage {
    what: String,
    apply: Damage,
}

/// Damage to every structure of the index file: the header fields SQLite checks (magic, page
/// size, file format versions, page count) and the b-tree header of page 1, the page-type byte
/// of every other page (each one a table or index b-tree), truncations, garbage and zeros.
/// (Flips inside the unused space of a page are invisible to SQLite and harmless, and a flip
/// of `user_version` reads as a newer schema, exit 7: neither is a case here.)
fn index_damages(len: usize) -> Vec<IndexDamage> {
    const PAGE: usize = 4096;
    let flip = |at: usize| IndexDamage {
        what: format!("byte {at} flipped"),
        apply: Box::new(move |b: &[u8]| {
            let mut b = b.to_vec();
            b[at] ^= 0xff;
            b
        }),
    };
    let mut out: Vec<IndexDamage> = [0, 16, 18, 19, 21, 28, 100].into_iter().map(flip).collect();
    out.extend((1..len / PAGE).map(|p| flip(p * PAGE)));
    for keep in [0, 100, PAGE, len / 2] {
        out.push(IndexDamage {
            what: format!("truncated to {keep} bytes"),
            apply: Box::new(move |b: &[u8]| b[..keep].to_vec()),
        });
    }
    out.push(IndexDamage {
        what: "replaced by garbage".into(),
        apply: Box::new(move |_: &[u8]| pseudo_random(len, 99)),
    });
    out.push(IndexDamage {
        what: "zeroed".into(),
        apply: Box::new(move |_: &[u8]| vec![0; len]),
    });
    out
}

#[test]
fn damaged_index_is_named_by_verify_and_rebuilt_in_place_by_reindex() {
    let (ws, h, data) = setup();
    let store = ws.p(".store");
    let index = store.join("index.sqlite");
    // The last command closed the index, checkpointing everything into the main file.
    let wal = fs::metadata(store.join("index.sqlite-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL was checkpointed");
    let good = fs::read(&index).expect("index");
    let packs_before = packs(&store);
    let cases = index_damages(good.len());
    assert!(cases.len() >= 20, "{} cases", cases.len());
    for (i, case) in cases.iter().enumerate() {
        let what = &case.what;
        fs::write(&index, (case.apply)(&good)).expect("damage");
        for ext in ["-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{ext}", index.display()));
        }
        let o = ws.run(&["verify"]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(exit::CORRUPT), "{what}: verify: {e}");
        assert!(
            e.contains("CORRUPT index") && e.contains("index.sqlite"),
            "{what}: verify names the index: {e}"
        );
        // gc must never take an unreadable or empty index's word that the packs are garbage.
        let _ = ws.run(&["gc", "--yes"]);
        assert_eq!(packs(&store), packs_before, "{what}: gc deleted packs");
        let o = ws.run(&["reindex"]);
        assert!(
            o.status.success(),
            "{what}: reindex: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = ws.run(&["verify"]);
        assert!(
            o.status.success(),
            "{what}: verify after reindex: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = format!("out{i}");
        ws.ok(&["checkout", &h, "--to", &out, "--link", "copy"]);
        assert!(
            fs::read(ws.p(&format!("{out}/data.bin"))).expect("restored") == data,
            "{what}: restored bytes differ"
        );
        // No rebuild file or stale log is left beside the new index.
        let left: Vec<String> = fs::read_dir(&store)
            .expect("store dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("index.sqlite.") || n.ends_with("-journal"))
            .collect();
        assert!(left.is_empty(), "{what}: {left:?}");
    }
}

#[test]
fn commands_on_an_index_that_is_not_a_database_say_so_and_suggest_reindex() {
    let (ws, h, data) = setup();
    let index = ws.p(".store/index.sqlite");
    fs::write(&index, b"this is not a database, it is a sentence long enough for a header.............................................").expect("write");
    for args in [
        vec!["status"],
        vec!["ls"],
        vec!["cat", &h],
        vec!["gc", "--yes"],
    ] {
        let o = ws.run(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(exit::CORRUPT), "{args:?}: {e}");
        assert!(
            e.contains("index.sqlite") && e.contains("store reindex"),
            "{args:?}: {e}"
        );
    }
    ws.ok(&["reindex"]);
    assert_eq!(ws.run(&["cat", &h]).stdout, data);
}

/// Object rows that disagree with their pack's table of contents are named by `verify`, by
/// object and pack: a row pointing at the wrong offset (found by the TOC's hash lookup), and a
/// row moved to another pack, which that pack's TOC does not hold (found because more rows
/// name that pack than its TOC finds: rows have no index by pack since migration 4).
/// `reindex` rebuilds the rows from the packs.
#[test]
fn object_rows_that_disagree_with_their_pack_are_named_by_verify() {
    let ws = Ws::new();
    ws.write("a.bin", &pseudo_random(300_000, 1));
    ws.add("a.bin");
    ws.write("b.bin", &pseudo_random(300_000, 2));
    ws.add("b.bin");
    assert_eq!(packs(&ws.p(".store")).len(), 2);
    ws.ok(&["verify"]);
    let index = ws.p(".store/index.sqlite");
    let (moved, shifted) = {
        let conn = rusqlite::Connection::open(&index).expect("open index");
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM packs ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("ids");
        assert_eq!(ids.len(), 2);
        let first_of = |pack: i64| -> Vec<u8> {
            conn.query_row(
                "SELECT hash FROM objects WHERE pack = ?1 ORDER BY hash LIMIT 1",
                [pack],
                |r| r.get(0),
            )
            .expect("an object")
        };
        let (moved, shifted) = (first_of(ids[0]), first_of(ids[1]));
        conn.execute(
            "UPDATE objects SET pack = ?1 WHERE hash = ?2",
            rusqlite::params![ids[1], moved],
        )
        .expect("move");
        conn.execute(
            "UPDATE objects SET offset = offset + 1 WHERE hash = ?1",
            [&shifted],
        )
        .expect("shift");
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        (hex(&moved), hex(&shifted))
    };
    let o = ws.run(&["verify"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(exit::CORRUPT), "{e}");
    let line_of = |hash: &str| {
        e.lines()
            .find(|l| l.contains(hash))
            .unwrap_or_else(|| panic!("verify names {hash}: {e}"))
            .to_string()
    };
    assert!(
        line_of(&moved).contains("whose table of contents does not hold it"),
        "{e}"
    );
    assert!(line_of(&shifted).contains("the pack has it at"), "{e}");
    ws.ok(&["reindex"]);
    ws.ok(&["verify"]);
}
