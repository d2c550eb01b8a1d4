//! Bad input: each case gets a clear message naming the path or object, a distinct exit
//! code (see `store --help`), and no damage to what was stored before.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use store::exit;

use crate::common::{pseudo_random, Ws};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A store with one committed file, to check nothing is lost after a failure.
fn with_committed() -> (Ws, String, Vec<u8>) {
    let ws = Ws::new();
    let data = pseudo_random(300_000, 77);
    ws.write("kept.bin", &data);
    let h = ws.add("kept.bin");
    (ws, h, data)
}

fn assert_still_intact(ws: &Ws, h: &str, data: &[u8]) {
    let v = ws.run(&["verify"]);
    assert!(v.status.success(), "verify after failure: {}", stderr(&v));
    let out = ws.run(&["cat", h]);
    assert_eq!(out.stdout, data, "committed data still readable");
}

#[test]
fn nonexistent_path_is_named_with_exit_4() {
    let (ws, h, data) = with_committed();
    ws.write("real.txt", b"r");
    let o = ws.run(&["add", "real.txt", "missing/file.txt"]);
    assert_eq!(o.status.code(), Some(exit::BAD_PATH));
    assert!(
        stderr(&o).contains("missing/file.txt") && stderr(&o).contains("no such file"),
        "{}",
        stderr(&o)
    );
    // Nothing of the failed add was committed.
    assert!(!ws.ok(&["ls"]).contains("real.txt"));
    assert_still_intact(&ws, &h, &data);
}

#[test]
fn paths_inside_the_store_are_refused() {
    let (ws, h, data) = with_committed();
    for p in [".store", ".store/config.json", ".store/packs"] {
        let o = ws.run(&["add", p]);
        assert_eq!(o.status.code(), Some(exit::BAD_PATH), "{p}");
        assert!(stderr(&o).contains("inside the store"), "{}", stderr(&o));
    }
    // Adding the workspace itself skips .store/ silently.
    ws.write("w/x", b"x");
    let hw = ws.add(".");
    let listing = ws.ok(&["ls", &hw]);
    assert!(!listing.contains(".store"), "{listing}");
    assert_still_intact(&ws, &h, &data);
}

#[test]
fn fifos_and_sockets_are_skipped_with_a_warning() {
    let (ws, h, data) = with_committed();
    ws.write("d/regular", b"regular");
    let fifo = ws.p("d/pipe");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf8")).expect("cstr");
    // SAFETY: plain mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(ws.p("d/sock")).expect("bind");
    let o = ws.run(&["add", "d"]);
    assert_eq!(o.status.code(), Some(exit::PARTIAL), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("d/pipe") && e.contains("fifo"), "{e}");
    assert!(e.contains("d/sock") && e.contains("socket"), "{e}");
    let tree = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string();
    let listing = ws.ok(&["ls", &tree]);
    assert!(
        listing.contains("regular") && !listing.contains("pipe"),
        "{listing}"
    );
    assert_still_intact(&ws, &h, &data);
}

#[test]
fn symlinks_are_recorded_not_followed() {
    let ws = Ws::new();
    ws.write("outside/secret.bin", &pseudo_random(50_000, 1));
    ws.write("d/a", b"a");
    std::os::unix::fs::symlink(ws.p("outside"), ws.p("d/to_outside")).expect("symlink");
    let h = ws.add("d");
    let listing = ws.ok(&["ls", &h]);
    assert!(
        listing.contains("link") && listing.contains("to_outside"),
        "{listing}"
    );
    let st: serde_json::Value = serde_json::from_str(&ws.ok(&["stats", "--json"])).expect("json");
    assert!(
        st["unique_bytes"].as_u64().expect("n") < 1000,
        "the link target was not read: {st}"
    );
}

#[test]
fn unreadable_file_is_named_and_nothing_is_committed() {
    let (ws, h, data) = with_committed();
    ws.write("d/ok", b"fine");
    let secret = ws.write("d/locked", b"no access");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    // Root reads anything, so run the add as an unprivileged user where we are root.
    let mut all = vec![ws.path().to_path_buf()];
    while let Some(d) = all.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p != secret {
                let m = fs::symlink_metadata(&p).expect("meta");
                let mode = if m.is_dir() { 0o777 } else { 0o666 };
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
                if m.is_dir() {
                    all.push(p);
                }
            }
        }
    }
    fs::set_permissions(ws.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let o = if root {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_store"),
                "add",
                "d",
            ])
            .current_dir(ws.path())
            .output()
            .expect("setpriv")
    } else {
        ws.run(&["add", "d"])
    };
    assert_eq!(o.status.code(), Some(exit::BAD_PATH), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("d/locked") && stderr(&o).contains("permission denied"),
        "{}",
        stderr(&o)
    );
    assert!(
        !ws.ok(&["ls", "--json"]).contains("/d\""),
        "failed add committed nothing"
    );
    assert_still_intact(&ws, &h, &data);
}

