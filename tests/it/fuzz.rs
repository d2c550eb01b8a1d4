//! Property-based fuzzing of the decoders of bytes that come from other machines (issue 18):
//! pack files, file/tree/root manifests, stored objects with any declared length, the store's
//! configuration and Pegasus YAML. Each target gets arbitrary bytes and mutations of valid
//! encodings; every one must answer Ok or a named error, never panic, hang or allocate what a
//! header merely declares. In CI each target runs `PROPTEST_CASES` cases (default 256, seconds);
//! `benches/fuzz.sh` drives them for minutes.

use proptest::prelude::*;

use store::hash::{Hash, ObjectKind};
use store::manifest::{FileManifest, RootRecord, TreeManifest};
use store::pack::{Compression, Entry, PackReader};

fn what() -> String {
    "fuzz".to_string()
}

/// Flips, truncates or extends a valid encoding.
fn mutate(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = valid.len().max(1);
    (
        0..n,
        any::<u8>(),
        0..n + 8,
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(at, byte, cut, tail)| {
            let mut b = valid.clone();
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= byte | 1;
            }
            b.truncate(cut);
            b.extend(tail);
            b
        })
}

fn sample_file_manifest() -> Vec<u8> {
    FileManifest {
        size: 3 << 16,
        chunks: vec![
            (Hash::of(ObjectKind::Chunk, b"a"), 1 << 16),
            (Hash::of(ObjectKind::Chunk, b"b"), 2 << 16),
        ],
    }
    .encode()
}

proptest! {
    #[test]
    fn manifests_decode_or_name_the_damage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let h = Hash::of(ObjectKind::File, &bytes);
        let _ = FileManifest::decode(&bytes, &h);
        let _ = TreeManifest::decode(&bytes, &h);
        let _ = RootRecord::decode(&bytes, &h);
    }

    #[test]
    fn mutated_file_manifests_decode_or_name_the_damage(bytes in mutate(sample_file_manifest())) {
        let h = Hash::of(ObjectKind::File, &bytes);
        let _ = FileManifest::decode(&bytes, &h);
    }

    /// A stored object may declare any length (a remote could say 4 GiB): decoding answers
    /// without allocating it, whatever the payload.
    #[test]
    fn stored_objects_with_any_declared_length(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        raw_len in any::<u32>(),
        zstd_frame in any::<bool>(),
    ) {
        let stored = if zstd_frame {
            zstd::bulk::compress(&payload, 1).expect("compress")
        } else {
            payload.clone()
        };
        let entry = Entry {
            hash: Hash::of(ObjectKind::Chunk, &payload),
            kind: ObjectKind::Chunk,
            compression: Compression::Zstd,
            raw_len,
            stored_len: stored.len() as u32,
            offset: 0,
        };
        let r = store::pack::decode(&entry, &stored, &what);
        if raw_len as usize != payload.len() || !zstd_frame {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn pack_files_open_or_name_the_damage(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("x.pack");
        std::fs::write(&p, &bytes).expect("write");
        if let Ok(r) = PackReader::open(&p) {
            if let Ok(entries) = r.entries() {
                for e in entries.iter().take(16) {
                    let _ = r.read(e);
                }
            }
        }
    }

    #[test]
    fn configurations_parse_or_name_the_damage(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(c) = serde_json::from_slice::<store::Config>(&bytes) {
            let _ = c.validate();
        }
    }

    #[test]
    fn workflow_yaml_parses_or_names_the_damage(text in "[\\[\\]{}:,&*!|>'\"#\\- a-z0-9\\n]{0,400}") {
        let _ = store::pegasus::Workflow::parse(&text, std::path::Path::new("fuzz.yml"));
    }
}

/// A real pack, mutated: reading it back never panics.
#[test]
fn mutated_real_packs_never_panic() {
    let ws = crate::common::Ws::new();
    ws.write("a/x.bin", &crate::common::pseudo_random(300_000, 7));
    ws.write("a/y.txt", b"small file\n");
    ws.ok(&["add", "a"]);
    let packs = crate::common::packs(&ws.p(".store"));
    assert!(!packs.is_empty());
    let valid = std::fs::read(&packs[0]).expect("pack");
    let dir = tempfile::tempdir().expect("dir");
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&mutate(valid), |bytes| {
            let p = dir.path().join("m.pack");
            std::fs::write(&p, &bytes).expect("write");
            if let Ok(r) = PackReader::open(&p) {
                if let Ok(entries) = r.entries() {
                    for e in &entries {
                        let _ = r.read(e);
                    }
                }
            }
            Ok(())
        })
        .expect("no panic");
}
