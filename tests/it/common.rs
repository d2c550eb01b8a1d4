//! Shared helpers: a temporary workspace and a way to run the real `store` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary workspace with a store in `.store/`.
pub struct Ws {
    pub dir: tempfile::TempDir,
}

impl Ws {
    /// A fresh workspace with an initialized store.
    pub fn new() -> Ws {
        let ws = Ws::bare();
        let out = ws.run(&["init"]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ws
    }

    /// A fresh workspace without a store.
    pub fn bare() -> Ws {
        Ws {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parents).
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
        p
    }

    /// Writes an executable file (creating parents).
    pub fn write_exe(&self, rel: &str, data: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(rel, data);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    /// The store command, run in the workspace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_store"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("STORE_DIR");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run store")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_env(args, &[])
    }

    /// Runs with extra environment variables, asserts success; returns stdout.
    pub fn ok_env(&self, args: &[&str], vars: &[(&str, &str)]) -> String {
        let out = self
            .cmd(args)
            .envs(vars.iter().copied())
            .output()
            .expect("run store");
        assert!(
            out.status.success(),
            "store {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 stdout")
    }

    /// `store add PATH` and return the printed hash.
    pub fn add(&self, rel: &str) -> String {
        let out = self.ok(&["add", "-q", rel]);
        out.split_whitespace()
            .next()
            .expect("hash printed")
            .to_string()
    }

    pub fn open(&self) -> store::Store {
        store::Store::open(&self.p(".store")).expect("open store")
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// All pack files under a store.
pub fn packs(store_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(store_dir.join("packs")).expect("packs dir") {
        let sub = sub.expect("entry").path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub).expect("sub") {
                out.push(f.expect("entry").path());
            }
        }
    }
    out.sort();
    out
}

/// The Pegasus fixtures (`gen.py`, `load_workflow.py`, `run_local.py`).
pub fn pegasus_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pegasus")
}

/// True when Python with the Pegasus packages is here; under CI their absence is a failure.
pub fn pegasus_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import Pegasus.api, Pegasus.workflow"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        crate::skips::skip(
            "Pegasus",
            "the Pegasus Python packages are not installed; `bash tests/run.sh` installs them",
            false,
        );
    }
    ok
}

/// Runs `python3 ARGS`, asserts success, returns stdout.
pub fn python(args: &[&str]) -> String {
    let o = Command::new("python3")
        .args(args)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "python3 {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Loads a workflow with Pegasus's loader: {"name", "jobs": {id: {...}}, "edges": [[p, c]]}.
pub fn load_workflow(path: &Path) -> serde_json::Value {
    serde_json::from_str(&python(&[
        pegasus_fixtures()
            .join("load_workflow.py")
            .to_str()
            .expect("utf8"),
        path.to_str().expect("utf8"),
    ]))
    .expect("json")
}

/// Runs git in `dir` (with a committer identity), asserting success; its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-C"])
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A YAML file as JSON (no Pegasus needed).
pub fn yaml_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read yaml");
    let v: serde_norway::Value = serde_norway::from_str(&text).expect("yaml");
    serde_json::to_value(v).expect("json")
}
