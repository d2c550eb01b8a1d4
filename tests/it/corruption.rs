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
