//! Property tests: chunking and manifests round-trip for arbitrary inputs.

use proptest::prelude::*;
use store::manifest::{EntryKind, FileManifest, TreeEntry, TreeManifest};
use store::{AddOptions, ChunkParams, Hash, InitOptions, ObjectKind, Store};

use crate::common::pseudo_random;

/// A store with small chunks so that short inputs still span many chunks.
fn small_chunk_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("dir");
    let opts = InitOptions {
        chunking: Some(ChunkParams::with_avg(1024).expect("params")),
        zstd_level: None,
    };
    let s = Store::init(&dir.path().join(".store"), &opts).expect("init");
    (dir, s)
}

fn add_bytes(dir: &tempfile::TempDir, s: &Store, name: &str, data: &[u8]) -> FileManifest {
    let p = dir.path().join(name);
    std::fs::write(&p, data).expect("write");
    let r = s.add(&[p], &AddOptions::default()).expect("add");
    s.file_manifest(&r.added[0].hash).expect("manifest")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Chunks cover the file exactly, in order, within the size bounds, and read back equal.
    #[test]
    fn chunks_partition_the_file(len in 0usize..60_000, seed in any::<u64>()) {
        let (dir, s) = small_chunk_store();
        let data = pseudo_random(len, seed);
        let m = add_bytes(&dir, &s, "f", &data);
        let p = s.config().chunking;
        prop_assert_eq!(m.size, len as u64);
        let mut rebuilt = Vec::with_capacity(len);
        for (i, (h, l)) in m.chunks.iter().enumerate() {
            prop_assert!(*l <= p.max);
            if i + 1 < m.chunks.len() {
                prop_assert!(*l >= p.min, "chunk {} of {} has {} bytes", i, m.chunks.len(), l);
            }
            let (kind, bytes) = s.read_object(h).expect("chunk");
            prop_assert_eq!(kind, ObjectKind::Chunk);
            prop_assert_eq!(bytes.len(), *l as usize);
            prop_assert_eq!(Hash::of(ObjectKind::Chunk, &bytes), *h);
            rebuilt.extend_from_slice(&bytes);
        }
        prop_assert_eq!(rebuilt, data);
    }

    /// Content-defined boundaries: an insertion changes only the chunks around it.
    #[test]
    fn insertion_changes_few_chunks(seed in any::<u64>(), at in 0usize..100_000, ins in 1usize..64) {
        let (dir, s) = small_chunk_store();
        let data = pseudo_random(100_000, seed);
        let mut edited = data.clone();
        edited.splice(at..at, pseudo_random(ins, seed ^ 1));
        let a = add_bytes(&dir, &s, "a", &data);
        let b = add_bytes(&dir, &s, "b", &edited);
        let old: std::collections::HashSet<_> = a.chunks.iter().map(|c| c.0).collect();
        let changed = b.chunks.iter().filter(|c| !old.contains(&c.0)).count();
        // Fixed-size blocks would change every block after `at` (up to ~97); CDC resyncs, most
        // often within the chunk of the insertion. Not always: the minimum chunk size makes the
        // search skip candidates, so the new cut chain can run beside the old one for a while
        // before meeting it. Measured over 600 insertions: 1 chunk 88%, 2 7%, 3 3%, 4-5 2%, 9
        // once; the tail shrinks about twofold per chunk, so 24 is out of reach by chance and far
        // below what fixed-size blocks change.
        prop_assert!(changed <= 24, "{} of {} chunks changed", changed, b.chunks.len());
    }

    /// Chunking is deterministic: the same bytes give the same file hash in another store.
    #[test]
    fn same_bytes_same_hash(len in 0usize..20_000, seed in any::<u64>()) {
        let data = pseudo_random(len, seed);
        let (d1, s1) = small_chunk_store();
        let (d2, s2) = small_chunk_store();
        prop_assert_eq!(add_bytes(&d1, &s1, "x", &data).hash(), add_bytes(&d2, &s2, "y", &data).hash());
    }

    /// File manifests encode and decode losslessly.
    #[test]
    fn file_manifest_round_trip(lens in proptest::collection::vec(1u32..300_000, 0..50), seed in any::<u64>()) {
        let chunks: Vec<(Hash, u32)> = lens
            .iter()
            .enumerate()
            .map(|(i, l)| (Hash::of(ObjectKind::Chunk, &pseudo_random(8, seed + i as u64)), *l))
            .collect();
        let m = FileManifest { size: lens.iter().map(|l| u64::from(*l)).sum(), chunks };
        let h = m.hash();
        prop_assert_eq!(FileManifest::decode(&m.encode(), &h).expect("decode"), m);
    }

    /// Tree manifests encode and decode losslessly; names with '/' are refused on decode.
    #[test]
    fn tree_manifest_round_trip(names in proptest::collection::btree_set("[a-zA-Z0-9_.-]{1,20}", 0..20)) {
        let entries: Vec<TreeEntry> = names
            .iter()
            .filter(|n| *n != "." && *n != "..")
            .enumerate()
            .map(|(i, n)| TreeEntry {
                name: n.as_bytes().to_vec(),
                mode: 0o100644,
                size: i as u64,
                kind: match i % 3 {
                    0 => EntryKind::File(Hash::of(ObjectKind::File, n.as_bytes())),
                    1 => EntryKind::Dir(Hash::of(ObjectKind::Tree, n.as_bytes())),
                    _ => EntryKind::Symlink(n.as_bytes().to_vec()),
                },
            })
            .collect();
        let t = TreeManifest { entries };
        let h = t.hash();
        prop_assert_eq!(TreeManifest::decode(&t.encode(), &h).expect("decode"), t);
    }
}

#[test]
fn tree_names_that_escape_are_rejected() {
    for bad in [&b".."[..], b".", b"a/b", b""] {
        let t = TreeManifest {
            entries: vec![TreeEntry {
                name: bad.to_vec(),
                mode: 0o644,
                size: 0,
                kind: EntryKind::Symlink(b"x".to_vec()),
            }],
        };
        let h = t.hash();
        assert!(TreeManifest::decode(&t.encode(), &h).is_err(), "{bad:?}");
    }
}
