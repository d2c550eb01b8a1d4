//! Grouped objects (`store-format.md` 5.4): small objects compressed together in one zstd
//! frame, each listed in the pack's table of contents with compression 2 and the frame's
//! offset and stored length. Compressed one by one, a small object pays zstd's frame overhead
//! and finds no earlier bytes to match; a frame of neighbours (files of one directory) finds
//! them.
//!
//! A group's decompressed content is a header, a `u32` count `n`, `n` `u32` lengths and `n`
//! kind bytes, followed by the members back to back. A reader finds a member by its kind,
//! length and hash (hashing candidates), so the table of contents needs no position inside
//! the frame, and finding a member is checking it.

use std::collections::HashMap;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::pack::{Compression, Entry};
use crate::error::{Error, Result};

/// Objects smaller than this are grouped by writers that group (`add`'s sink).
pub const MEMBER_MAX: usize = 16 * 1024;
/// A writer closes a group when the next member would take its content past this.
pub const GROUP_TARGET: usize = 64 * 1024;
/// Largest decompressed group a reader accepts (a guard against a damaged or hostile frame).
pub const GROUP_MAX: u64 = 1 << 20;

/// Stored bytes of objects given with their pack, a group frame counted once however many of
/// its members are listed.
pub fn stored_bytes<'a>(objects: impl IntoIterator<Item = (&'a Hash, &'a Entry)>) -> u64 {
    let mut frames = std::collections::HashSet::new();
    objects
        .into_iter()
        .filter(|(p, e)| e.compression != Compression::Group || frames.insert((**p, e.offset)))
        .map(|(_, e)| u64::from(e.stored_len))
        .sum()
}

/// Each object's share of the stored bytes, given objects by hash with their pack: its stored
/// length, or for a group member  its frame's stored length in proportion to its raw
/// length among the frame's members listed.
pub fn stored_shares<'a>(
    objects: impl IntoIterator<Item = (&'a Hash, &'a Hash, &'a Entry)> + Clone,
) -> std::collections::HashMap<Hash, u64> {
    let mut frame_raw: std::collections::HashMap<(Hash, u64), u64> = Default::default();
    for (_, pack, e) in objects.clone() {
        if e.compression == Compression::Group {
            *frame_raw.entry((*pack, e.offset)).or_default() += u64::from(e.raw_len);
        }
    }
    objects
        .into_iter()
        .map(|(h, pack, e)| {
            let share = match frame_raw.get(&(*pack, e.offset)) {
                Some(&total) if e.compression == Compression::Group && total > 0 => {
                    u64::from(e.stored_len) * u64::from(e.raw_len) / total
                }
                _ => u64::from(e.stored_len),
            };
            (*h, share)
        })
        .collect()
}

/// A group being filled: members' kinds, hashes and bytes, in order.
#[derive(Default)]
pub struct Group {
    members: Vec<(Hash, ObjectKind, u32)>,
    bytes: Vec<u8>,
}

impl Group {
    /// True when `len` more bytes would take the group past [`GROUP_TARGET`] (never for an
    /// empty group).
    pub fn would_overflow(&self, len: usize) -> bool {
        !self.members.is_empty() && self.bytes.len() + len > GROUP_TARGET
    }

    /// Adds a member.
    pub fn push(&mut self, hash: Hash, kind: ObjectKind, raw: &[u8]) {
        self.members.push((hash, kind, raw.len() as u32));
        self.bytes.extend_from_slice(raw);
    }

    /// True when the group has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members: hash, kind and raw length.
    pub fn members(&self) -> &[(Hash, ObjectKind, u32)] {
        &self.members
    }

    /// Each member's hash, kind and raw bytes.
    pub fn each(&self) -> impl Iterator<Item = (Hash, ObjectKind, &[u8])> {
        let mut at = 0usize;
        self.members.iter().map(move |(h, k, len)| {
            let b = &self.bytes[at..at + *len as usize];
            at += *len as usize;
            (*h, *k, b)
        })
    }

