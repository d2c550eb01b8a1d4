//! `store::FileReader`: a stored file read chunk by chunk, with seeks, equals the file; a
//! damaged chunk is an error when a read reaches it, not before.

use std::io::{Read, Seek, SeekFrom};

use crate::common::{packs, pseudo_random, Ws};

#[test]
fn a_file_streams_in_pieces_and_seeks_across_chunks() {
    let ws = Ws::new();
    let data = pseudo_random(3_000_000 + 17, 11);
    ws.write("big.bin", &data);
    let hash: store::Hash = ws.add("big.bin").parse().expect("hash");
    let mut r = ws.open().into_file_reader(&hash).expect("reader");
    assert_eq!(r.size(), data.len() as u64);
    assert!(r.chunk_count() > 10, "{} chunks", r.chunk_count());
    let mut all = Vec::new();
    let mut buf = vec![0u8; 99_991];
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    assert!(all == data, "streamed bytes differ");
    for &(from, len) in &[(1_500_000u64, 70_000usize), (0, 10), (2_999_990, 100)] {
        r.seek(SeekFrom::Start(from)).expect("seek");
        let mut got = vec![0u8; len];
        let n = r.read(&mut got).expect("read");
        let end = (from as usize + len).min(data.len());
        assert_eq!(&got[..n], &data[from as usize..end], "at {from}");
    }
    assert_eq!(
        r.seek(SeekFrom::End(-5)).expect("seek"),
        data.len() as u64 - 5
    );
    assert!(r.seek(SeekFrom::Current(-(data.len() as i64))).is_err());
}

#[test]
fn a_damaged_chunk_fails_the_read_that_reaches_it() {
    let ws = Ws::new();
    let data = pseudo_random(2_000_000, 12);
    ws.write("big.bin", &data);
    let hash: store::Hash = ws.add("big.bin").parse().expect("hash");
    let mut r = ws.open().into_file_reader(&hash).expect("reader");
    let mut head = vec![0u8; 1000];
    r.read_exact(&mut head).expect("first chunk");
    assert_eq!(head, data[..1000]);
    for p in packs(&ws.p(".store")) {
        let mut b = std::fs::read(&p).expect("pack");
        let len = b.len();
        for i in (64..len - 64).step_by(97) {
            b[i] ^= 0xFF;
        }
        std::fs::write(&p, b).expect("write pack");
    }
    r.seek(SeekFrom::Start(1_000_000)).expect("seek");
    let err = r.read_into(&mut [0u8; 4096]).expect_err("corrupt chunk");
    assert!(
        matches!(err, store::Error::Corrupt { .. }),
        "expected Corrupt, got {err}"
    );
}
