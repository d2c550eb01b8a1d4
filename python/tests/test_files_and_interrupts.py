"""Streaming reads of stored files (local and on a clone from a real S3 server), Ctrl-C during
a long call, and the errors only a busy store or a full disk give."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import store_wms
from conftest import add_sealed, need

MIB = 1 << 20


def packs_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*.pack"))


def test_open_file_streams_verified_chunks_with_seek(ws):
    data = os.urandom(6 * MIB + 12345)  # random bytes: FastCDC cuts ~100 chunks
    add_sealed(ws, "big.bin", data, "r1")
    s = store_wms.Store.open(ws.root)
    with s.open_file("r1", "big.bin", buffer_size=64 * 1024) as f:
        raw = f.raw
        assert isinstance(raw, store_wms.StoredFile) and isinstance(raw, io.RawIOBase)
        assert raw.size == len(data) and raw.chunks > 20, raw.chunks
        assert f.readable() and f.seekable() and not f.writable()
        assert f.read(1000) == data[:1000]
        assert f.tell() == 1000
        assert f.seek(3 * MIB + 1) == 3 * MIB + 1
        assert f.read(300_000) == data[3 * MIB + 1:3 * MIB + 300_001]
        f.seek(-10, io.SEEK_END)
        assert f.read() == data[-10:]
        assert f.tell() == len(data) and f.read(5) == b""
        f.seek(-len(data) + 7, io.SEEK_CUR)
        assert f.read(7) == data[7:14]
        # The whole file in odd pieces, across chunk boundaries.
        f.seek(0)
        pieces = []
        while True:
            b = f.read(777_777)
            if not b:
                break
            pieces.append(b)
        assert b"".join(pieces) == data
        buf = bytearray(4096)
        f.seek(5 * MIB)
        assert f.readinto(buf) == 4096 and bytes(buf) == data[5 * MIB:5 * MIB + 4096]
        with pytest.raises(ValueError):
            f.seek(-1)
    assert f.closed and raw.closed
    with pytest.raises(ValueError):
        f.read(1)


def test_a_corrupted_chunk_raises_corrupt_while_streaming(ws):
    data = os.urandom(4 * MIB)
    add_sealed(ws, "big.bin", data, "r1")
    s = store_wms.Store.open(ws.root)
    with s.open_file("r1", "big.bin", buffer_size=4096) as f:
        assert f.read(1000) == data[:1000]
        # Damage every object of every pack (the file's manifest and first chunk are read
        # already; the next chunks are not).
        for p in ws.store.rglob("*.pack"):
            b = bytearray(p.read_bytes())
            for i in range(64, len(b) - 64, 97):
                b[i] ^= 0xFF
            p.write_bytes(bytes(b))
        f.seek(len(data) // 2)
        with pytest.raises(store_wms.Corrupt):
            f.read(100_000)
    assert ws.run("verify", ok=False).returncode == 5


def test_a_clone_fetches_only_the_chunks_a_read_needs(ws, tmp_path, monkeypatch):
    endpoint = need("STORE_TEST_S3_ENDPOINT", "an S3 server (moto)")
    data = os.urandom(8 * MIB)
    add_sealed(ws, "big.bin", data, "r1")
    bucket = f"pywms-{uuid.uuid4().hex[:12]}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).read()
    env = {"AWS_ACCESS_KEY_ID": "AKIATESTKEY", "AWS_SECRET_ACCESS_KEY": "test-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    url = f"s3://{bucket}/store"
    ws.run("remote", "add", "origin", url, "--endpoint", endpoint, "--allow-http", "--default")
    store_wms.Store.open(ws.root).push()
    clone = tmp_path / "clone"
    ws.run("clone", url, str(clone), "--endpoint", endpoint, "--allow-http")
    before = packs_bytes(clone / ".store")
    assert before < MIB, "a clone has metadata only"
    c = store_wms.Store.open(clone)
    with c.open_file("r1", "big.bin", buffer_size=4096) as f:
        f.seek(6 * MIB)
        assert f.read(50_000) == data[6 * MIB:6 * MIB + 50_000]
        # After a seek only the chunks under the read came (chunks are 16-256 KiB).
        assert packs_bytes(clone / ".store") - before < MIB
        f.seek(0)
        assert f.read() == data
    assert packs_bytes(clone / ".store") - before >= len(data)


CHILD = r"""
import json, sys, time
import store_wms
s = store_wms.Store(sys.argv[1])
print("calling", flush=True)
try:
    s.checkout("big", sys.argv[2])
    print(json.dumps({"interrupted": False}), flush=True)
except KeyboardInterrupt:
    print(json.dumps({"interrupted": True, "at": time.monotonic()}), flush=True)
"""


def test_ctrl_c_interrupts_a_long_checkout_and_the_store_still_verifies(ws, tmp_path, hold_lock):
    data = os.urandom(MIB) * 64
    add_sealed(ws, "big.bin", data, "big")
    # A maintenance run (gc, reindex) holds the store alone: the checkout waits for it, as
    # long as it takes, in Rust.
    gc = hold_lock(ws.store, exclusive=True)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws.store), str(tmp_path / "out")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "calling"
    time.sleep(0.5)
    assert child.poll() is None, "the checkout waits for the lock"
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=10)
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["interrupted"], (out, err)
    assert answer["at"] - sent < 2.0, answer["at"] - sent
    assert child.returncode == 0, err
    gc.release()
    # Nothing was left half-written: the store verifies, and the checkout works.
    ws.run("verify")
    r = store_wms.Store.open(ws.root).checkout("big", tmp_path / "again")
    assert r.bytes == len(data)
    assert (tmp_path / "again" / "big.bin").read_bytes() == data


def test_busy_while_another_process_uses_the_store(ws, hold_lock):
    add_sealed(ws, "a.txt", b"a\n", "r1")
    s = store_wms.Store.open(ws.root)
    reader = hold_lock(ws.store, exclusive=False)  # like any running store command
    with pytest.raises(store_wms.Busy, match="another store process"):
        s.gc(apply=True)
    reader.release()
    assert s.gc(apply=True)["applied"] is True


def test_disk_full_when_a_checkout_does_not_fit(ws, tmpfs):
    data = os.urandom(3 * MIB)
    add_sealed(ws, "big.bin", data, "r1")
    s = store_wms.Store.open(ws.root)
    with pytest.raises(store_wms.DiskFull):
        s.checkout("r1", tmpfs / "out")
    # A file that fits is restored there.
    add_sealed(ws, "small.bin", b"x" * 1000, "r2")
    s.checkout("r2", tmpfs / "small")
    assert (tmpfs / "small" / "small.bin").read_bytes() == b"x" * 1000
