//! Pack files: immutable containers of compressed objects with a trailing table of contents.
//!
//! A pack is written to a temporary file (locked while it is being written, so `gc` can tell a
//! live writer's file from a crashed one's), fsynced, then renamed to its content hash. Readers
//! only ever see complete packs. Every pack describes itself (magic, version, table of contents
//! with kind, hash and lengths of each object), so the index can be rebuilt from packs alone.
//! The byte layout is specified in `store-format.md`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use memmap2::Mmap;

use crate::engine::group;
use crate::engine::hash::{Hash, ObjectKind};
use crate::error::{Error, Result};

mod buf;
pub use buf::PackBuf;

/// Magic bytes at offset 0 of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"STOREPAK";
/// Magic bytes at the very end of every pack.
pub const END_MAGIC: &[u8; 8] = b"STOREEND";
/// The pack format version this program writes and the newest it reads.
pub const PACK_VERSION: u32 = 2;
/// Header length in bytes.
pub const HEADER_LEN: u64 = 16;
/// One table-of-contents entry, in bytes.
pub const TOC_ENTRY_LEN: usize = 52;
/// Trailer length in bytes.
pub const TRAILER_LEN: u64 = 56;
/// Largest object accepted on read (a guard against absurd lengths in a damaged entry).
pub const MAX_OBJECT: u32 = 1 << 30;
/// BLAKE3 derive_key context of the table-of-contents checksum.
pub const TOC_CONTEXT: &str = "store 2026-11 pack toc v1";

/// How an object's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is (compression did not pay).
    Raw = 0,
    /// A single zstd frame.
    Zstd = 1,
    /// A member of a group frame (small objects compressed together, [`crate::engine::group`]):
    /// the entry's offset and stored length are the frame's, shared by its members.
    Group = 2,
}

impl Compression {
    /// The compression with code `b`, if it is one this version knows.
    pub fn from_u8(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::Raw),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Group),
            _ => None,
        }
    }
}

/// One object's place in a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The object's hash (in its kind's domain, over the uncompressed bytes).
    pub hash: Hash,
    /// What kind of object it is.
    pub kind: ObjectKind,
    /// How it is stored.
    pub compression: Compression,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Length in the pack.
    pub stored_len: u32,
    /// Offset of the stored bytes from the start of the pack.
    pub offset: u64,
}

