//! A pack assembled in memory (push builds the packs it uploads this way).

use super::{
    pack_header, toc_and_trailer, Compression, Entry, PackReader, HEADER_LEN, TOC_ENTRY_LEN,
    TRAILER_LEN,
};
use crate::engine::hash::{Hash, ObjectKind};
use crate::error::{Error, Result};

/// A pack assembled in memory, in the same format as a pack file (remotes upload these).
pub struct PackBuf {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Default for PackBuf {
    fn default() -> Self {
        PackBuf::with_room(0, 0)
    }
}

/// Bytes of a whole pack of `objects` TOC entries and `stored` bytes of objects.
fn pack_len(objects: usize, stored: u64) -> u64 {
    HEADER_LEN + stored + (objects * TOC_ENTRY_LEN) as u64 + TRAILER_LEN
}

impl PackBuf {
    /// An empty pack with room, allocated once, for `objects` entries holding `stored` bytes.
    pub fn with_room(objects: usize, stored: u64) -> Self {
        let mut bytes = Vec::with_capacity(pack_len(objects, stored) as usize);
        bytes.extend_from_slice(&pack_header());
        PackBuf {
            bytes,
            entries: Vec::with_capacity(objects),
        }
    }

    /// Appends the objects lying in `src` at `start..start + len` (`entries`: theirs in
    /// `src`, each inside the span, members of one group frame next to each other), reading
    /// the span straight into this pack. Push gathers adjacent objects this way.
    pub fn append_span(
        &mut self,
        src: &PackReader,
        start: u64,
        len: u64,
        entries: &[Entry],
    ) -> Result<()> {
        let outside = entries.iter().find(|e| {
            e.offset < start || e.offset + u64::from(e.stored_len) > start.saturating_add(len)
        });
        if let Some(e) = outside {
            return Err(Error::Invalid(format!(
                "object {} lies outside the span {start}+{len} of {}",
                e.hash.to_hex(),
                src.what()
            )));
        }
        let at = self.bytes.len() as u64;
        src.read_span_into(start, len, &mut self.bytes)?;
        // Members of one group frame share its offset here as they did in `src`.
        self.entries.extend(entries.iter().map(|e| Entry {
            offset: at + (e.offset - start),
            ..e.clone()
        }));
        Ok(())
    }

    /// Appends one already-encoded object, stored alone (tests build hostile packs with it).
    pub fn append(
        &mut self,
        hash: Hash,
        kind: ObjectKind,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) {
        self.entries.push(Entry {
            hash,
            kind,
            compression,
            raw_len,
            stored_len: stored.len() as u32,
            offset: self.bytes.len() as u64,
        });
        self.bytes.extend_from_slice(stored);
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// True when no object was appended.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Closes the pack: its id, bytes and table of contents.
    pub fn finish(mut self) -> (Hash, Vec<u8>, Vec<Entry>) {
        let (toc, trailer) = toc_and_trailer(&self.entries, self.bytes.len() as u64);
        self.bytes.extend_from_slice(&toc);
        self.bytes.extend_from_slice(&trailer);
        (Hash::of(ObjectKind::Pack, &toc), self.bytes, self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pack file of a raw object, a group frame of two members and another raw object, and
    /// the same pack rebuilt in memory from spans of it (whole, object by object): the same
    /// bytes.
    #[test]
    fn spans_rebuild_the_same_pack() {
        let one = Hash::of(ObjectKind::Chunk, b"one");
        let (m1, m2) = (
            Hash::of(ObjectKind::Chunk, b"m1"),
            Hash::of(ObjectKind::Chunk, b"m2"),
        );
        let two = Hash::of(ObjectKind::Chunk, b"two");
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = super::super::PackWriter::create(dir.path()).expect("writer");
        w.append(one, ObjectKind::Chunk, Compression::Raw, 3, b"one")
            .expect("append");
        w.append(m1, ObjectKind::Chunk, Compression::Group, 2, b"frame")
            .expect("append");
        w.append(m2, ObjectKind::Chunk, Compression::Group, 2, b"frame")
            .expect("append");
        w.append(two, ObjectKind::Chunk, Compression::Raw, 3, b"two")
            .expect("append");
        let done = w.finish(dir.path()).expect("finish");
        let (id, entries) = (done.id, done.entries);
        assert_eq!(
            entries[1].offset, entries[2].offset,
            "one frame for both members"
        );
        let path = super::super::pack_path(dir.path(), &id);
        let bytes = std::fs::read(&path).expect("read");
        let src = PackReader::open(&path).expect("open");

        let end = entries[3].offset + u64::from(entries[3].stored_len);
        let size = pack_len(entries.len(), end - HEADER_LEN) as usize;
        let mut whole = PackBuf::with_room(entries.len(), end - HEADER_LEN);
        whole
            .append_span(&src, HEADER_LEN, end - HEADER_LEN, &entries)
            .expect("span");
        let rebuilt = whole.finish();
        assert_eq!(rebuilt.1.len(), size, "pack_len is exact");
        assert_eq!((rebuilt.0, &rebuilt.1, &rebuilt.2), (id, &bytes, &entries));

        let mut parts = PackBuf::default();
        for group in [&entries[0..1], &entries[1..3], &entries[3..4]] {
            let len = u64::from(group[0].stored_len);
            parts
                .append_span(&src, group[0].offset, len, group)
                .expect("span");
        }
        assert_eq!(parts.finish().1, bytes);
    }

    #[test]
    fn an_object_outside_its_span_is_refused() {
        let mut orig = PackBuf::default();
        let h = Hash::of(ObjectKind::Chunk, b"abcdef");
        orig.append(h, ObjectKind::Chunk, Compression::Raw, 6, b"abcdef");
        let (_, bytes, entries) = orig.finish();
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p.pack");
        std::fs::write(&path, &bytes).expect("write");
        let src = PackReader::open(&path).expect("open");
        let mut buf = PackBuf::default();
        let err = buf
            .append_span(&src, HEADER_LEN, 3, &entries)
            .expect_err("outside");
        assert!(err.to_string().contains(&h.to_hex()), "{err}");
        assert_eq!(buf.len(), HEADER_LEN, "nothing appended");
    }
}
