//! Streaming reads of one stored file: [`FileReader`] reads its chunks one at a time, on
//! demand, each verified against its hash and length, so a file of any size is read in
//! constant memory (one chunk) and a seek costs nothing until the next read. In a clone, a
//! chunk that is not local is fetched from the store's object source (its default remote)
//! when it is first needed: the chunk alone after a seek, and a window ahead that grows (256
//! KiB, doubling up to 8 MiB) while reading on.

use std::io;

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::store::{LockMode, Store};
use crate::error::{Error, Result};

/// Most bytes of chunks fetched ahead from a remote while a file is read sequentially (the
/// window starts at [`FIRST_AHEAD`] and doubles with each fetch while reading on).
const FETCH_AHEAD: u64 = 8 << 20;
/// The first window fetched ahead.
const FIRST_AHEAD: u64 = 256 << 10;

/// A read-only, seekable view of one stored file (see the module documentation). The store
/// lock is taken (shared) only while a chunk is being read, so an open reader never blocks
/// `gc`; the file stays readable because a recorded file is always referenced.
pub struct FileReader {
    store: Store,
    hash: Hash,
    /// Chunk hashes and lengths, in file order.
    chunks: Vec<(Hash, u32)>,
    /// Offset of each chunk in the file.
    starts: Vec<u64>,
    size: u64,
    pos: u64,
    /// The chunk read last: its index and bytes.
    current: Option<(usize, Vec<u8>)>,
    /// Bytes the next fetch takes ahead when reading on (0 after a seek).
    ahead: u64,
}

impl Store {
    /// A streaming reader of file `hash` (see [`FileReader`]); the store goes with it. Reads
    /// the file's manifest (fetched if missing, which also fetches its chunks), nothing else.
    pub fn into_file_reader(self, hash: &Hash) -> Result<FileReader> {
        let m = {
            let _lock = self.lock(LockMode::Shared)?;
            match self.file_manifest(hash) {
                Err(Error::ObjectNotFound(_)) => {
                    self.ensure_local(&[*hash])?;
                    self.file_manifest(hash)?
                }
                r => r?,
            }
        };
        let mut starts = Vec::with_capacity(m.chunks.len());
        let mut at = 0u64;
        for (_, len) in &m.chunks {
            starts.push(at);
            at += u64::from(*len);
        }
        if at != m.size {
            return Err(Error::corrupt(
                format!("file manifest {hash}"),
                format!("chunks add up to {at} bytes, the manifest says {}", m.size),
            ));
        }
        Ok(FileReader {
            store: self,
            hash: *hash,
            chunks: m.chunks,
            starts,
            size: m.size,
            pos: 0,
            current: None,
            ahead: 0,
        })
    }
}

impl FileReader {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The position the next read starts at.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to byte `pos` (past the end is allowed: reads there return nothing).
    pub fn seek_to(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Reads from the current position into `buf`, across chunks, until `buf` is full or the
    /// file ends; returns the bytes read (0 at the end).
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.pos < self.size {
            let i = self.starts.partition_point(|&s| s <= self.pos) - 1;
            let off = (self.pos - self.starts[i]) as usize;
            let data = self.chunk(i)?;
            let take = (data.len() - off).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&data[off..off + take]);
            n += take;
            self.pos += take as u64;
        }
        Ok(n)
    }

    /// Chunk `i`, read (and fetched) unless it is the current one.
    fn chunk(&mut self, i: usize) -> Result<&[u8]> {
        let previous = self.current.as_ref().map(|(j, _)| *j);
        if previous != Some(i) {
            let _lock = self.store.lock(LockMode::Shared)?;
            if self.store.index().locate(&self.chunks[i].0)?.is_none() {
                self.fetch(i, previous)?;
            }
            let (h, len) = self.chunks[i];
            let data = self.store.read_kind(&h, ObjectKind::Chunk)?;
            if data.len() != len as usize {
                return Err(Error::corrupt(
                    format!("chunk {h} of file {}", self.hash),
                    format!("{} bytes, the manifest says {len}", data.len()),
                ));
            }
            self.current = Some((i, data));
        }
        match &self.current {
            Some((_, data)) => Ok(data),
            None => Err(Error::Invalid("no current chunk".into())),
        }
    }
}

impl FileReader {
    /// Fetches missing chunk `i` (the store lock held): reading on from the previous chunk,
    /// with the missing ones of a window ahead that doubles each time (up to
    /// [`FETCH_AHEAD`]); after a seek, alone.
    fn fetch(&mut self, i: usize, previous: Option<usize>) -> Result<()> {
        let mut want = vec![self.chunks[i].0];
        self.ahead = if previous.map_or(i == 0, |j| j + 1 == i) {
            (self.ahead * 2).clamp(FIRST_AHEAD, FETCH_AHEAD)
        } else {
            0
        };
        if self.ahead > 0 {
            let mut bytes = 0;
            let mut ahead = Vec::new();
            for (h, len) in &self.chunks[i + 1..] {
                if bytes >= self.ahead {
                    break;
                }
                ahead.push(*h);
                bytes += u64::from(*len);
            }
            let locs = self.store.index().locate_many(&ahead)?;
            want.extend(
                ahead
                    .iter()
                    .zip(locs)
                    .filter(|(_, l)| l.is_none())
                    .map(|(h, _)| *h),
            );
        }
        self.store.ensure_local(&want)?;
        Ok(())
    }
}

impl io::Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf).map_err(io::Error::other)
    }
}

impl io::Seek for FileReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let (base, off) = match to {
            io::SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            io::SeekFrom::Current(o) => (self.pos, o),
            io::SeekFrom::End(o) => (self.size, o),
        };
        match base.checked_add_signed(off) {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )),
        }
    }
}