thread_local! {
    /// zstd contexts per thread, one per level in use (creating a context per object costs
    /// more than compressing a small one).
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// zstd level 1 where it compresses this operation's data at least as well as the configured
/// level. On some data (text of random numbers, e.g. CSV exports) level 1 is both a third
/// faster and a few percent smaller than level 3, whose extra short matches cost more than
/// the literals they replace; on most data level 3 is smaller. The first objects and then one
/// in [`SAMPLE_EVERY`] are compressed at both levels (the smaller result is kept), and the
/// totals so far decide the level of the others. Stored bytes do not affect any hash.
#[derive(Default)]
pub(crate) struct LevelChoice {
    objects: AtomicU64,
    fast_bytes: AtomicU64,
    configured_bytes: AtomicU64,
    fast: AtomicBool,
}

/// The level tried against the configured one.
const FAST_LEVEL: i32 = 1;
/// Objects compressed at both levels before the totals decide.
const SAMPLE_FIRST: u64 = 16;
/// After those, one object in this many is compressed at both levels.
const SAMPLE_EVERY: u64 = 32;

impl LevelChoice {
    /// Encodes `raw`, for an operation whose configured level is `configured`.
    pub(crate) fn encode(&self, raw: &[u8], configured: i32) -> (Compression, Vec<u8>) {
        if configured <= FAST_LEVEL {
            return encode(raw, configured);
        }
        let n = self.objects.fetch_add(1, Ordering::Relaxed);
        if n >= SAMPLE_FIRST && !n.is_multiple_of(SAMPLE_EVERY) {
            let level = if self.fast.load(Ordering::Relaxed) {
                FAST_LEVEL
            } else {
                configured
            };
            return encode(raw, level);
        }
        let fast = encode(raw, FAST_LEVEL);
        let slow = encode(raw, configured);
        let f = self
            .fast_bytes
            .fetch_add(fast.1.len() as u64, Ordering::Relaxed)
            + fast.1.len() as u64;
        let c = self
            .configured_bytes
            .fetch_add(slow.1.len() as u64, Ordering::Relaxed)
            + slow.1.len() as u64;
        self.fast.store(f <= c, Ordering::Relaxed);
        if fast.1.len() <= slow.1.len() {
            fast
        } else {
            slow
        }
    }
}

/// Compresses `raw` with zstd at `level`, keeping it raw when that saves less than 1/32.
pub fn encode(raw: &[u8], level: i32) -> (Compression, Vec<u8>) {
    if raw.len() >= 64 {
        let compressed = COMPRESSORS.with(|c| {
            let mut c = c.borrow_mut();
            let i = match c.iter().position(|(l, _)| *l == level) {
                Some(i) => i,
                None => {
                    if c.len() >= 4 {
                        c.remove(0);
                    }
                    c.push((level, zstd::bulk::Compressor::new(level).ok()?));
                    c.len() - 1
                }
            };
            c[i].1.compress(raw).ok()
        });
        if let Some(c) = compressed {
            if c.len() < raw.len() - raw.len() / 32 {
                return (Compression::Zstd, c);
            }
        }
    }
    (Compression::Raw, raw.to_vec())
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses one zstd frame of at most `capacity` bytes with this thread's context.
pub(crate) fn decompress(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        match d.as_mut() {
            Some(d) => d.decompress(stored, capacity),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

/// Decodes stored bytes back to the raw object, checking the length.
pub fn decode(entry: &Entry, stored: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    // The declared length is only believed when the zstd frame says the same and it is no
    // larger than an object can be: a remote object claiming 4 GiB allocates nothing.
    if entry.compression == Compression::Zstd {
        let framed = zstd::zstd_safe::get_frame_content_size(stored)
            .ok()
            .flatten();
        if entry.raw_len > MAX_OBJECT || framed != Some(u64::from(entry.raw_len)) {
            return Err(Error::corrupt(
                what(),
                format!(
                    "object {} declares {} bytes, its zstd frame {}",
                    entry.hash,
                    entry.raw_len,
                    framed.map_or("no content size".to_string(), |n| format!("{n} bytes"))
                ),
            ));
        }
    }
    let raw = match entry.compression {
        Compression::Raw => stored.to_vec(),
        Compression::Group => {
            group::member(entry.kind, &entry.hash, entry.raw_len, stored, None, what)?
        }
        Compression::Zstd => decompress(stored, entry.raw_len as usize).map_err(|e| {
            Error::corrupt(
                what(),
                format!("object {} does not decompress: {e}", entry.hash),
            )
        })?,
    };
    if raw.len() != entry.raw_len as usize {
        return Err(Error::corrupt(
            what(),
            format!(
                "object {} has {} bytes, expected {}",
                entry.hash,
                raw.len(),
                entry.raw_len
            ),
        ));
    }
    Ok(raw)
}

/// Output of a pack being written: 4 MiB aligned buffers handed to a writer thread that writes
/// them with `O_DIRECT` where the filesystem allows it, so compression and hashing go on while
/// the disk works. Packs are written once and not read back soon, so going around the page
/// cache saves a copy and the writeback stall (about 3x faster on the machines we measured).
/// The final unaligned tail is written through the page cache, then everything is fsynced.
struct Out {
    cur: AlignedBuf,
    full: Option<mpsc::SyncSender<AlignedBuf>>,
    free: mpsc::Receiver<AlignedBuf>,
    buffers: usize,
    worker: Option<std::thread::JoinHandle<std::io::Result<(File, u64, bool)>>>,
}

const ALIGN: usize = 4096;
const OUT_BUF: usize = 4 << 20;

struct AlignedBuf {
    data: Vec<u8>,
    start: usize,
    fill: usize,
}

/// Output buffers kept for the next pack: allocating (and faulting in) fresh 4 MiB buffers for
/// every pack cost more CPU than the copies into them, and reusing them bounds memory.
static SPARE: std::sync::Mutex<Vec<AlignedBuf>> = std::sync::Mutex::new(Vec::new());
/// At most this many spare buffers are kept.
const SPARE_MAX: usize = 8;

impl AlignedBuf {
    /// A spare buffer, or a new one.
    fn take() -> AlignedBuf {
        let spare = SPARE.lock().ok().and_then(|mut v| v.pop());
        spare.unwrap_or_else(AlignedBuf::new)
    }

    /// Keeps the buffer for the next pack (up to [`SPARE_MAX`]).
    fn give(mut self) {
        self.fill = 0;
        if let Ok(mut v) = SPARE.lock() {
            if v.len() < SPARE_MAX {
                v.push(self);
            }
        }
    }

    fn new() -> AlignedBuf {
        let data = vec![0u8; OUT_BUF + ALIGN];
        let start = data.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            data,
            start,
            fill: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.start + self.fill]
    }
}

fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    use rustix::fs::OFlags;
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, flags)?;
    Ok(())
}

impl Out {
    /// Creates `path` (locked, so `gc` knows a live writer owns it) and starts the writer.
    fn open(path: &Path) -> std::io::Result<Out> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let direct = File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        let (file, direct) = match direct {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Some filesystems create the file and only then refuse O_DIRECT; the name is
                // ours alone (pid + counter), so removing it is safe.
                let _ = fs::remove_file(path);
                (
                    File::options().write(true).create_new(true).open(path)?,
                    false,
                )
            }
            Err(e) => return Err(e),
        };
        file.try_lock()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (full_tx, full_rx) = mpsc::sync_channel::<AlignedBuf>(1);
        let (free_tx, free_rx) = mpsc::channel::<AlignedBuf>();
        let worker = std::thread::spawn(move || {
            let mut direct = direct;
            let mut written = 0u64;
            for buf in full_rx {
                if let Err(e) = file.write_all_at(buf.bytes(), written) {
                    if !(direct && e.raw_os_error() == Some(libc::EINVAL)) {
                        return Err(e);
                    }
                    set_direct(&file, false)?;
                    direct = false;
                    file.write_all_at(buf.bytes(), written)?;
                }
                written += buf.fill as u64;
                let mut buf = buf;
                buf.fill = 0;
                let _ = free_tx.send(buf);
            }
            Ok((file, written, direct))
        });
        Ok(Out {
            cur: AlignedBuf::take(),
            full: Some(full_tx),
            free: free_rx,
            buffers: 1,
            worker: Some(worker),
        })
    }

    fn write_all(&mut self, mut b: &[u8]) -> std::io::Result<()> {
        while !b.is_empty() {
            let n = b.len().min(OUT_BUF - self.cur.fill);
            let at = self.cur.start + self.cur.fill;
            self.cur.data[at..at + n].copy_from_slice(&b[..n]);
            self.cur.fill += n;
            b = &b[n..];
            if self.cur.fill == OUT_BUF {
                self.hand_over()?;
            }
        }
        Ok(())
    }

    /// Sends the full current buffer to the writer and takes a free one.
    fn hand_over(&mut self) -> std::io::Result<()> {
        let next = match self.free.try_recv() {
            Ok(b) => b,
            Err(_) if self.buffers < 3 => {
                self.buffers += 1;
                AlignedBuf::take()
            }
            Err(_) => match self.free.recv() {
                Ok(b) => b,
                Err(_) => return Err(self.worker_error()),
            },
        };
        let full = std::mem::replace(&mut self.cur, next);
        let sent = self
            .full
            .as_ref()
            .map(|tx| tx.send(full).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(self.worker_error());
        }
        Ok(())
    }

    /// The error that stopped the writer thread.
    fn worker_error(&mut self) -> std::io::Error {
        self.full = None;
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(Err(e))) => e,
            _ => std::io::Error::other("pack writer thread stopped"),
        }
    }

    /// Hands this writer's buffers to the next pack.
    fn recycle(self) {
        while let Ok(b) = self.free.try_recv() {
            b.give();
        }
        self.cur.give();
    }

    /// Writes everything left and fsyncs.
    fn finish(mut self) -> std::io::Result<File> {
        use std::os::unix::fs::FileExt;
        self.full = None;
        let (file, written, direct) = match self.worker.take().map(|w| w.join()) {
            Some(Ok(r)) => r?,
            _ => return Err(std::io::Error::other("pack writer thread panicked")),
        };
        if self.cur.fill > 0 {
            if direct {
                set_direct(&file, false)?;
            }
            file.write_all_at(self.cur.bytes(), written)?;
        }
        // Release the buffers before the (slow) fsync: finishing runs in the background.
        self.recycle();
        file.sync_all()?;
        Ok(file)
    }
}