    /// The group's content as a frame holds it: header, then the members.
    pub fn content(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 5 * self.members.len() + self.bytes.len());
        out.extend_from_slice(&(self.members.len() as u32).to_le_bytes());
        for (_, _, len) in &self.members {
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend(self.members.iter().map(|(_, k, _)| *k as u8));
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// A group frame decoded by this thread: restores and copies read a frame's members one after
/// the other, or nearly. Members are hashed when first looked for, and only those of the kind
/// and length looked for: a tree among a thousand members hashes one of them.
struct Decoded {
    stored: Vec<u8>,
    /// The pack file and offset it was read from, when read from a local pack (packs are
    /// immutable and named by their content, so the place names the bytes).
    place: Option<(std::path::PathBuf, u64)>,
    content: Vec<u8>,
    /// Each member's place in `content`, in frame order.
    places: Vec<std::ops::Range<usize>>,
    /// Members hashed so far (index, kind), by hash.
    found: HashMap<Hash, (usize, ObjectKind)>,
    /// Members not hashed yet, by kind and length, the last in frame order first.
    pending: HashMap<(ObjectKind, usize), Vec<usize>>,
}

impl Decoded {
    /// The member with `hash`, hashing same-kind same-length members until it is found.
    fn find(&mut self, kind: ObjectKind, hash: &Hash, raw_len: u32) -> Option<&[u8]> {
        let len = raw_len as usize;
        let i = match self.found.get(hash) {
            Some(&(i, k)) => (k == kind).then_some(i)?,
            None => {
                let list = self.pending.get_mut(&(kind, len))?;
                loop {
                    let i = list.pop()?;
                    let h = Hash::of(kind, &self.content[self.places[i].clone()]);
                    self.found.insert(h, (i, kind));
                    if h == *hash {
                        break i;
                    }
                }
            }
        };
        let b = &self.content[self.places[i].clone()];
        (b.len() == len).then_some(b)
    }
}

/// Frames each thread keeps decoded, the most recently used first.
const KEPT: usize = 8;

thread_local! {
    static LAST: std::cell::RefCell<Vec<Decoded>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The member of the group frame `stored` with `kind`, `hash` and `raw_len`: found and checked
/// at once (its bytes hash to `hash`). `place` is where the frame was read (pack file and
/// offset), when it was read from a local pack; `what` names the source in errors.
pub fn member(
    kind: ObjectKind,
    hash: &Hash,
    raw_len: u32,
    stored: &[u8],
    place: Option<(&std::path::Path, u64)>,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    LAST.with(|kept| {
        let mut kept = kept.borrow_mut();
        match kept.iter().position(|d| d.stored == stored) {
            Some(i) => kept[..=i].rotate_right(1),
            None => {
                let d = decode_frame(stored, hash, what)?;
                kept.truncate(KEPT - 1);
                kept.insert(0, d);
            }
        }
        if let Some((path, offset)) = place {
            kept[0].place = Some((path.to_path_buf(), offset));
        }
        if let Some(b) = kept[0].find(kind, hash, raw_len) {
            return Ok(b.to_vec());
        }
        Err(Error::corrupt(
            what(),
            format!(
                "{} {hash} is not in its group frame (bit rot or tampering)",
                kind.name()
            ),
        ))
    })
}

/// The member with `kind`, `hash` and `raw_len` of the frame at `offset` in the pack file
/// `path`, if this thread has that frame decoded (and the member is in it): no read needed.
pub fn cached_member(
    path: &std::path::Path,
    offset: u64,
    kind: ObjectKind,
    hash: &Hash,
    raw_len: u32,
) -> Option<Vec<u8>> {
    LAST.with(|kept| {
        let mut kept = kept.borrow_mut();
        let i = kept.iter().position(|d| {
            d.place
                .as_ref()
                .is_some_and(|(p, o)| *o == offset && p == path)
        })?;
        kept[..=i].rotate_right(1);
        kept[0].find(kind, hash, raw_len).map(<[u8]>::to_vec)
    })
}

/// Decompresses a group frame and checks its header.
fn decode_frame(stored: &[u8], hash: &Hash, what: &dyn Fn() -> String) -> Result<Decoded> {
    let bad = |why: String| Error::corrupt(what(), format!("group frame of object {hash}: {why}"));
    let size = zstd::zstd_safe::get_frame_content_size(stored)
        .ok()
        .flatten()
        .ok_or_else(|| bad("no zstd frame with a content size".into()))?;
    if size > GROUP_MAX {
        return Err(bad(format!(
            "declares {size} bytes, more than a group can hold"
        )));
    }
    let content = crate::engine::pack::decompress(stored, size as usize)
        .map_err(|e| bad(format!("does not decompress: {e}")))?;
    if content.len() as u64 != size {
        return Err(bad(format!(
            "has {} bytes, its frame says {size}",
            content.len()
        )));
    }
    let word = |i: usize| -> Option<usize> {
        let b = content.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let count = word(0).ok_or_else(|| bad("no header".into()))?;
    let header = count
        .checked_mul(5)
        .and_then(|n| n.checked_add(4))
        .filter(|&h| h <= content.len())
        .ok_or_else(|| bad(format!("header of {count} members does not fit")))?;
    let mut places = Vec::with_capacity(count);
    let mut at = header;
    for i in 0..count {
        let len = word(i + 1).ok_or_else(|| bad("header cut short".into()))?;
        places.push(at..at.saturating_add(len));
        at = at.saturating_add(len);
    }
    if at != content.len() {
        return Err(bad(format!(
            "members take {at} bytes, the content has {}",
            content.len()
        )));
    }
    let kinds = &content[4 + 4 * count..header];
    let mut pending: HashMap<(ObjectKind, usize), Vec<usize>> = HashMap::new();
    for (i, (place, &k)) in places.iter().zip(kinds).enumerate().rev() {
        let kind = ObjectKind::from_u8(k)
            .filter(|k| *k != ObjectKind::Pack)
            .ok_or_else(|| bad(format!("a member of kind {k}")))?;
        pending.entry((kind, place.len())).or_default().push(i);
    }
    Ok(Decoded {
        stored: stored.to_vec(),
        place: None,
        content,
        places,
        found: HashMap::new(),
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(g: &Group) -> Vec<u8> {
        zstd::bulk::compress(&g.content(), 3).expect("compress")
    }

    #[test]
    fn members_are_found_by_length_and_hash() {
        let mut g = Group::default();
        let objs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 100]).collect();
        for o in &objs {
            g.push(Hash::of(ObjectKind::Chunk, o), ObjectKind::Chunk, o);
        }
        let tree = b"a tree of the same length as nothing else".to_vec();
        g.push(Hash::of(ObjectKind::Tree, &tree), ObjectKind::Tree, &tree);
        let stored = frame(&g);
        let what = || "test".to_string();
        for o in objs.iter().rev() {
            let h = Hash::of(ObjectKind::Chunk, o);
            assert_eq!(
                &member(ObjectKind::Chunk, &h, 100, &stored, None, &what).expect("found"),
                o
            );
        }
        let h = Hash::of(ObjectKind::Tree, &tree);
        let len = tree.len() as u32;
        assert_eq!(
            member(ObjectKind::Tree, &h, len, &stored, None, &what).expect("found"),
            tree
        );
        // The same bytes under another kind are another object: not in the group.
        let e = member(ObjectKind::File, &h, len, &stored, None, &what).unwrap_err();
        assert!(e.to_string().contains("not in its group"), "{e}");
    }

    #[test]
    fn damaged_frames_are_named_corrupt() {
        let mut g = Group::default();
        g.push(Hash::of(ObjectKind::Chunk, b"x"), ObjectKind::Chunk, b"x");
        let what = || "pack p".to_string();
        let h = Hash::of(ObjectKind::Chunk, b"x");
        // One byte of the content changed at a time: the header's count (more members than
        // the content holds), the member's kind, the member itself, the member's length.
        for (at, value, why) in [
            (0, 200, "does not fit"),
            (8, 99, "of kind 99"),
            (9, b'y', "not in its group"),
            (4, 2, "members take"),
        ] {
            let mut c = g.content();
            c[at] = value;
            let stored = zstd::bulk::compress(&c, 3).expect("compress");
            let e = member(ObjectKind::Chunk, &h, 1, &stored, None, &what).unwrap_err();
            assert!(e.to_string().contains(why), "byte {at}: {e}");
        }
        // Not zstd at all.
        let e = member(ObjectKind::Chunk, &h, 1, b"garbage!", None, &what).unwrap_err();
        assert!(e.to_string().contains("pack p"), "{e}");
        // A frame declaring more than a group may hold allocates nothing.
        let big = zstd::bulk::compress(&vec![0u8; (GROUP_MAX + 1) as usize], 1).expect("compress");
        let e = member(ObjectKind::Chunk, &h, 1, &big, None, &what).unwrap_err();
        assert!(e.to_string().contains("more than a group"), "{e}");
    }
}
