//! Jobs in containers. A job whose transformation names a container
//! ([`crate::pegasus::ContainerSpec`]) runs in it through an engine found on `PATH`: podman or
//! docker (`run --rm -v WORK:WORK -w WORK --env NAME... IMAGE EXE ARGS`) or apptainer or
//! singularity (`exec --no-home --cleanenv --bind WORK:WORK --pwd WORK IMAGE EXE ARGS`).
//!
//! Why the shared working directory at its own path (Pegasus uses `/scratch` or `/srv`): every
//! job of a local run works in that one directory, so an absolute path in an argument or a
//! profile means the same inside and outside, and relative ones (the usual) work either way.
//! The catalog's `mounts` are bound as written, and a `stageable` executable (a file of this
//! machine) is bound read-only at its own path; an `installed` one is a path in the image.
//!
//! Only the job's environment enters the container: its `profiles.env` over the container's,
//! and the `PEGASUS_*` variables. Values never appear on the command line (podman and docker
//! get `--env NAME` and read the value from their own environment; apptainer and singularity
//! read `APPTAINERENV_NAME` / `SINGULARITYENV_NAME`), so `ps` shows no profile value.
//!
//! Without an engine that can run a job's image, nothing starts: [`engines`] fails naming
//! every such job and its container. `store run --no-containers` runs them on the host
//! instead ([`bypass`]), and says so in the recorded environment of each.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pegasus::{ContainerType, PlannedJob, TrackedJob};

/// The variable that marks a job run on the host although its transformation names a
/// container (`--no-containers`); its value is the container's name. It is set for the job
/// and for its tracking jobs, whose environment capture records it.
pub const BYPASS_VAR: &str = "STORE_CONTAINER_BYPASSED";

/// How long `docker info` may take to show that a daemon answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A container engine (closed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// `podman run`.
    Podman,
    /// `docker run` (needs a daemon that answers).
    Docker,
    /// `apptainer exec`.
    Apptainer,
    /// `singularity exec` (Apptainer's former name, or SingularityCE).
    Singularity,
}

impl EngineKind {
    /// The program's name on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            EngineKind::Podman => "podman",
            EngineKind::Docker => "docker",
            EngineKind::Apptainer => "apptainer",
            EngineKind::Singularity => "singularity",
        }
    }

    /// The engines that may run a container of `kind`, best first: an image's own family
    /// first (apptainer runs Docker images too, through `docker://`).
    fn preference(kind: ContainerType) -> [EngineKind; 4] {
        use EngineKind::*;
        match kind {
            ContainerType::Docker | ContainerType::Shifter => {
                [Podman, Docker, Apptainer, Singularity]
            }
            ContainerType::Singularity => [Apptainer, Singularity, Podman, Docker],
        }
    }

    fn oci(self) -> bool {
        matches!(self, EngineKind::Podman | EngineKind::Docker)
    }
}

/// An engine found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engine {
    /// Which engine.
    pub kind: EngineKind,
    /// The program to run (as found on `PATH`).
    pub program: PathBuf,
    /// docker only: `UID:GID` the job runs as (the working directory's owner), so what it
    /// writes is not root's. podman and apptainer map the user themselves.
    pub user: Option<String>,
}

