//! A full disk: at 0 bytes free, read-only commands, `verify` and `gc` still work; a write
//! that does not fit fails with exit 8 saying so, and leaves no pack or temporary file behind.
//! Each test mounts its own small tmpfs (needs root); without one it is skipped loudly, and
//! under CI that is a failure.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use store::exit;

use crate::common::{packs, pseudo_random, Ws};

/// A mounted tmpfs, unmounted on drop (also when the test panics).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m"), or returns `None` after saying why.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        crate::skips::skip(
            "disk-full",
            &format!(
                "cannot mount a small tmpfs here (needs root): {}",
                why.trim()
            ),
            false,
        );
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open there: detach it rather than leak the mount.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Bytes available to us on the filesystem holding `p`.
fn free_bytes(p: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", p.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// A file that takes every free byte of its filesystem.
struct Filler {
    path: PathBuf,
    /// Its length when the disk was full.
    full_len: u64,
}

impl Filler {
    /// Writes `dir/name` until the disk is full (big blocks, then pages, then single bytes).
    fn fill(dir: &Path, name: &str) -> Filler {
        let path = dir.join(name);
        let mut f = fs::File::create(&path).expect("filler");
        for block in [1 << 20, 4096, 1] {
            let b = vec![0xa5u8; block];
            while f.write_all(&b).is_ok() {}
        }
        drop(f);
        let full_len = fs::metadata(&path).expect("filler").len();
        assert_eq!(free_bytes(dir), 0, "the disk is full");
        Filler { path, full_len }
    }

    /// Shrinks the filler so that `n` bytes (relative to the full disk) are free again.
    fn leave_free(&self, n: u64) {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .expect("filler");
        f.set_len(self.full_len - n).expect("shrink filler");
    }
}

/// A workspace (with its store) inside `mnt`.
fn ws_in(mnt: &Path) -> Ws {
    let ws = Ws {
        dir: tempfile::tempdir_in(mnt).expect("workspace"),
    };
    ws.ok(&["init"]);
    ws
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp_files(ws: &Ws) -> Vec<PathBuf> {
    fs::read_dir(ws.p(".store/tmp"))
        .expect("tmp dir")
        .map(|e| e.expect("entry").path())
        .collect()
}

#[test]
fn at_zero_bytes_free_reads_verify_and_gc_work_and_add_fails_cleanly() {
    let Some(mnt) = Tmpfs::mount("8m") else {
        return;
    };
    let ws = ws_in(mnt.path());
    let v1 = pseudo_random(300_000, 1);
    let v2 = pseudo_random(300_000, 2);
    ws.write("a.bin", &v1);
    let h1 = ws.add("a.bin");
    ws.write("a.bin", &v2);
    let h2 = ws.add("a.bin");
    // An orphan pack (what a crashed add leaves): a valid pack the index does not name.
    let other = Ws::new();
    other.write("c.bin", &pseudo_random(200_000, 3));
    other.add("c.bin");
    let orphan_src = packs(&other.p(".store")).pop().expect("a pack");
    let fan = orphan_src
        .parent()
        .and_then(Path::file_name)
        .expect("fan-out dir");
    let orphan = ws
        .p(".store/packs")
        .join(fan)
        .join(orphan_src.file_name().expect("name"));
    fs::create_dir_all(orphan.parent().expect("parent")).expect("mkdir");
    fs::copy(&orphan_src, &orphan).expect("copy orphan");
    let packs_before = packs(&ws.p(".store"));

    let filler = Filler::fill(mnt.path(), "filler");

    // Read-only commands.
    ws.ok(&["status"]);
    let ls = ws.ok(&["ls"]);
    assert!(ls.contains("a.bin") && ls.contains(&h2), "{ls}");
    let log = ws.ok(&["log"]);
    assert!(log.contains(&h1) && log.contains(&h2), "{log}");
    ws.ok(&["runs"]);
    ws.ok(&["stats"]);
    assert!(ws.run(&["cat", &h1]).stdout == v1, "cat of the old version");
    let outside = tempfile::tempdir().expect("outside");
    let to = outside.path().join("out");
    ws.ok(&[
        "checkout",
        &h2,
        "--to",
        to.to_str().expect("utf8"),
        "--link",
        "copy",
    ]);
    assert!(fs::read(to.join("a.bin")).expect("restored") == v2);
    ws.ok(&["verify"]);

    // A write that does not fit: exit 8, saying why, and nothing left behind.
    let new = outside.path().join("b.bin");
    fs::write(&new, pseudo_random(100_000, 4)).expect("write");
    let o = ws.run(&["add", new.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(exit::DISK_FULL), "{}", stderr(&o));
    assert!(stderr(&o).contains("no space left"), "{}", stderr(&o));
    assert_eq!(packs(&ws.p(".store")), packs_before, "no new pack");
    assert!(tmp_files(&ws).is_empty(), "{:?}", tmp_files(&ws));
    assert!(!ws.ok(&["ls"]).contains("b.bin"));

    // gc at 0 bytes: removes the orphan (nothing the index names changes), freeing space.
    let gc: serde_json::Value =
        serde_json::from_str(&ws.ok(&["gc", "--yes", "--json"])).expect("gc json");
    assert_eq!(gc["orphan_packs"].as_array().map(Vec::len), Some(1), "{gc}");
    assert!(!orphan.exists(), "orphan removed");
    assert!(
        free_bytes(mnt.path()) >= 150_000,
        "gc freed the orphan's space"
    );
    assert!(ws.run(&["cat", &h1]).stdout == v1, "every version is kept");

    // Forgetting a version needs an index commit, which needs a little room for the index's
    // log: on a disk that is full again, gc gives up the store's space reserve for it, then
    // deletes the old version's pack.
    let filler2 = Filler::fill(mnt.path(), "filler2");
    assert!(free_bytes(mnt.path()) < 4096, "the disk is full again");
    assert!(
        ws.p(".store/reserve").exists(),
        "init made the space reserve"
    );
    let before = free_bytes(mnt.path());
    ws.ok(&["gc", "--keep-last", "1", "--yes"]);
    assert!(
        free_bytes(mnt.path()) >= before + 250_000,
        "the old version's pack was deleted"
    );
    // The reserve is back once there is room for it.
    drop(filler);
    ws.ok(&["gc", "--yes"]);
    assert_eq!(
        fs::metadata(ws.p(".store/reserve")).expect("reserve").len(),
        store::RESERVE_BYTES
    );
    assert!(
        !ws.ok(&["log"]).contains(&h1),
        "the old version is forgotten"
    );
    assert!(ws.run(&["cat", &h2]).stdout == v2);
    ws.ok(&["verify"]);
    drop(filler2);
}

/// Freeing a little more space each time, an add fails (exit 8, no pack or temporary file
/// left) until it fits. In between lies the case where the pack fits but the index commit
/// does not: the pack was already renamed into place and must be removed again.
#[test]
fn add_whose_index_commit_does_not_fit_leaves_no_pack_behind() {
    let Some(mnt) = Tmpfs::mount("8m") else {
        return;
    };
    let ws = ws_in(mnt.path());
    ws.write("small.bin", &pseudo_random(20_000, 5));
    ws.add("small.bin");
    let outside = tempfile::tempdir().expect("outside");
    let new = outside.path().join("b.bin");
    let data = pseudo_random(100_000, 6);
    fs::write(&new, &data).expect("write");
    let packs_before = packs(&ws.p(".store"));
    let filler = Filler::fill(mnt.path(), "filler");
    let mut commit_failures = 0;
    let mut added = None;
    for step in 0..128u64 {
        filler.leave_free(step * 4096);
        let o = ws.run(&["add", "-q", new.to_str().expect("utf8")]);
        if o.status.success() {
            added = Some(String::from_utf8_lossy(&o.stdout).into_owned());
            break;
        }
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(exit::DISK_FULL), "step {step}: {e}");
        assert!(e.contains("no space left"), "step {step}: {e}");
        if e.contains("index.sqlite") {
            commit_failures += 1;
        }
        assert_eq!(packs(&ws.p(".store")), packs_before, "step {step}: {e}");
        assert!(
            tmp_files(&ws).is_empty(),
            "step {step}: {:?}",
            tmp_files(&ws)
        );
    }
    let added = added.expect("the add fits in 512 KiB");
    assert!(
        commit_failures > 0,
        "no step had room for the pack but not for the index commit"
    );
    let h = added.split_whitespace().next().expect("hash");
    assert!(ws.run(&["cat", h]).stdout == data);
    ws.ok(&["verify"]);
}
