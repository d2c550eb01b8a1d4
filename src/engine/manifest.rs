//! Manifests: the objects that give chunks meaning. A file manifest is a size and an ordered
//! chunk list; a tree manifest is a sorted list of named entries; a root record says that a
//! top-level path was added with some hash at some time. All are stored in packs like chunks,
//! each in its own hash domain. Encodings are little-endian and specified in `store-format.md`.

use serde::{Deserialize, Serialize};

use crate::engine::hash::{Hash, ObjectKind};
use crate::error::{Error, Result};

/// Version byte that starts every binary manifest.
pub const MANIFEST_VERSION: u8 = 1;

/// A file: its size and the chunks that make it up, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileManifest {
    /// Total size in bytes (the sum of the chunk lengths).
    pub size: u64,
    /// Chunk hashes and lengths, in file order.
    pub chunks: Vec<(Hash, u32)>,
}

impl FileManifest {
    /// Encodes to the stored form: version, size, count, then (hash, length) per chunk.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(13 + self.chunks.len() * 36);
        b.push(MANIFEST_VERSION);
        b.extend_from_slice(&self.size.to_le_bytes());
        b.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for (h, len) in &self.chunks {
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&len.to_le_bytes());
        }
        b
    }

    /// The file hash: the hash of the encoded manifest in the file domain.
    pub fn hash(&self) -> Hash {
        Hash::of(ObjectKind::File, &self.encode())
    }

    /// Decodes the stored form, checking that lengths add up.
    pub fn decode(b: &[u8], what: &Hash) -> Result<FileManifest> {
        let bad = |d: &str| Error::corrupt(format!("file manifest {what}"), d.to_string());
        let mut r = Reader::new(b);
        check_version(
            r.u8().ok_or_else(|| bad("empty"))?,
            &format!("file manifest {what}"),
        )?;
        let size = r.u64().ok_or_else(|| bad("truncated size"))?;
        let n = r.u32().ok_or_else(|| bad("truncated count"))? as usize;
        let mut chunks = Vec::with_capacity(n.min(1 << 20));
        let mut total = 0u64;
        for _ in 0..n {
            let h = r.hash().ok_or_else(|| bad("truncated chunk list"))?;
            let len = r.u32().ok_or_else(|| bad("truncated chunk list"))?;
            total += u64::from(len);
            chunks.push((h, len));
        }
        if total != size || !r.is_done() {
            return Err(bad("chunk lengths do not add up to the size"));
        }
        Ok(FileManifest { size, chunks })
    }
}

/// What a tree entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file; the hash is its file manifest.
    File(Hash),
    /// A directory; the hash is its tree manifest.
    Dir(Hash),
    /// A symbolic link, recorded (not followed) with its target bytes.
    Symlink(Vec<u8>),
}

/// One named entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// File name (raw bytes of the OS name, no `/`).
    pub name: Vec<u8>,
    /// Unix mode bits (permissions and type).
    pub mode: u32,
    /// Logical size: file size, sum of a directory's sizes, or target length.
    pub size: u64,
    /// What it is.
    pub kind: EntryKind,
}

/// A directory: entries sorted by name bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TreeManifest {
    /// The entries, sorted by `name`.
    pub entries: Vec<TreeEntry>,
}

const TAG_FILE: u8 = 1;
const TAG_DIR: u8 = 2;
const TAG_SYMLINK: u8 = 3;

impl TreeManifest {
    /// Encodes to the stored form (entries must already be sorted).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.push(MANIFEST_VERSION);
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            let tag = match e.kind {
                EntryKind::File(_) => TAG_FILE,
                EntryKind::Dir(_) => TAG_DIR,
                EntryKind::Symlink(_) => TAG_SYMLINK,
            };
            b.push(tag);
            b.extend_from_slice(&e.mode.to_le_bytes());
            b.extend_from_slice(&e.size.to_le_bytes());
            b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            b.extend_from_slice(&e.name);
            match &e.kind {
                EntryKind::File(h) | EntryKind::Dir(h) => b.extend_from_slice(h.as_bytes()),
                EntryKind::Symlink(t) => {
                    b.extend_from_slice(&(t.len() as u16).to_le_bytes());
                    b.extend_from_slice(t);
                }
            }
        }
        b
    }

    /// The tree hash.
    pub fn hash(&self) -> Hash {
        Hash::of(ObjectKind::Tree, &self.encode())
    }

    /// Total logical size of the tree.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Decodes the stored form.
    pub fn decode(b: &[u8], what: &Hash) -> Result<TreeManifest> {
        let bad = |d: &str| Error::corrupt(format!("tree manifest {what}"), d.to_string());
        let mut r = Reader::new(b);
        check_version(
            r.u8().ok_or_else(|| bad("empty"))?,
            &format!("tree manifest {what}"),
        )?;
        let n = r.u32().ok_or_else(|| bad("truncated count"))? as usize;
        let mut entries = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let tag = r.u8().ok_or_else(|| bad("truncated entry"))?;
            let mode = r.u32().ok_or_else(|| bad("truncated entry"))?;
            let size = r.u64().ok_or_else(|| bad("truncated entry"))?;
            let name_len = r.u16().ok_or_else(|| bad("truncated entry"))? as usize;
            let name = r
                .bytes(name_len)
                .ok_or_else(|| bad("truncated name"))?
                .to_vec();
            if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
                return Err(bad("invalid entry name"));
            }
            let kind = match tag {
                TAG_FILE => EntryKind::File(r.hash().ok_or_else(|| bad("truncated hash"))?),
                TAG_DIR => EntryKind::Dir(r.hash().ok_or_else(|| bad("truncated hash"))?),
                TAG_SYMLINK => {
                    let l = r.u16().ok_or_else(|| bad("truncated link"))? as usize;
                    EntryKind::Symlink(r.bytes(l).ok_or_else(|| bad("truncated link"))?.to_vec())
                }
                t => return Err(bad(&format!("unknown entry tag {t}"))),
            };
            entries.push(TreeEntry {
                name,
                mode,
                size,
                kind,
            });
        }
        if !r.is_done() {
            return Err(bad("trailing bytes"));
        }
        // Two entries with one name would be restored one over the other (a symlink, then a
        // directory written through it): refused like any other invalid name. Writers sort, so
        // comparing neighbours is enough for their trees; an unsorted tree is sorted to check.
        let sorted = entries.windows(2).all(|w| w[0].name < w[1].name);
        if !sorted {
            let mut names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(bad(&format!(
                    "duplicate entry name {:?}",
                    String::from_utf8_lossy(w[0])
                )));
            }
        }
        Ok(TreeManifest { entries })
    }
}