/// The image reference engine `kind` takes for `spec`'s image, or `None` when it cannot
/// run it: registry references (`docker://`, `shifter://`; `docker:///x` is `docker://x`)
/// run everywhere; a Docker image file (a `docker save` tarball) in podman and apptainer
/// (`docker-archive:`); a Singularity image file and `shub://`, `library://`, `oras://` only
/// in apptainer and singularity. Other URLs (http, gsiftp, ...) are downloads that
/// `store run` does not do.
pub fn image_for(spec: &crate::pegasus::ContainerSpec, kind: EngineKind) -> Option<String> {
    let image = spec.image.trim();
    let registry = ["docker://", "shifter://"]
        .iter()
        .find_map(|p| image.strip_prefix(p))
        .map(|r| r.trim_start_matches('/'));
    if let Some(r) = registry {
        return Some(match kind {
            EngineKind::Docker => r.to_string(),
            _ => format!("docker://{r}"),
        });
    }
    let file = image
        .strip_prefix("file://")
        .or_else(|| image.starts_with('/').then_some(image));
    if let Some(f) = file {
        return match (spec.kind, kind) {
            (ContainerType::Singularity, EngineKind::Apptainer | EngineKind::Singularity) => {
                Some(f.to_string())
            }
            (ContainerType::Singularity, _) | (_, EngineKind::Docker) => None,
            _ => Some(format!("docker-archive:{f}")),
        };
    }
    if ["shub://", "library://", "oras://"]
        .iter()
        .any(|p| image.starts_with(p))
    {
        return (!kind.oci()).then(|| image.to_string());
    }
    if image.contains("://") {
        return None;
    }
    // A bare reference (`centos:7`): a registry image.
    Some(match kind {
        EngineKind::Docker => image.to_string(),
        _ => format!("docker://{image}"),
    })
}

/// The environment variables a job gets: its container's `profiles.env`, its own (which win),
/// then `PEGASUS_WF_LABEL`, `PEGASUS_WF_UUID` (= `run_id`) and `PEGASUS_DAG_JOB_ID`.
pub fn job_vars(job: &PlannedJob, run_id: &str) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = job
        .container
        .iter()
        .flat_map(|c| c.env.iter().cloned())
        .collect();
    vars.extend(job.env.iter().cloned());
    vars.extend([
        ("PEGASUS_WF_LABEL".to_string(), job.workflow.clone()),
        ("PEGASUS_WF_UUID".to_string(), run_id.to_string()),
        ("PEGASUS_DAG_JOB_ID".to_string(), job.dag_id.clone()),
    ]);
    vars
}

/// The names of [`job_vars`], each once, in order.
fn var_names(job: &PlannedJob) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (k, _) in job_vars(job, "") {
        if !names.contains(&k) {
            names.push(k);
        }
    }
    names
}

/// The command line that runs `job` in its container with `engine`, the shared working
/// directory `work` (absolute) bound at its own path and made the working directory. For a
/// job without a container, its plain command line.
pub fn container_command(job: &PlannedJob, engine: &Engine, work: &Path) -> Vec<String> {
    let exe = job.executable.clone().unwrap_or_default();
    let Some(spec) = &job.container else {
        return std::iter::once(exe)
            .chain(job.args.iter().cloned())
            .collect();
    };
    let w = work.display().to_string();
    let bind = format!("{w}:{w}");
    let mut argv = vec![engine.program.display().to_string()];
    let flag = if engine.kind.oci() {
        argv.extend(["run", "--rm", "-v", &bind, "-w", &w].map(String::from));
        if let Some(u) = &engine.user {
            argv.extend(["--user".to_string(), u.clone()]);
        }
        "-v"
    } else {
        argv.extend(
            [
                "exec",
                "--no-home",
                "--cleanenv",
                "--bind",
                &bind,
                "--pwd",
                &w,
            ]
            .map(String::from),
        );
        "--bind"
    };
    for m in &spec.mounts {
        argv.extend([flag.to_string(), m.clone()]);
    }
    if spec.host_executable {
        argv.extend([flag.to_string(), format!("{exe}:{exe}:ro")]);
    }
    if engine.kind.oci() {
        for name in var_names(job) {
            argv.extend(["--env".to_string(), name]);
        }
    }
    argv.extend(spec.arguments.iter().cloned());
    argv.push(image_for(spec, engine.kind).unwrap_or_else(|| spec.image.clone()));
    argv.push(exe);
    argv.extend(job.args.iter().cloned());
    argv
}

/// What to set in the engine's own environment so that the container gets `vars`: the
/// variables themselves for podman and docker (named by `--env`), prefixed with
/// `APPTAINERENV_` or `SINGULARITYENV_` for apptainer and singularity.
pub fn container_env(engine: &Engine, vars: &[(String, String)]) -> Vec<(String, String)> {
    let prefix = match engine.kind {
        EngineKind::Podman | EngineKind::Docker => "",
        EngineKind::Apptainer => "APPTAINERENV_",
        EngineKind::Singularity => "SINGULARITYENV_",
    };
    vars.iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
}

