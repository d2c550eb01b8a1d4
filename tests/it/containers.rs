//! Containers in `store run` (issue 12, item 5): a job whose transformation names a container
//! runs in it through the engine on PATH, with the work directory, mounts, environment, image
//! and arguments it needs; with no engine nothing starts (exit 2, naming the job and the
//! container); `--no-containers` runs it on the host, warns, and records the bypass in that
//! job's environment.
//!
//! No real engine is needed: a fake `podman` (a shell script first on PATH) records its
//! arguments, then runs the command after the image on the host, as the container would.
//! Each test sets PATH to folders of its own, so an engine installed on the machine (docker,
//! podman) never takes part.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::{load_workflow, pegasus_available, Ws};

const IMAGE: &str = "docker:///example.org/tools:1";

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Two jobs as Pegasus's API writes them: A (`upper`, in container `tools`, with a mount, an
/// environment profile of its own and one of the container's) upper-cases `in.txt` into
/// `mid.txt` and appends what its environment says; B (`under`, on the host) turns its
/// spaces into underscores into `out.txt`. Scripts name their tools by absolute path: the
/// tests' PATH holds only engines.
fn workflow(ws: &Ws) -> PathBuf {
    let upper = ws.write(
        "bin/upper.sh",
        b"#!/bin/sh\n/usr/bin/tr a-z A-Z < \"$1\" > \"$2\"\n\
          echo \"$GREETING $JAVA_HOME $PEGASUS_DAG_JOB_ID\" >> \"$2\"\n",
    );
    let under = ws.write(
        "bin/under.sh",
        b"#!/bin/sh\n/usr/bin/tr ' ' _ < \"$1\" > \"$2\"\n",
    );
    chmod_x(&upper);
    chmod_x(&under);
    let input = ws.write("data/in.txt", b"hello world\n");
    std::fs::create_dir_all(ws.p("shared")).expect("mkdir");
    let yml = format!(
        "pegasus: 5.0.4
name: boxed
replicaCatalog:
  replicas:
  - lfn: in.txt
    pfns:
    - site: local
      pfn: {input}
transformationCatalog:
  transformations:
  - name: upper
    sites:
    - name: local
      pfn: {upper}
      type: installed
      container: tools
  - name: under
    sites:
    - name: local
      pfn: {under}
      type: installed
  containers:
  - name: tools
    type: docker
    image: {IMAGE}
    mounts:
    - {shared}:/shared:ro
    bypass: true
    profiles:
      env:
        JAVA_HOME: /opt/java
      pegasus:
        container.arguments: --shm-size=2g
jobs:
- type: job
  name: upper
  id: A
  arguments: [in.txt, mid.txt]
  profiles:
    env:
      GREETING: hello
  uses:
  - lfn: in.txt
    type: input
  - lfn: mid.txt
    type: output
- type: job
  name: under
  id: B
  arguments: [mid.txt, out.txt]
  uses:
  - lfn: mid.txt
    type: input
  - lfn: out.txt
    type: output
jobDependencies:
- id: A
  children: [B]
",
        input = input.display(),
        upper = upper.display(),
        under = under.display(),
        shared = ws.p("shared").display(),
    );
    ws.write("wf/boxed.yml", yml.as_bytes())
}

/// `store run WF --policy full --workdir work ARGS` with PATH = `path` (full: code tracking
/// must skip the executable that lives in the image).
fn run(ws: &Ws, wf: &Path, path: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        wf.to_str().expect("utf8"),
        "--policy",
        "full",
        "--workdir",
        "work",
    ];
    args.extend(extra);
    ws.cmd(&args).env("PATH", path).output().expect("run store")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

/// The recorded environment of `job` in run `run`.
fn environment(ws: &Ws, run: &str, job: &str) -> Value {
    let show = json(&ws.ok(&["show", run, "--json"]));
    let entry = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["role"] == "environment" && e["job_id"] == job)
        .unwrap_or_else(|| panic!("no environment recorded for job {job}: {show}"))
        .clone();
    json(&ws.ok(&["cat", entry["hash"].as_str().expect("hash")]))
}

fn sealed(ws: &Ws, run: &str) -> bool {
    json(&ws.ok(&["runs", "--json"]))
        .as_array()
        .expect("runs")
        .iter()
        .any(|r| r["run_id"] == run && r["status"] == "sealed")
}

