//! Content-defined chunking of a byte stream (FastCDC 2020) in bounded batches.
//!
//! The stream is read into one of two reusable buffers of [`BATCH_BYTES`]; cut points are found
//! with FastCDC in that buffer, and the bytes after the last cut (less than one maximum chunk)
//! carry over to the next buffer. The cut points are exactly those FastCDC finds over the whole
//! stream at once, because a cut only ever looks at most `max` bytes ahead. While one batch is
//! processed (hashed, compressed) in parallel, the next one is read: memory stays at two
//! buffers whatever the file size, and a single large file keeps every core busy.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use fastcdc::v2020::FastCDC;

use crate::engine::store::ChunkParams;
use crate::error::{Error, Result};

/// Bytes read per batch.
pub const BATCH_BYTES: usize = 8 << 20;

/// One buffer of the stream and the chunks found in it.
#[derive(Default)]
pub struct Batch {
    /// The buffer; only `..len` is valid (it is allocated once and never shrunk).
    buf: Vec<u8>,
    len: usize,
    /// Chunk ranges within `buf`, in stream order.
    pub cuts: Vec<Range<usize>>,
    tail: usize,
    eof: bool,
}

impl Batch {
    /// The bytes of chunk `i`.
    pub fn chunk(&self, i: usize) -> &[u8] {
        &self.buf[self.cuts[i].clone()]
    }

    fn fill(
        &mut self,
        reader: &mut impl Read,
        carry: &[u8],
        p: ChunkParams,
        path: &Path,
    ) -> Result<()> {
        let want = BATCH_BYTES.max(p.max as usize * 2);
        self.cuts.clear();
        self.buf.clear();
        self.buf.extend_from_slice(carry);
        // `read_to_end` on a `Take` reads into spare capacity without zeroing it first, so a
        // small file touches only the pages it fills.
        while self.buf.len() < want {
            let need = (want - self.buf.len()) as u64;
            match reader.by_ref().take(need).read_to_end(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        self.len = self.buf.len();
        let data = &self.buf[..self.len];
        let (cuts, tail) = find_cuts(data, self.eof, p);
        self.cuts = cuts;
        self.tail = tail;
        Ok(())
    }
}

/// Cut points of `data` from offset 0. Unless `eof`, stops before the last `max` bytes (they
/// carry over). Returns the chunk ranges and where the carry-over starts.
///
/// Large buffers are cut in two halves at once: the second half is chunked speculatively from
/// its first byte, and once the sequential cuts from the first half land on any speculative cut
/// start, every later speculative cut is exactly what sequential chunking would find (a cut
/// depends only on the bytes after the previous one). Results equal the sequential ones.
fn find_cuts(data: &[u8], eof: bool, p: ChunkParams) -> (Vec<Range<usize>>, usize) {
    let cdc = FastCDC::new(data, p.min, p.avg, p.max);
    let max = p.max as usize;
    let len = data.len();
    // One cut from `pos`, or None when the rest must wait for more data.
    let next = |pos: usize| -> Option<usize> {
        let remaining = len - pos;
        if remaining == 0 || (!eof && remaining < max) {
            return None;
        }
        Some(cdc.cut(pos, remaining).1)
    };
    let run = |mut pos: usize, stop: usize| -> (Vec<Range<usize>>, usize) {
        let mut v = Vec::new();
        while pos < stop {
            match next(pos) {
                Some(end) => {
                    v.push(pos..end);
                    pos = end;
                }
                None => break,
            }
        }
        (v, pos)
    };
    if len < 8 * max {
        return run(0, len);
    }
    let mid = len / 2;
    let ((mut first, mut pos), (second, second_end)) =
        rayon::join(|| run(0, mid), || run(mid, len));
    // Walk sequentially from where the first half stopped until we meet a speculative start.
    let starts: std::collections::HashMap<usize, usize> = second
        .iter()
        .enumerate()
        .map(|(i, r)| (r.start, i))
        .collect();
    loop {
        if let Some(&i) = starts.get(&pos) {
            first.extend_from_slice(&second[i..]);
            return (first, second_end);
        }
        match next(pos) {
            Some(end) => {
                first.push(pos..end);
                pos = end;
            }
            None => return (first, pos),
        }
    }
}

/// Chunks everything `reader` yields, calling `process` on each batch while the next batch is
/// read, and returns the per-batch results in order.
pub fn chunk_stream<T: Send>(
    reader: &mut (impl Read + Send),
    p: ChunkParams,
    path: &Path,
    process: impl Fn(&Batch) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut cur = Batch::default();
    let mut next = Batch::default();
    cur.fill(reader, &[], p, path)?;
    let mut out = Vec::new();
    loop {
        let more = !cur.eof;
        let (done, filled) = rayon::join(
            || process(&cur),
            || {
                if more {
                    next.eof = false;
                    next.fill(reader, &cur.buf[cur.tail..cur.len], p, path)
                } else {
                    Ok(())
                }
            },
        );
        out.push(done?);
        filled?;
        if !more {
            return Ok(out);
        }
        std::mem::swap(&mut cur, &mut next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def1u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Batched cut points equal FastCDC over the whole input at once.
    #[test]
    fn batches_cut_exactly_like_whole_input() {
        let p = ChunkParams::default();
        for n in [0, 1, 100, 16 << 10, (40 << 20) + 12345] {
            let d = data(n);
            let whole: Vec<usize> = FastCDC::new(&d, p.min, p.avg, p.max)
                .map(|c| c.length)
                .collect();
            let batched: Vec<Vec<usize>> = chunk_stream(&mut &d[..], p, Path::new("mem"), |b| {
                Ok(b.cuts.iter().map(|r| r.len()).collect())
            })
            .expect("chunk");
            let batched: Vec<usize> = batched.into_iter().flatten().collect();
            assert_eq!(batched, whole, "length {n}");
        }
    }
}