/// An executable file named `name` in a directory of `path` (a `PATH` value).
fn on_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `docker info` succeeds within [`PROBE_TIMEOUT`] (a docker CLI without a daemon
/// that answers runs nothing).
fn daemon_answers(program: &Path) -> bool {
    let Ok(mut child) = Command::new(program)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Finds engines on `path`, each looked up (and probed) once.
struct Finder<'a> {
    path: &'a OsStr,
    seen: HashMap<EngineKind, std::result::Result<Engine, String>>,
}

impl Finder<'_> {
    fn get(&mut self, kind: EngineKind) -> std::result::Result<Engine, String> {
        let path = self.path;
        self.seen
            .entry(kind)
            .or_insert_with(|| {
                let program = on_path(kind.program(), path).ok_or("not on PATH")?;
                if kind == EngineKind::Docker && !daemon_answers(&program) {
                    return Err(format!(
                        "{} is there, but `docker info` fails (no daemon?)",
                        program.display()
                    ));
                }
                Ok(Engine {
                    kind,
                    program,
                    user: None,
                })
            })
            .clone()
    }
}

/// The engine of every job of `jobs` that runs in a container, by job ID, found on this
/// process's `PATH`: for each, the first engine of its container type's preference that is
/// there and can run its image. A job with no such engine is an [`Error::Invalid`] (exit 2)
/// naming it, its container and why each engine was not taken; nothing has started then.
pub fn engines(jobs: &[PlannedJob]) -> Result<HashMap<String, Engine>> {
    engines_on(jobs, &std::env::var_os("PATH").unwrap_or_default())
}