#[test]
fn a_container_job_runs_through_the_engine_on_path_with_its_mounts_env_and_image() {
    let ws = Ws::new();
    let wf = workflow(&ws);
    if pegasus_available() {
        // The hand-written catalog is one Pegasus itself reads.
        assert_eq!(load_workflow(&wf)["jobs"]["A"]["name"], "upper");
    }
    let bin = tempfile::tempdir().expect("bin");
    let calls = ws.p("podman-calls.txt");
    let podman = bin.path().join("podman");
    std::fs::write(
        &podman,
        format!(
            "#!/bin/sh
# A stand-in for podman: records argv (one per line, then the values it was handed), and
# runs the command after the image on the host in the -w directory.
{{ printf '%s\\n' \"$@\"; echo \"== GREETING=$GREETING JAVA_HOME=$JAVA_HOME UUID=$PEGASUS_WF_UUID\"; }} >> {calls}
[ \"$1\" = run ] || exit 64
shift
while [ $# -gt 0 ]; do
  case \"$1\" in
    --rm) shift ;;
    -w) cd \"$2\" || exit 65; shift 2 ;;
    -v|--env|--user) shift 2 ;;
    --*=*) shift ;;
    *) break ;;
  esac
done
shift
exec \"$@\"
",
            calls = calls.display()
        ),
    )
    .expect("podman");
    chmod_x(&podman);

    let out = run(&ws, &wf, bin.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        stderr.contains(&format!(
            "job A runs in container tools ({IMAGE}) with {}",
            podman.display()
        )),
        "{stderr}"
    );

    let work = ws.p("work");
    let text = std::fs::read_to_string(&calls).expect("podman was called");
    let argv: Vec<&str> = text.lines().collect();
    let w = work.display().to_string();
    let shared = format!("{}:/shared:ro", ws.p("shared").display());
    let bind = format!("{w}:{w}");
    let upper = ws.p("bin/upper.sh").display().to_string();
    let expected = [
        "run",
        "--rm",
        "-v",
        &bind,
        "-w",
        &w,
        "-v",
        &shared,
        "--env",
        "JAVA_HOME",
        "--env",
        "GREETING",
        "--env",
        "PEGASUS_WF_LABEL",
        "--env",
        "PEGASUS_WF_UUID",
        "--env",
        "PEGASUS_DAG_JOB_ID",
        "--shm-size=2g",
        "docker://example.org/tools:1",
        &upper,
        "in.txt",
        "mid.txt",
    ];
    // One call (job A's); the host job B never went through the engine.
    assert_eq!(
        argv,
        expected
            .iter()
            .copied()
            .chain([format!("== GREETING=hello JAVA_HOME=/opt/java UUID={run_id}").as_str()])
            .collect::<Vec<_>>(),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("mid.txt")).expect("mid"),
        "HELLO WORLD\nhello /opt/java A\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("out.txt")).expect("out"),
        "HELLO_WORLD\nhello_/opt/java_A\n"
    );
    assert!(sealed(&ws, &run_id), "run {run_id} is not sealed");
    // Run in the container as recorded: no bypass.
    let env = environment(&ws, &run_id, "A");
    assert!(
        env["variables"].get("STORE_CONTAINER_BYPASSED").is_none(),
        "{env}"
    );
}

#[test]
fn without_an_engine_nothing_starts_and_the_job_and_container_are_named() {
    let ws = Ws::new();
    let wf = workflow(&ws);
    // PATH with no engine at all (docker may be installed on the machine: not here).
    let empty = tempfile::tempdir().expect("bin");
    let out = run(&ws, &wf, empty.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("job A runs in container tools"), "{stderr}");
    assert!(stderr.contains("podman: not on PATH"), "{stderr}");
    assert!(stderr.contains("--no-containers"), "{stderr}");
    assert!(!stderr.contains("job B"), "{stderr}");
    // Nothing started: no work directory (so no logs, no outputs), no run recorded.
    assert!(!ws.p("work").exists(), "a work directory was made");
    assert_eq!(json(&ws.ok(&["runs", "--json"])), serde_json::json!([]));
}

#[test]
fn no_containers_runs_on_the_host_warns_and_records_the_bypass() {
    let ws = Ws::new();
    let wf = workflow(&ws);
    let empty = tempfile::tempdir().expect("bin");
    let out = run(&ws, &wf, empty.path(), &["--no-containers"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        stderr.contains(
            "warning: job A runs on the host, not in its container tools (--no-containers)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("job B runs"), "{stderr}");
    // On the host: the container's environment profile is not there, the job's own is.
    assert_eq!(
        std::fs::read_to_string(ws.p("work/mid.txt")).expect("mid"),
        "HELLO WORLD\nhello  A\n"
    );
    assert!(ws.p("work/out.txt").exists());
    assert!(sealed(&ws, &run_id));
    let a = environment(&ws, &run_id, "A");
    assert_eq!(a["variables"]["STORE_CONTAINER_BYPASSED"], "tools", "{a}");
    let b = environment(&ws, &run_id, "B");
    assert!(
        b["variables"].get("STORE_CONTAINER_BYPASSED").is_none(),
        "{b}"
    );
}
