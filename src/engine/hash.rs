//! Object identities: a [`Hash`](struct@Hash) is a 32-byte keyed BLAKE3 digest, and every object kind
//! hashes in its own domain ([`ObjectKind::context`]) so that a chunk can never collide with a
//! manifest or a pack that happens to hold the same bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A 32-byte BLAKE3 digest identifying an object (chunk, manifest, pack, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Length of a hash in bytes.
    pub const LEN: usize = 32;

    /// Hashes `data` in the domain of `kind`.
    pub fn of(kind: ObjectKind, data: &[u8]) -> Hash {
        let mut h = kind.hasher();
        h.update(data);
        Hash(*h.finalize().as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a hash from a 32-byte slice; `None` when the length is wrong.
    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(b).ok().map(Hash)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// The first `n` hex characters (for display).
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl FromStr for Hash {
    type Err = Error;
    fn from_str(s: &str) -> Result<Hash, Error> {
        let bad = || Error::BadHash(s.to_string());
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(bad)?;
            let lo = hex_val(pair[1]).ok_or_else(bad)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Hash(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The closed set of object kinds stored in packs. The discriminant is the on-disk kind byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    /// A content-defined chunk of file data.
    Chunk = 1,
    /// A file manifest: size and ordered chunk list.
    File = 2,
    /// A directory manifest: sorted entries with names, modes and hashes.
    Tree = 3,
    /// A root record: one `add` of one top-level path (makes the index rebuildable).
    Root = 4,
    /// A pack file as a whole (never stored inside a pack; names pack files).
    Pack = 5,
    /// A sealed workflow run: the merged, immutable snapshot of every tracked file.
    Run = 6,
    /// One job's records into a run (a partial manifest), written by one `add --role`.
    RunPart = 7,
}

impl ObjectKind {
    /// The BLAKE3 `derive_key` context string of this kind (see `store-format.md`).
    pub fn context(self) -> &'static str {
        match self {
            ObjectKind::Chunk => "store 2026-11 chunk v1",
            ObjectKind::File => "store 2026-11 file manifest v1",
            ObjectKind::Tree => "store 2026-11 tree manifest v1",
            ObjectKind::Root => "store 2026-11 root record v1",
            ObjectKind::Pack => "store 2026-11 pack v1",
            ObjectKind::Run => "store 2026-11 run snapshot v1",
            ObjectKind::RunPart => "store 2026-11 run partial manifest v1",
        }
    }

    /// A fresh hasher in this kind's domain.
    pub fn hasher(self) -> blake3::Hasher {
        blake3::Hasher::new_derive_key(self.context())
    }

    /// Decodes the on-disk kind byte.
    pub fn from_u8(b: u8) -> Option<ObjectKind> {
        Some(match b {
            1 => ObjectKind::Chunk,
            2 => ObjectKind::File,
            3 => ObjectKind::Tree,
            4 => ObjectKind::Root,
            5 => ObjectKind::Pack,
            6 => ObjectKind::Run,
            7 => ObjectKind::RunPart,
            _ => return None,
        })
    }

    /// Lower-case name used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Chunk => "chunk",
            ObjectKind::File => "file",
            ObjectKind::Tree => "tree",
            ObjectKind::Root => "root",
            ObjectKind::Pack => "pack",
            ObjectKind::Run => "run",
            ObjectKind::RunPart => "run-part",
        }
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Convenience: `Hash` in `ObjectNotFound`.
impl From<Hash> for crate::error::Error {
    fn from(h: Hash) -> crate::error::Error {
        crate::error::Error::ObjectNotFound(h.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_domains_differ() {
        let a = Hash::of(ObjectKind::Chunk, b"abc");
        let b = Hash::of(ObjectKind::File, b"abc");
        assert_ne!(a, b);
        let parsed: Hash = a.to_hex().parse().expect("valid hex");
        assert_eq!(parsed, a);
        assert!("xyz".parse::<Hash>().is_err());
    }
}