#[test]
fn not_a_store_and_double_init_and_bad_hashes() {
    let ws = Ws::bare();
    let o = ws.run(&["ls"]);
    assert_eq!(o.status.code(), Some(exit::NO_STORE));
    assert!(stderr(&o).contains("not inside a store"), "{}", stderr(&o));
    ws.ok(&["init"]);
    let o = ws.run(&["init"]);
    assert_eq!(o.status.code(), Some(exit::NO_STORE));
    assert!(stderr(&o).contains("already exists"));
    for bad in ["zz", "xyz123", &"0".repeat(64)] {
        let o = ws.run(&["cat", bad]);
        assert_eq!(
            o.status.code(),
            Some(exit::NOT_FOUND),
            "{bad}: {}",
            stderr(&o)
        );
    }
    let o = ws.run(&["checkout", "abcd", "--to", "x", "--link", "bogus"]);
    assert_ne!(o.status.code(), Some(0));
    let o = ws.run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(exit::USAGE));
}

#[test]
fn newer_store_format_and_newer_index_schema_are_refused() {
    let (ws, _, _) = with_committed();
    let cfg = ws.p(".store/config.json");
    let orig = fs::read_to_string(&cfg).expect("config");
    let newer = orig.replace("\"format_version\": 1", "\"format_version\": 99");
    assert_ne!(orig, newer);
    fs::write(&cfg, newer).expect("write");
    let o = ws.run(&["ls"]);
    assert_eq!(o.status.code(), Some(exit::NEWER_FORMAT), "{}", stderr(&o));
    assert!(stderr(&o).contains("99"), "{}", stderr(&o));
    fs::write(&cfg, orig).expect("restore");

    let conn = rusqlite_user_version(&ws.p(".store/index.sqlite"), 99);
    assert!(conn);
    let o = ws.run(&["ls"]);
    assert_eq!(o.status.code(), Some(exit::NEWER_FORMAT), "{}", stderr(&o));
    assert!(stderr(&o).contains("index"), "{}", stderr(&o));
}

/// Sets `PRAGMA user_version` with the sqlite3 CLI when present, else by patching the header
/// (bytes 60..64 of a SQLite database file hold user_version, big-endian).
fn rusqlite_user_version(path: &std::path::Path, v: u32) -> bool {
    // Checkpoint by opening the store once, then patch the header bytes directly.
    let mut bytes = fs::read(path).expect("index");
    bytes[60..64].copy_from_slice(&v.to_be_bytes());
    fs::write(path, bytes).expect("write");
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", path.display()));
    }
    true
}

#[test]
fn full_disk_fails_cleanly_and_keeps_what_was_committed() {
    let mnt = tempfile::tempdir().expect("dir");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        crate::skips::skip(
            "disk-full",
            "cannot mount a small tmpfs here (needs root)",
            false,
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.path().to_path_buf());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_store"))
            .args(args)
            .current_dir(mnt.path())
            .env_remove("STORE_DIR")
            .output()
            .expect("run")
    };
    assert!(run(&["init"]).status.success());
    let small = pseudo_random(20_000, 1);
    fs::write(mnt.path().join("small.bin"), &small).expect("write");
    let o = run(&["add", "-q", "small.bin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let h = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string();
    // The big file lives outside the tmpfs; the store inside it cannot hold it.
    let outside = tempfile::tempdir().expect("dir");
    let big = outside.path().join("big.bin");
    fs::write(&big, pseudo_random(6 << 20, 2)).expect("write");
    let o = run(&["add", big.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(exit::DISK_FULL), "{}", stderr(&o));
    assert!(stderr(&o).contains("no space left"), "{}", stderr(&o));
    // Nothing half-written is visible, the earlier commit is intact.
    assert!(
        fs::read_dir(mnt.path().join(".store/tmp"))
            .expect("tmp")
            .next()
            .is_none(),
        "temporary pack removed"
    );
    assert!(run(&["verify"]).status.success());
    assert_eq!(run(&["cat", &h]).stdout, small);
    assert!(!String::from_utf8_lossy(&run(&["ls"]).stdout).contains("big.bin"));
}
