//! Execution-environment capture: what a run needs to be re-run faithfully (OS, kernel, CPU,
//! memory, container, Python and Rust toolchains, an allowlist of variables), and never what
//! could leak a secret: a variable whose name looks like one is dropped whatever the allowlist
//! says, and no variable value is ever logged.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

/// Substrings that mark a variable name as secret (case-insensitive).
pub const SECRET_MARKERS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
];

/// Variables kept by default: exact names, or prefixes ending in `*`.
pub const DEFAULT_ALLOW: &[&str] = &[
    "PATH",
    "LANG",
    "LC_*",
    "TZ",
    "SHELL",
    "HOSTNAME",
    "PEGASUS_*",
    "STORE_WF_NAME",
    "STORE_RUN_ID",
    "STORE_JOB_ID",
    "STORE_CONTAINER_BYPASSED",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_*",
    "SLURM_*",
    "PBS_*",
    "LSB_*",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "APPTAINER_*",
    "SINGULARITY_*",
    "container",
];

/// True when `name` looks like it holds a secret.
pub fn is_secret(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| up.contains(m))
}

fn allowed(name: &str, extra: &[String]) -> bool {
    let matches = |pat: &str| match pat.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pat,
    };
    DEFAULT_ALLOW.iter().any(|p| matches(p)) || extra.iter().any(|p| matches(p))
}

/// Keeps the allowed, non-secret variables of `vars`. `extra` extends the allowlist
/// (from `STORE_ENV_ALLOW`, comma-separated); it can never let a secret-looking name through.
pub fn filter_vars(
    vars: impl IntoIterator<Item = (String, String)>,
    extra: &[String],
) -> BTreeMap<String, String> {
    // A value may hold a secret too (`https://user:password@host`, a token): redacted.
    vars.into_iter()
        .filter(|(k, _)| !is_secret(k) && allowed(k, extra))
        .map(|(k, v)| (k, crate::engine::redact::redact(&v)))
        .collect()
}

/// A captured environment (stored as a JSON file object, referenced by the run).
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// Format of this record.
    pub format: u32,
    /// Pretty OS name from /etc/os-release.
    pub os: Option<String>,
    /// Kernel name, release and machine (uname).
    pub kernel: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// CPU model name.
    pub cpu_model: Option<String>,
    /// Logical CPUs available.
    pub cpu_count: usize,
    /// Total memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Container hints: docker, podman, apptainer/singularity.
    pub container: Vec<String>,
    /// `python3 --version`.
    pub python: Option<String>,
    /// `python3 -m pip freeze`, one requirement per entry.
    pub pip_freeze: Vec<String>,
    /// `conda list --export` when a conda environment is active.
    pub conda: Vec<String>,
    /// `rustc --version`.
    pub rust: Option<String>,
    /// Allowed, non-secret environment variables.
    pub variables: BTreeMap<String, String>,
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // Bounded: a hung interpreter must not hang a tracking job.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The slow part of a capture (interpreters and package lists), cached per environment.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
struct Toolchains {
    python: Option<String>,
    pip_freeze: Vec<String>,
    conda: Vec<String>,
    rust: Option<String>,
}

fn toolchains() -> Toolchains {
    let python = run("python3", &["--version"]);
    let pip_freeze = python
        .as_ref()
        .and_then(|_| {
            run(
                "python3",
                &["-m", "pip", "freeze", "--disable-pip-version-check"],
            )
        })
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let conda = std::env::var_os("CONDA_PREFIX")
        .and_then(|_| run("conda", &["list", "--export"]))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    // A direct-URL requirement may carry a token (`pkg @ git+https://user:token@host/...`).
    let redact_all = |lines: Vec<String>| -> Vec<String> {
        lines
            .iter()
            .map(|l| crate::engine::redact::redact(l))
            .collect()
    };
    Toolchains {
        python,
        pip_freeze: redact_all(pip_freeze),
        conda: redact_all(conda),
        rust: run("rustc", &["--version"]),
    }
}

/// How long a cached toolchain listing is trusted.
const TOOLCHAIN_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Like [`capture`], but the toolchain listing (`pip freeze` alone takes about half a second)
/// is reused for ten minutes by every job of the same host and interpreter environment (key:
/// host name, PATH, VIRTUAL_ENV, CONDA_PREFIX, PYTHONPATH), from `cache_dir`.
pub fn capture_cached(cache_dir: &std::path::Path) -> Environment {
    let mut key = blake3::Hasher::new_derive_key("store 2026-11 environment cache key v1");
    key.update(
        read("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .as_bytes(),
    );
    for v in ["PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH"] {
        key.update(v.as_bytes());
        key.update(std::env::var(v).unwrap_or_default().as_bytes());
        key.update(&[0]);
    }
    let path = cache_dir.join(format!(
        "toolchains-{}.json",
        &key.finalize().to_hex()[..32]
    ));
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < TOOLCHAIN_TTL);
    let cached: Option<Toolchains> = fresh
        .then(|| std::fs::read(&path).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let tools = match cached {
        Some(t) => t,
        None => {
            let t = toolchains();
            if std::fs::create_dir_all(cache_dir).is_ok() {
                if let Ok(json) = serde_json::to_vec(&t) {
                    let _ = crate::engine::util::atomic_write(&path, &json);
                }
            }
            t
        }
    };
    with_toolchains(tools)
}

/// Captures the environment of this process and machine.
pub fn capture() -> Environment {
    with_toolchains(toolchains())
}

fn with_toolchains(tools: Toolchains) -> Environment {
    let extra: Vec<String> = std::env::var("STORE_ENV_ALLOW")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let os = read("/etc/os-release").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
    });
    let kernel = uname();
    let hostname = read("/proc/sys/kernel/hostname").map(|s| s.trim().to_string());
    let cpu_model = read("/proc/cpuinfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    });
    let memory_bytes = read("/proc/meminfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let mut container = Vec::new();
    if std::path::Path::new("/.dockerenv").exists() {
        container.push("docker".to_string());
    }
    if std::path::Path::new("/run/.containerenv").exists()
        || std::env::var("container").is_ok_and(|v| v == "podman")
    {
        container.push("podman".to_string());
    }
    if std::env::var_os("APPTAINER_CONTAINER").is_some()
        || std::env::var_os("SINGULARITY_CONTAINER").is_some()
    {
        container.push("apptainer".to_string());
    }
    Environment {
        format: 1,
        os,
        kernel,
        hostname,
        cpu_model,
        cpu_count: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_bytes,
        container,
        python: tools.python,
        pip_freeze: tools.pip_freeze,
        conda: tools.conda,
        rust: tools.rust,
        variables: filter_vars(std::env::vars(), &extra),
    }
}

fn uname() -> Option<String> {
    let u = rustix::system::uname();
    Some(format!(
        "{} {} {}",
        u.sysname().to_string_lossy(),
        u.release().to_string_lossy(),
        u.machine().to_string_lossy()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_pass_even_when_allowed() {
        let vars = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "s3cr3t".to_string()),
            ("PEGASUS_WF_UUID".to_string(), "abc".to_string()),
            ("PEGASUS_AUTH_TOKEN".to_string(), "tok".to_string()),
            ("MY_api_key".to_string(), "k".to_string()),
            ("RANDOM_THING".to_string(), "x".to_string()),
        ];
        let extra = vec!["MY_*".to_string(), "RANDOM_THING".to_string()];
        let kept = filter_vars(vars, &extra);
        assert_eq!(
            kept.keys().cloned().collect::<Vec<_>>(),
            vec!["PATH", "PEGASUS_WF_UUID", "RANDOM_THING"]
        );
    }
}