/// A pack being written. Dropping it without [`PackWriter::finish`] removes the temporary file.
pub struct PackWriter {
    tmp_path: PathBuf,
    out: Option<Out>,
    entries: Vec<Entry>,
    len: u64,
    renamed: bool,
    /// The last group frame written: its offset and bytes.
    last_group: Option<(u64, Vec<u8>)>,
}

/// A pack that was written and renamed into place.
#[derive(Clone, Debug)]
pub struct FinishedPack {
    /// The pack's id (hash of its table of contents in the pack domain).
    pub id: Hash,
    /// Total size in bytes.
    pub size: u64,
    /// Its table of contents.
    pub entries: Vec<Entry>,
}

impl PackWriter {
    /// Starts a new pack under `tmp_dir`, holding an exclusive lock on it until finished.
    pub fn create(tmp_dir: &Path) -> Result<PackWriter> {
        let name = format!("pack-{}.tmp", crate::engine::util::unique_suffix());
        let tmp_path = tmp_dir.join(name);
        let out = Out::open(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
        let mut w = PackWriter {
            tmp_path,
            out: Some(out),
            entries: Vec::new(),
            len: 0,
            renamed: false,
            last_group: None,
        };
        w.write_all(&pack_header())?;
        Ok(w)
    }

    fn write_all(&mut self, b: &[u8]) -> Result<()> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| Error::Invalid("pack already finished".into()))?;
        out.write_all(b).map_err(|e| Error::io(&self.tmp_path, e))?;
        self.len += b.len() as u64;
        Ok(())
    }

    /// Appends one already-encoded object. A group member whose frame is the last frame
    /// written shares it: copiers hand over a frame's members one after the other, and the
    /// frame is written once.
    pub fn append(
        &mut self,
        hash: Hash,
        kind: ObjectKind,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<()> {
        let offset = match &self.last_group {
            Some((at, bytes)) if compression == Compression::Group && bytes == stored => *at,
            _ => {
                let at = self.len;
                self.write_all(stored)?;
                self.last_group =
                    (compression == Compression::Group).then(|| (at, stored.to_vec()));
                at
            }
        };
        self.entries.push(Entry {
            hash,
            kind,
            compression,
            raw_len,
            stored_len: stored.len() as u32,
            offset,
        });
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no object was appended.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the table of contents and trailer, fsyncs, and renames the pack into `packs_dir`.
    pub fn finish(mut self, packs_dir: &Path) -> Result<FinishedPack> {
        let (toc, trailer) = toc_and_trailer(&self.entries, self.len);
        self.write_all(&toc)?;
        self.write_all(&trailer)?;
        let out = self
            .out
            .take()
            .ok_or_else(|| Error::Invalid("pack already finished".into()))?;
        let file = out.finish().map_err(|e| Error::io(&self.tmp_path, e))?;
        let id = Hash::of(ObjectKind::Pack, &toc);
        let dest = pack_path(packs_dir, &id);
        let dir = dest.parent().unwrap_or(packs_dir);
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            // The new fan-out directory must itself survive a power loss.
            crate::engine::util::fsync_dir(packs_dir)?;
        }
        fs::rename(&self.tmp_path, &dest).map_err(|e| Error::io(&dest, e))?;
        self.renamed = true;
        crate::engine::util::fsync_dir(dir)?;
        drop(file);
        Ok(FinishedPack {
            id,
            size: self.len,
            entries: std::mem::take(&mut self.entries),
        })
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // Unfinished or failed: the temporary file must not outlive us.
        if !self.renamed {
            self.out = None;
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// The table of contents and trailer closing a pack whose objects end at `toc_offset`.
fn toc_and_trailer(entries: &[Entry], toc_offset: u64) -> (Vec<u8>, Vec<u8>) {
    let toc = encode_toc(entries);
    let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
    trailer.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    trailer.extend_from_slice(&0u32.to_le_bytes());
    trailer.extend_from_slice(&toc_offset.to_le_bytes());
    trailer.extend_from_slice(toc_checksum(&toc).as_bytes());
    trailer.extend_from_slice(END_MAGIC);
    (toc, trailer)
}

fn pack_header() -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    header.extend_from_slice(PACK_MAGIC);
    header.extend_from_slice(&PACK_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header
}

/// Decodes `stored` and checks it against the entry's hash: the check every object read from a
/// remote goes through.
pub fn decode_verified(entry: &Entry, stored: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    let raw = decode(entry, stored, what)?;
    // A group member is found by its hash: found is checked.
    if entry.compression != Compression::Group && Hash::of(entry.kind, &raw) != entry.hash {
        return Err(Error::corrupt(
            what(),
            format!("object {} fails its hash check", entry.hash),
        ));
    }
    Ok(raw)
}

/// Where the pack with `id` lives under `packs_dir`.
pub fn pack_path(packs_dir: &Path, id: &Hash) -> PathBuf {
    let hex = id.to_hex();
    packs_dir.join(&hex[..2]).join(format!("{hex}.pack"))
}

fn toc_checksum(toc: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(TOC_CONTEXT);
    h.update(toc);
    Hash(*h.finalize().as_bytes())
}

fn encode_toc(entries: &[Entry]) -> Vec<u8> {
    let mut toc = Vec::with_capacity(entries.len() * TOC_ENTRY_LEN);
    for e in entries {
        toc.extend_from_slice(e.hash.as_bytes());
        toc.push(e.kind as u8);
        toc.push(e.compression as u8);
        toc.extend_from_slice(&0u16.to_le_bytes());
        toc.extend_from_slice(&e.raw_len.to_le_bytes());
        toc.extend_from_slice(&e.stored_len.to_le_bytes());
        toc.extend_from_slice(&e.offset.to_le_bytes());
    }
    toc
}

/// A complete pack opened for reading (memory-mapped).
pub struct PackReader {
    path: PathBuf,
    file: File,
    map: Mmap,
}

impl PackReader {
    /// Opens and memory-maps a pack; checks magic and version but not the table of contents.
    pub fn open(path: &Path) -> Result<PackReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: packs are immutable once renamed into place; the store never truncates or
        // rewrites them, it only unlinks them (which does not affect an existing mapping).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let r = PackReader {
            path: path.to_path_buf(),
            file,
            map,
        };
        r.check_header()?;
        Ok(r)
    }

    fn what(&self) -> String {
        format!("pack {}", self.path.display())
    }

    fn check_header(&self) -> Result<()> {
        if self.map.len() < (HEADER_LEN + TRAILER_LEN) as usize {
            return Err(Error::corrupt(
                self.what(),
                format!("truncated: only {} bytes", self.map.len()),
            ));
        }
        if &self.map[..8] != PACK_MAGIC {
            return Err(Error::corrupt(self.what(), "bad magic (not a store pack)"));
        }
        let version = u32::from_le_bytes(self.map[8..12].try_into().expect("4 bytes"));
        if version > PACK_VERSION {
            return Err(Error::NewerFormat {
                what: self.what(),
                found: version,
                supported: PACK_VERSION,
            });
        }
        Ok(())
    }

    /// The whole mapped pack.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The path of the pack file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked table-of-contents bytes and its offset.
    fn toc(&self) -> Result<(&[u8], u64)> {
        let m = &self.map[..];
        let n = m.len();
        let t = &m[n - TRAILER_LEN as usize..];
        if &t[48..56] != END_MAGIC {
            return Err(Error::corrupt(
                self.what(),
                "trailer magic missing (truncated or damaged pack)",
            ));
        }
        let count = u32::from_le_bytes(t[0..4].try_into().expect("4 bytes")) as usize;
        let toc_offset = u64::from_le_bytes(t[8..16].try_into().expect("8 bytes"));
        let toc_len = count.saturating_mul(TOC_ENTRY_LEN);
        let toc_end = (n as u64).saturating_sub(TRAILER_LEN);
        if toc_offset < HEADER_LEN || toc_offset.saturating_add(toc_len as u64) != toc_end {
            return Err(Error::corrupt(
                self.what(),
                "table of contents does not fit the file",
            ));
        }
        let toc = &m[toc_offset as usize..toc_end as usize];
        if toc_checksum(toc).as_bytes()[..] != t[16..48] {
            return Err(Error::corrupt(
                self.what(),
                "table of contents checksum mismatch",
            ));
        }
        Ok((toc, toc_offset))
    }

    /// Parses and checks the trailer and table of contents.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let (toc, toc_offset) = self.toc()?;
        let count = toc.len() / TOC_ENTRY_LEN;
        let mut out = Vec::with_capacity(count);
        for (i, e) in toc.chunks_exact(TOC_ENTRY_LEN).enumerate() {
            // The table of contents passed its checksum, so an unknown kind was written on
            // purpose by a newer version, not by bit rot.
            let kind = match ObjectKind::from_u8(e[32]) {
                Some(ObjectKind::Pack) => {
                    return Err(Error::corrupt(
                        self.what(),
                        format!("entry {i}: a pack cannot contain a pack"),
                    ))
                }
                Some(k) => k,
                None => {
                    return Err(Error::NewerFormat {
                        what: format!("{} (entry {i} has object kind {})", self.what(), e[32]),
                        found: u32::from(e[32]),
                        supported: ObjectKind::RunPart as u32,
                    })
                }
            };
            let compression = Compression::from_u8(e[33]).ok_or_else(|| {
                Error::corrupt(
                    self.what(),
                    format!("entry {i}: unknown compression {}", e[33]),
                )
            })?;
            let entry = Entry {
                hash: Hash::from_slice(&e[..32]).expect("32 bytes"),
                kind,
                compression,
                raw_len: u32::from_le_bytes(e[36..40].try_into().expect("4 bytes")),
                stored_len: u32::from_le_bytes(e[40..44].try_into().expect("4 bytes")),
                offset: u64::from_le_bytes(e[44..52].try_into().expect("8 bytes")),
            };
            let end = entry.offset.checked_add(u64::from(entry.stored_len));
            if entry.offset < HEADER_LEN || end.is_none_or(|end| end > toc_offset) {
                return Err(Error::corrupt(
                    self.what(),
                    format!("entry {i} ({}) points outside the data area", entry.hash),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Reads, decompresses and verifies one object. A group member whose frame this thread
    /// has decoded is not read again.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>> {
        if entry.compression == Compression::Group {
            let (kind, hash, len) = (entry.kind, &entry.hash, entry.raw_len);
            if let Some(raw) = group::cached_member(&self.path, entry.offset, kind, hash, len) {
                return Ok(raw);
            }
            let stored = self.read_span(entry.offset, u64::from(entry.stored_len))?;
            self.check_lengths(entry, &stored)?;
            let place = Some((self.path.as_path(), entry.offset));
            return group::member(kind, hash, len, &stored, place, &|| self.what());
        }
        let stored = self.read_span(entry.offset, u64::from(entry.stored_len))?;
        Ok(self.verify(entry, &stored)?.into_owned())
    }

    /// Reads `len` bytes at `offset` with one positioned read (several adjacent objects at
    /// once when restoring). A positioned read costs one copy; faulting the mapping in page by
    /// page costs more and would count the whole pack against our resident memory.
    pub fn read_span(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.check_span(offset, len)?;
        // Zeroed by the allocator (a large one maps fresh zero pages: no memset pass).
        let mut buf = vec![0u8; len as usize];
        self.pread(&mut buf, offset)?;
        Ok(buf)
    }

    /// [`Self::read_span`] appending to `out` (push reads spans straight into the pack it
    /// builds). On error `out` is as it was.
    pub fn read_span_into(&self, offset: u64, len: u64, out: &mut Vec<u8>) -> Result<()> {
        self.check_span(offset, len)?;
        let at = out.len();
        out.resize(at + len as usize, 0);
        let r = self.pread(&mut out[at..], offset);
        if r.is_err() {
            out.truncate(at);
        }
        r
    }

    fn check_span(&self, offset: u64, len: u64) -> Result<()> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.map.len() as u64) || len > u64::from(MAX_OBJECT) * 64 {
            return Err(Error::corrupt(
                self.what(),
                format!("read of {len} bytes at {offset} lies past the end of the file"),
            ));
        }
        Ok(())
    }

    fn pread(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Asks the kernel to start reading a range now (restores read packs written around the
    /// page cache; this keeps the disk busy while earlier windows are verified and written).
    pub fn prefetch(&self, offset: u64, len: u64) {
        // Advisory: a refusal changes nothing but speed.
        let _ = rustix::fs::fadvise(
            &self.file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::WillNeed,
        );
    }

    /// Decodes an object's stored bytes and checks its hash; raw objects are not copied.
    pub fn verify<'a>(
        &self,
        entry: &Entry,
        stored: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        self.check_lengths(entry, stored)?;
        let raw = match entry.compression {
            Compression::Raw if stored.len() == entry.raw_len as usize => {
                std::borrow::Cow::Borrowed(stored)
            }
            // A group member is found by its hash: found is checked.
            Compression::Group => {
                return Ok(std::borrow::Cow::Owned(decode(entry, stored, &|| {
                    self.what()
                })?))
            }
            _ => std::borrow::Cow::Owned(decode(entry, stored, &|| self.what())?),
        };
        let actual = Hash::of(entry.kind, &raw);
        if actual != entry.hash {
            return Err(Error::corrupt(
                self.what(),
                format!(
                    "{} {} has hash {} (bit rot or tampering)",
                    entry.kind.name(),
                    entry.hash,
                    actual
                ),
            ));
        }
        Ok(raw)
    }

    /// Refuses an entry whose raw length no object can have, or whose stored bytes are not
    /// its stored length.
    fn check_lengths(&self, entry: &Entry, stored: &[u8]) -> Result<()> {
        if entry.raw_len > MAX_OBJECT || stored.len() != entry.stored_len as usize {
            return Err(Error::corrupt(
                self.what(),
                format!("object {} has an impossible length", entry.hash),
            ));
        }
        Ok(())
    }

    /// Recomputes the pack id: the hash of its table of contents in the pack domain. The table
    /// names every object's hash, so the id commits to all content; each object's bytes are
    /// checked against its own hash when read.
    pub fn compute_id(&self) -> Result<Hash> {
        let (toc, _) = self.toc()?;
        Ok(Hash::of(ObjectKind::Pack, toc))
    }
}