/// [`engines`] on the directories of `path`.
pub fn engines_on(jobs: &[PlannedJob], path: &OsStr) -> Result<HashMap<String, Engine>> {
    let mut finder = Finder {
        path,
        seen: HashMap::new(),
    };
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for j in jobs.iter().filter(|j| j.executable.is_some()) {
        let Some(spec) = &j.container else {
            continue;
        };
        let mut why = Vec::new();
        let found = EngineKind::preference(spec.kind).into_iter().find_map(|k| {
            if image_for(spec, k).is_none() {
                why.push(format!("{}: cannot run this image", k.program()));
                return None;
            }
            finder
                .get(k)
                .map_err(|e| why.push(format!("{}: {e}", k.program())))
                .ok()
        });
        match found {
            Some(e) => {
                out.insert(j.id.clone(), e);
            }
            None => missing.push(format!(
                "job {} runs in container {} ({} image {}): {}",
                j.id,
                spec.name,
                spec.kind.as_str(),
                spec.image,
                why.join("; ")
            )),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    Err(Error::Invalid(format!(
        "no container engine here can run {}:\n  {}\nInstall podman, docker or apptainer, \
         or run these jobs on the host with `store run --no-containers`; no job was started",
        if missing.len() == 1 {
            "this job"
        } else {
            "these jobs"
        },
        missing.join("\n  ")
    )))
}

/// For `--no-containers`: every job that names a container runs on the host instead, with
/// [`BYPASS_VAR`] = the container's name in its environment and in that of its tracking jobs
/// (`tracked`, from augmentation), whose environment capture records it. Returns (job ID,
/// container name) per bypassed job, for the warning.
pub fn bypass(jobs: &mut [PlannedJob], tracked: &[TrackedJob]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for j in jobs.iter_mut() {
        if let Some(c) = j.container.take() {
            j.env.push((BYPASS_VAR.to_string(), c.name.clone()));
            out.push((j.id.clone(), c.name));
        }
    }
    for t in tracked {
        let Some((_, name)) = out.iter().find(|(id, _)| *id == t.id) else {
            continue;
        };
        for tracker in &t.trackers {
            let id = if t.workflow.is_empty() {
                tracker.clone()
            } else {
                format!("{}:{tracker}", t.workflow)
            };
            if let Some(tj) = jobs.iter_mut().find(|j| j.id == id) {
                tj.env.push((BYPASS_VAR.to_string(), name.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pegasus::ContainerSpec;

    fn spec(kind: ContainerType, image: &str) -> ContainerSpec {
        ContainerSpec {
            name: "tools".into(),
            kind,
            image: image.into(),
            mounts: vec!["/data:/data:ro".into()],
            env: vec![("JAVA_HOME".into(), "/opt/java".into())],
            arguments: vec!["--shm-size=2g".into()],
            host_executable: false,
        }
    }

    fn job(container: Option<ContainerSpec>) -> PlannedJob {
        PlannedJob {
            id: "A".into(),
            workflow: "wf".into(),
            dag_id: "A".into(),
            executable: Some("/opt/bin/tool".into()),
            args: vec!["in.txt".into(), "out.txt".into()],
            inputs: vec![],
            outputs: vec![],
            rewrites: vec![],
            env: vec![("OMP_NUM_THREADS".into(), "2".into())],
            parents: vec![],
            tracking: false,
            container,
            nested: None,
        }
    }

    fn engine(kind: EngineKind) -> Engine {
        Engine {
            kind,
            program: PathBuf::from(format!("/usr/bin/{}", kind.program())),
            user: None,
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn podman_runs_the_image_with_the_work_dir_mounts_and_env_names() {
        let j = job(Some(spec(ContainerType::Docker, "docker:///centos:7")));
        let argv = container_command(&j, &engine(EngineKind::Podman), Path::new("/w/run"));
        assert_eq!(
            argv,
            words(
                "/usr/bin/podman run --rm -v /w/run:/w/run -w /w/run -v /data:/data:ro \
                 --env JAVA_HOME --env OMP_NUM_THREADS --env PEGASUS_WF_LABEL \
                 --env PEGASUS_WF_UUID --env PEGASUS_DAG_JOB_ID --shm-size=2g \
                 docker://centos:7 /opt/bin/tool in.txt out.txt"
            )
        );
        let vars = job_vars(&j, "r1");
        assert_eq!(container_env(&engine(EngineKind::Podman), &vars), vars);
        assert!(vars.contains(&("PEGASUS_WF_UUID".into(), "r1".into())));
    }

    #[test]
    fn docker_takes_a_plain_reference_and_runs_as_the_work_dirs_owner() {
        let mut s = spec(ContainerType::Docker, "docker://alpine:3");
        s.mounts.clear();
        s.arguments.clear();
        s.host_executable = true;
        let mut j = job(Some(s));
        j.env.clear();
        let mut e = engine(EngineKind::Docker);
        e.user = Some("1000:1000".into());
        assert_eq!(
            container_command(&j, &e, Path::new("/w")),
            words(
                "/usr/bin/docker run --rm -v /w:/w -w /w --user 1000:1000 \
                 -v /opt/bin/tool:/opt/bin/tool:ro --env JAVA_HOME --env PEGASUS_WF_LABEL \
                 --env PEGASUS_WF_UUID --env PEGASUS_DAG_JOB_ID alpine:3 /opt/bin/tool \
                 in.txt out.txt"
            )
        );
    }

    #[test]
    fn apptainer_binds_the_work_dir_and_passes_env_through_its_prefix() {
        let j = job(Some(spec(
            ContainerType::Singularity,
            "file:///images/tools.sif",
        )));
        let e = engine(EngineKind::Apptainer);
        assert_eq!(
            container_command(&j, &e, Path::new("/w/run")),
            words(
                "/usr/bin/apptainer exec --no-home --cleanenv --bind /w/run:/w/run \
                 --pwd /w/run --bind /data:/data:ro --shm-size=2g /images/tools.sif \
                 /opt/bin/tool in.txt out.txt"
            )
        );
        let env = container_env(&e, &job_vars(&j, "r1"));
        assert!(env.contains(&("APPTAINERENV_JAVA_HOME".into(), "/opt/java".into())));
        assert!(env.contains(&("APPTAINERENV_OMP_NUM_THREADS".into(), "2".into())));
        assert!(env.contains(&("APPTAINERENV_PEGASUS_WF_UUID".into(), "r1".into())));
        let s = engine(EngineKind::Singularity);
        assert!(container_env(&s, &job_vars(&j, "r1"))
            .iter()
            .all(|(k, _)| k.starts_with("SINGULARITYENV_")));
        // A Docker image in apptainer goes through docker://.
        let d = job(Some(spec(ContainerType::Docker, "docker:///centos:7")));
        let argv = container_command(&d, &e, Path::new("/w"));
        assert!(argv.contains(&"docker://centos:7".to_string()), "{argv:?}");
    }

    #[test]
    fn a_job_without_a_container_is_its_plain_command() {
        assert_eq!(
            container_command(&job(None), &engine(EngineKind::Podman), Path::new("/w")),
            words("/opt/bin/tool in.txt out.txt")
        );
    }

    #[test]
    fn images_go_only_to_engines_that_run_them() {
        use EngineKind::*;
        let sif = spec(ContainerType::Singularity, "file:///i/t.sif");
        assert_eq!(image_for(&sif, Apptainer).as_deref(), Some("/i/t.sif"));
        assert_eq!(image_for(&sif, Podman), None);
        let tar = spec(ContainerType::Docker, "file:///i/t.tar");
        assert_eq!(
            image_for(&tar, Podman).as_deref(),
            Some("docker-archive:/i/t.tar")
        );
        assert_eq!(image_for(&tar, Docker), None);
        let shub = spec(ContainerType::Singularity, "shub://org/img");
        assert_eq!(image_for(&shub, Docker), None);
        assert_eq!(
            image_for(&shub, Singularity).as_deref(),
            Some("shub://org/img")
        );
        let shifter = spec(ContainerType::Shifter, "shifter:///papajim/namd:latest");
        assert_eq!(
            image_for(&shifter, Docker).as_deref(),
            Some("papajim/namd:latest")
        );
        let http = spec(ContainerType::Docker, "https://example.org/img.tar");
        assert!([Podman, Docker, Apptainer, Singularity]
            .iter()
            .all(|k| image_for(&http, *k).is_none()));
    }

    #[test]
    fn engines_are_chosen_by_type_and_missing_ones_name_the_job() {
        let bin = tempfile::tempdir().expect("tmp");
        let path = bin.path().as_os_str().to_owned();
        let docker_job = job(Some(spec(ContainerType::Docker, "docker://alpine:3")));
        let mut sif_job = job(Some(spec(ContainerType::Singularity, "/i/t.sif")));
        sif_job.id = "B".into();
        let jobs = [docker_job, sif_job, job(None)];
        let e = engines_on(&jobs, &path).expect_err("no engine");
        let msg = e.to_string();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(msg.contains("job A runs in container tools"), "{msg}");
        assert!(msg.contains("job B runs in container tools"), "{msg}");
        assert!(msg.contains("podman: cannot run this image"), "{msg}");
        assert!(msg.contains("--no-containers"), "{msg}");

        use std::os::unix::fs::PermissionsExt;
        for name in ["apptainer", "podman"] {
            let p = bin.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let found = engines_on(&jobs, &path).expect("engines");
        assert_eq!(found["A"].kind, EngineKind::Podman);
        assert_eq!(found["B"].kind, EngineKind::Apptainer);
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn bypass_marks_the_job_and_its_trackers() {
        let mut jobs = vec![
            job(Some(spec(ContainerType::Docker, "docker://a"))),
            PlannedJob {
                id: "S:track_in".into(),
                tracking: true,
                container: None,
                env: vec![],
                ..job(None)
            },
        ];
        jobs[0].id = "S:A".into();
        let tracked = [TrackedJob {
            id: "S:A".into(),
            workflow: "S".into(),
            job: "A".into(),
            trackers: vec!["track_in".into()],
            ..Default::default()
        }];
        let out = bypass(&mut jobs, &tracked);
        assert_eq!(out, [("S:A".to_string(), "tools".to_string())]);
        assert!(jobs[0].container.is_none());
        for j in &jobs {
            assert!(
                j.env.contains(&(BYPASS_VAR.into(), "tools".into())),
                "{j:?}"
            );
        }
    }
}