/// What a top-level add recorded: stored as a JSON object in the root domain so that
/// `reindex` can rebuild the list of tracked paths from packs alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRecord {
    /// Absolute path that was added.
    pub path: String,
    /// `file`, `tree` or `symlink`.
    pub kind: String,
    /// Hash of the file or tree manifest (for a symlink: hash of the target in the file domain).
    pub hash: String,
    /// Logical size in bytes.
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
}

impl RootRecord {
    /// Decodes a stored root record (`what` is its hash), refusing what no `add` writes: a
    /// `path` that is not absolute or holds a NUL byte, a `kind` other than `tree` or `file`,
    /// a `hash` that is not a hash. Every reader of records from elsewhere (a remote) uses it.
    pub fn decode(b: &[u8], what: &Hash) -> Result<RootRecord> {
        let name = format!("root record {what}");
        let rec: RootRecord =
            serde_json::from_slice(b).map_err(|e| Error::corrupt(name.clone(), e.to_string()))?;
        if !rec.path.starts_with('/') || rec.path.contains('\0') {
            return Err(Error::corrupt(
                name,
                format!("path {:?} is not an absolute path", rec.path),
            ));
        }
        if rec.kind != "tree" && rec.kind != "file" {
            return Err(Error::corrupt(name, format!("unknown kind {:?}", rec.kind)));
        }
        if rec.hash.parse::<Hash>().is_err() {
            return Err(Error::corrupt(
                name,
                format!("{:?} is not a hash", rec.hash),
            ));
        }
        Ok(rec)
    }
}

fn check_version(v: u8, what: &str) -> Result<()> {
    if v > MANIFEST_VERSION {
        return Err(Error::NewerFormat {
            what: what.to_string(),
            found: u32::from(v),
            supported: u32::from(MANIFEST_VERSION),
        });
    }
    if v == 0 {
        return Err(Error::corrupt(what, "manifest version 0"));
    }
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn hash(&mut self) -> Option<Hash> {
        self.bytes(32).and_then(Hash::from_slice)
    }
    fn is_done(&self) -> bool {
        self.pos == self.b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(names: &[&[u8]]) -> Vec<u8> {
        TreeManifest {
            entries: names
                .iter()
                .map(|n| TreeEntry {
                    name: n.to_vec(),
                    mode: 0o100644,
                    size: 0,
                    kind: EntryKind::File(Hash([7; 32])),
                })
                .collect(),
        }
        .encode()
    }

    #[test]
    fn trees_with_invalid_or_duplicate_names_are_corrupt() {
        let h = Hash([1; 32]);
        assert!(TreeManifest::decode(&tree(&[b"a", b"b"]), &h).is_ok());
        // Unsorted is read (decoders do not check order), as long as no name repeats.
        assert!(TreeManifest::decode(&tree(&[b"b", b"a"]), &h).is_ok());
        for bad in [
            tree(&[b".."]),
            tree(&[b"."]),
            tree(&[b"a/b"]),
            tree(&[b""]),
            tree(&[b"a", b"a"]),
            tree(&[b"b", b"a", b"b"]),
        ] {
            let e = TreeManifest::decode(&bad, &h).expect_err("refused");
            assert_eq!(e.exit_code(), crate::exit::CORRUPT, "{e}");
        }
    }

    #[test]
    fn root_records_are_checked() {
        let h = Hash([2; 32]);
        let rec = |path: &str, kind: &str, hash: &str| {
            serde_json::to_vec(&serde_json::json!({
                "path": path, "kind": kind, "hash": hash, "size": 1, "time_ns": 1
            }))
            .expect("json")
        };
        let hex = Hash([3; 32]).to_hex();
        assert!(RootRecord::decode(&rec("/w/data", "tree", &hex), &h).is_ok());
        for bad in [
            rec("w/data", "tree", &hex),
            rec("/w/\0x", "file", &hex),
            rec("/w/data", "symlink", &hex),
            rec("/w/data", "file", "abc"),
        ] {
            let e = RootRecord::decode(&bad, &h).expect_err("refused");
            assert_eq!(e.exit_code(), crate::exit::CORRUPT, "{e}");
        }
    }
}
