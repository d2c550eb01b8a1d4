//! Pegasus workflows as their authors really write them (issue 12): catalogs in side files or
//! named by `pegasus.properties`, input directories, the tracking paper's tag spellings,
//! misspelled tags, link types Pegasus rejects, checkpoint and inout files.

use std::process::Command;

use serde_json::Value;

use crate::common::{load_workflow, pegasus_available, pegasus_fixtures, Ws};

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

/// Writes a two-job workflow with the real Pegasus Python API (A upper-cases `in.txt` into
/// `mid.txt`, B reverses it into `out.txt`), its catalogs written as `MODE` says: `side`
/// (replicas.yml and transformations.yml beside it), `props` (conf/rc.yml and conf/tc.yml,
/// named by pegasus.properties), `paper` (embedded, with the paper's tag spellings).
const GENERATOR: &str = r##"
import os, sys
from Pegasus.api import *
out, mode = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "bin"), exist_ok=True)
for n, body in [("upper", 'tr a-z A-Z < "$1" > "$2"'), ("rev", 'rev < "$1" > "$2"')]:
    p = os.path.join(out, "bin", n)
    with open(p, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(p, 0o755)
with open(os.path.join(out, "in.txt"), "w") as f:
    f.write("hello\nworld\n")
fin, fmid, fout = File("in.txt"), File("mid.txt"), File("out.txt")
up = Transformation("upper", site="local", pfn=os.path.join(out, "bin", "upper"), is_stageable=False)
rv = Transformation("reverse", site="local", pfn=os.path.join(out, "bin", "rev"), is_stageable=False)
wf = Workflow("sidecat")
if mode == "paper":
    fin.add_metadata(**{"Input_Track": "true"})
    fout.add_metadata(output_trak="true")
    up.add_metadata(Track_trans="true")
    wf.add_metadata(basic_track="true")
rc = ReplicaCatalog().add_replica("local", fin, os.path.join(out, "in.txt"))
tc = TransformationCatalog().add_transformations(up, rv)
a = Job(up, _id="A").add_args(fin, fmid).add_inputs(fin).add_outputs(fmid)
b = Job(rv, _id="B").add_args(fmid, fout).add_inputs(fmid).add_outputs(fout)
if mode == "paper":
    a.add_metadata(job_auto="true")
wf.add_jobs(a, b)
if mode == "side":
    rc.write(os.path.join(out, "replicas.yml"))
    tc.write(os.path.join(out, "transformations.yml"))
elif mode == "props":
    os.makedirs(os.path.join(out, "conf"), exist_ok=True)
    rc.write(os.path.join(out, "conf", "rc.yml"))
    tc.write(os.path.join(out, "conf", "tc.yml"))
    with open(os.path.join(out, "pegasus.properties"), "w") as f:
        f.write("# written by hand\npegasus.catalog.replica.file = conf/rc.yml\n"
                "pegasus.catalog.transformation.file=conf/tc.yml\n")
else:
    wf.add_replica_catalog(rc).add_transformation_catalog(tc)
wf.write(os.path.join(out, "workflow.yml"))
"##;

fn generate(ws: &Ws, dir: &str, mode: &str) -> std::path::PathBuf {
    let gen = ws.write("gen.py", GENERATOR.as_bytes());
    let out = ws.p(dir);
    std::fs::create_dir_all(&out).expect("mkdir");
    crate::common::python(&[
        gen.to_str().expect("utf8"),
        out.to_str().expect("utf8"),
        mode,
    ]);
    out.join("workflow.yml")
}

#[test]
fn side_catalogs_are_read_for_augment_and_run() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    for mode in ["side", "props"] {
        let wf = generate(&ws, mode, mode);
        let text = std::fs::read_to_string(&wf).expect("wf");
        assert!(
            !text.contains("transformationCatalog") && !text.contains("replicaCatalog"),
            "{mode}: catalogs must be side files: {text}"
        );
        // Augment finds the code through the side transformation catalog.
        let out = ws.p(&format!("{mode}/tracked.yml"));
        let v = json(&ws.ok(&[
            "augment",
            wf.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
            "--policy",
            "transformations",
            "--json",
        ]));
        assert_eq!(
            v["transformations"],
            serde_json::json!(["reverse", "upper"]),
            "{mode}: {v}"
        );
        assert!(
            v["catalogs"].as_array().expect("catalogs").len() >= 2,
            "{mode}: {v}"
        );
        // Pegasus's loader reads the augmented file; the user's side files are untouched.
        let loaded = load_workflow(&out);
        assert!(loaded["jobs"]["A"].is_object(), "{loaded}");
        // `store run` executes it with every catalog a side file.
        let id = ws
            .ok(&[
                "run",
                wf.to_str().expect("utf8"),
                "--policy",
                "full",
                "--workdir",
                &format!("work-{mode}"),
                "-q",
            ])
            .trim()
            .to_string();
        assert_eq!(
            std::fs::read_to_string(ws.p(&format!("work-{mode}/out.txt"))).expect("out"),
            "OLLEH\nDLROW\n"
        );
        let show = json(&ws.ok(&["show", &id, "--json"]));
        let code = show["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["role"] == "code")
            .count();
        assert_eq!(code, 2, "{mode}: {show}");
        // The side catalogs are recorded with the description, so a rerun after the code
        // and the input changed on disk runs what was recorded: the restored description
        // embeds the side transformations and lists the side replicas, mapped to the
        // restored copies.
        let catalogs: Vec<&str> = show["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["role"] == "workflow")
            .filter_map(|e| e["lfn"].as_str())
            .filter(|l| l.starts_with("store-catalogs/"))
            .collect();
        assert!(
            catalogs.contains(&"store-catalogs/transformations/transformations.yml")
                || catalogs.contains(&"store-catalogs/transformations/tc.yml"),
            "{mode}: {catalogs:?}"
        );
        assert!(
            catalogs
                .iter()
                .any(|l| l.starts_with("store-catalogs/replicas/")),
            "{mode}: {catalogs:?}"
        );
        if mode == "props" {
            assert!(
                catalogs.contains(&"store-catalogs/properties/pegasus.properties"),
                "{catalogs:?}"
            );
        }
        std::fs::write(
            ws.p(&format!("{mode}/bin/upper")),
            "#!/bin/sh\necho changed > \"$2\"\n",
        )
        .expect("edit code");
        std::fs::write(ws.p(&format!("{mode}/in.txt")), "other\n").expect("edit input");
        let r = json(&ws.ok(&[
            "rerun",
            &id,
            "--workdir",
            &format!("rerun-{mode}"),
            "--json",
        ]));
        assert_eq!(r["identical"], true, "{mode}: {r}");
        assert_eq!(r["unrecorded_code"], serde_json::json!([]), "{mode}: {r}");
        assert_eq!(
            std::fs::read_to_string(ws.p(&format!("rerun-{mode}/work/out.txt"))).expect("out"),
            "OLLEH\nDLROW\n",
            "{mode}: the rerun ran today's code or input"
        );
    }
    // Without the side files, the run names what is missing.
    std::fs::remove_file(ws.p("side/transformations.yml")).expect("rm");
    let o = ws.run(&["run", ws.p("side/workflow.yml").to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(store::exit::USAGE));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("transformation upper is not in the transformation catalog"),
        "{e}"
    );
}

#[test]
fn the_papers_tags_in_every_spelling_and_misspellings_named() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    let wf = generate(&ws, "paper", "paper");
    let out = ws.p("paper/tracked.yml");
    let o = ws.run(&[
        "augment",
        wf.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    // basic_track = store_track: basic (files, no code); Track_trans = track_trans.
    assert_eq!(v["transformations"], serde_json::json!(["upper"]), "{v}");
    assert_eq!(v["by_tag"]["track_trans"], 1, "{v}");
    assert_eq!(v["by_tag"]["input_track"], 1, "{v}");
    assert!(
        v["by_tag"]["policy basic"].as_u64().expect("basic") >= 2,
        "{v}"
    );
    assert_eq!(v["mlflow_requested"], true, "job_auto asks for MLflow: {v}");
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{v}");
    let w = warnings[0].as_str().expect("warning");
    assert!(
        w.contains("output_trak") && w.contains("did you mean `output_track`"),
        "{w}"
    );
    // The text report says the same, on stderr.
    let o = ws.run(&[
        "augment",
        wf.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("did you mean `output_track`") && e.contains("tracked by tag:"),
        "{e}"
    );
    // --strict makes it an error, and writes nothing.
    let strict_out = ws.p("paper/strict.yml");
    let o = ws.run(&[
        "augment",
        wf.to_str().expect("utf8"),
        "-o",
        strict_out.to_str().expect("utf8"),
        "--strict",
    ]);
    assert_eq!(o.status.code(), Some(store::exit::USAGE));
    assert!(String::from_utf8_lossy(&o.stderr).contains("output_trak"));
    assert!(!strict_out.exists());
    // Every augmented file loads in Pegasus's loader.
    load_workflow(&out);
}

/// A one-job workflow, by hand, with the given `uses` entry for `f.a`.
fn with_use(ws: &Ws, name: &str, use_yaml: &str) -> std::path::PathBuf {
    ws.write(
        name,
        format!(
            "pegasus: '5.0'
name: bad
metadata:
  store_track: full
transformationCatalog:
  transformations:
  - name: t
    sites:
    - name: local
      pfn: /bin/true
      type: installed
jobs:
- type: job
  name: t
  id: J1
  arguments: []
  uses:
  - {use_yaml}
"
        )
        .as_bytes(),
    )
}

#[test]
fn link_types_pegasus_rejects_are_rejected_naming_file_job_and_file() {
    if !pegasus_available() {
        return;
    }
    let ws = Ws::new();
    let good = with_use(&ws, "good.yml", "{lfn: f.a, type: input}");
    ws.ok(&["augment", "good.yml", "-o", "good.tracked.yml"]);
    load_workflow(&good);
    for (n, bad, says) in [
        (
            1,
            "{lfn: f.a, type: inptu}",
            "type \"inptu\" is not a link type",
        ),
        (2, "{lfn: f.a, type: i}", "type \"i\" is not a link type"),
        (3, "{lfn: f.a}", "no `type`"),
        (
            4,
            "{lfn: f.a, type: output, stageOut: 'yes'}",
            "`stageOut` must be true or false",
        ),
        (
            5,
            "{lfn: f.a, type: output, registerReplica: 1}",
            "`registerReplica` must be true or false",
        ),
        (6, "{type: input}", "no `lfn`"),
    ] {
        let file = format!("bad{n}.yml");
        let path = with_use(&ws, &file, bad);
        let out = format!("bad{n}.tracked.yml");
        let o = ws.run(&["augment", &file, "-o", &out]);
        assert_eq!(o.status.code(), Some(store::exit::USAGE), "{bad}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains(&file) && e.contains("job J1") && e.contains(says),
            "{bad}: {e}"
        );
        assert!(!ws.p(&out).exists());
        // Pegasus's own loader rejects the link types and missing keys too; the boolean
        // flags it leaves to pegasus-plan, which validates against the same schema
        // (wf-5.0.yml: `stageOut`, `registerReplica` are booleans).
        let loader = Command::new("python3")
            .arg(pegasus_fixtures().join("load_workflow.py"))
            .arg(&path)
            .output()
            .expect("python3");
        if ![4, 5].contains(&n) {
            assert!(!loader.status.success(), "Pegasus accepted {bad}");
        }
    }
    // The keys every job needs (wf-5.0.yml `abstractJob`): what Pegasus's loader rejects,
    // augment rejects, naming the file, the job and the key.
    let good_job = "  arguments: []\n  uses: []\n";
    for (n, job, says) in [
        (7, "  uses: []\n", "job J1 has no `arguments`"),
        (8, "  arguments: []\n", "job J1 has no `uses`"),
        (
            9,
            "  arguments: []\n  uses: {lfn: f.a}\n",
            "`uses` is not a list",
        ),
        (
            10,
            &format!("{good_job}  profiles: 3\n"),
            "`profiles` is not a mapping",
        ),
        (
            11,
            &format!("{good_job}  name: 3\n"),
            "job J1 has no `name`",
        ),
    ] {
        let file = format!("bad{n}.yml");
        let text = format!(
            "pegasus: '5.0'\nname: bad\njobs:\n- type: job\n  id: J1\n{}{job}",
            if job.contains("name:") {
                ""
            } else {
                "  name: t\n"
            }
        );
        let path = ws.write(&file, text.as_bytes());
        let out = format!("bad{n}.tracked.yml");
        let o = ws.run(&["augment", &file, "-o", &out]);
        assert_eq!(o.status.code(), Some(store::exit::USAGE), "{job}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(&file) && e.contains(says), "{job}: {e}");
        assert!(!ws.p(&out).exists());
        let loader = Command::new("python3")
            .arg(pegasus_fixtures().join("load_workflow.py"))
            .arg(&path)
            .output()
            .expect("python3");
        assert!(!loader.status.success(), "Pegasus accepted {job}");
    }
    // ...and a job with both is accepted by both.
    let ok = ws.write(
        "ok-job.yml",
        format!("pegasus: '5.0'\nname: ok\njobs:\n- type: job\n  id: J1\n  name: t\n{good_job}")
            .as_bytes(),
    );
    ws.ok(&["augment", "ok-job.yml", "-o", "ok-job.tracked.yml"]);
    load_workflow(&ok);
}

const APPEND: &str = "#!/bin/sh\n# appends its name to the checkpoint, and to the inout file\necho \"$1\" >> state.ckpt\n[ -n \"$2\" ] && echo \"$1\" >> \"$2\"\nexit 0\n";

#[test]
fn checkpoint_and_inout_files_are_recorded_before_and_after_each_job() {
    let ws = Ws::new();
    let step = ws.write_exe("bin/step", APPEND.as_bytes());
    let data = ws.write("data/log.txt", b"start\n");
    ws.write(
        "ck.yml",
        format!(
            "pegasus: '5.0'
name: ck
replicaCatalog:
  replicas:
  - lfn: log.txt
    pfns:
    - site: local
      pfn: {data}
transformationCatalog:
  transformations:
  - name: step
    sites:
    - name: local
      pfn: {step}
      type: installed
jobs:
- type: job
  name: step
  id: A
  arguments: [A]
  uses:
  - {{lfn: state.ckpt, type: checkpoint}}
- type: job
  name: step
  id: B
  arguments: [B, log.txt]
  uses:
  - {{lfn: state.ckpt, type: checkpoint}}
  - {{lfn: log.txt, type: inout}}
jobDependencies:
- id: A
  children: [B]
",
            data = data.display(),
            step = step.display()
        )
        .as_bytes(),
    );
    let id = ws
        .ok(&["run", "ck.yml", "--policy", "full", "--workdir", "w", "-q"])
        .trim()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(ws.p("w/state.ckpt")).expect("ckpt"),
        "A\nB\n"
    );
    // The user's inout file was copied in, never written through.
    assert_eq!(std::fs::read_to_string(&data).expect("data"), "start\n");
    assert_eq!(
        std::fs::read_to_string(ws.p("w/log.txt")).expect("log"),
        "start\nB\n"
    );
    let show = json(&ws.ok(&["show", &id, "--json"]));
    let entries = show["entries"].as_array().expect("entries");
    let version = |lfn: &str, job: &str, dir: &str| -> Option<String> {
        entries
            .iter()
            .find(|e| e["lfn"] == lfn && e["job_id"] == job && e["direction"] == dir)
            .map(|e| e["hash"].as_str().expect("hash").to_string())
    };
    let hash_of = |text: &str| {
        let p = ws.write(&format!("probe-{}", text.len()), text.as_bytes());
        ws.ok(&["add", p.to_str().expect("utf8")])
            .split_whitespace()
            .next()
            .expect("hash")
            .to_string()
    };
    // A found no checkpoint and left "A"; B saw A's and left "A B".
    assert_eq!(version("state.ckpt", "A", "consumed"), None);
    assert_eq!(version("state.ckpt", "A", "produced"), Some(hash_of("A\n")));
    assert_eq!(version("state.ckpt", "B", "consumed"), Some(hash_of("A\n")));
    assert_eq!(
        version("state.ckpt", "B", "produced"),
        Some(hash_of("A\nB\n"))
    );
    assert_eq!(
        version("log.txt", "B", "consumed"),
        Some(hash_of("start\n"))
    );
    assert_eq!(
        version("log.txt", "B", "produced"),
        Some(hash_of("start\nB\n"))
    );
    // The augmented file (what pegasus-plan would get) keeps the optional record optional.
    let v = json(&ws.ok(&[
        "augment",
        "ck.yml",
        "-o",
        "ck.tracked.yml",
        "--policy",
        "full",
        "--json",
    ]));
    assert!(v["tracked"]["state.ckpt"].is_string(), "{v}");
    let tracked = std::fs::read_to_string(ws.p("ck.tracked.yml")).expect("tracked");
    assert!(tracked.contains("intermediate?:state.ckpt"), "{tracked}");
}

#[test]
fn sub_workflows_are_found_in_input_directories() {
    let ws = Ws::new();
    ws.write(
        "subs/inner.yml",
        b"pegasus: '5.0'
name: inner
transformationCatalog:
  transformations:
  - name: hello
    sites:
    - name: local
      pfn: /bin/sh
      type: installed
jobs:
- type: job
  name: hello
  id: H
  arguments: [-c, 'echo inner > made.txt']
  uses:
  - {lfn: made.txt, type: output}
",
    );
    ws.write(
        "outer.yml",
        b"pegasus: '5.0'
name: outer
jobs:
- type: pegasusWorkflow
  file: inner.yml
  id: S
  arguments: []
  uses:
  - {lfn: inner.yml, type: input}
",
    );
    let o = ws.run(&["run", "outer.yml", "--workdir", "w1"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("inner.yml"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ws.ok(&[
        "run",
        "outer.yml",
        "--workdir",
        "w2",
        "--input-dir",
        "subs",
        "-q",
    ]);
    assert_eq!(
        std::fs::read_to_string(ws.p("w2/made.txt")).expect("made"),
        "inner\n"
    );
}

/// A job that writes a sub-workflow (`gen.yml`: job C upper-cases `seed.txt` into
/// `result.txt`) and its input, unless `$SKIP_GEN` is set.
const GEN: &str = "#!/bin/sh
[ -n \"$SKIP_GEN\" ] && exit 0
cat > gen.yml <<END
pegasus: '5.0'
name: fresh
transformationCatalog:
  transformations:
  - name: up
    sites:
    - name: local
      pfn: UPPER
      type: installed
jobs:
- type: job
  name: up
  id: C
  arguments: [seed.txt, result.txt]
  uses:
  - {lfn: seed.txt, type: input}
  - {lfn: result.txt, type: output}
END
echo fresh seed > seed.txt
";

#[test]
fn a_sub_workflow_written_at_run_time_is_augmented_and_run_then() {
    let ws = Ws::new();
    let upper = ws.write_exe("bin/upper", b"#!/bin/sh\ntr a-z A-Z < \"$1\" > \"$2\"\n");
    let gen = ws.write_exe(
        "bin/gen",
        GEN.replace("UPPER", &upper.display().to_string())
            .as_bytes(),
    );
    // A stale copy is there; the workflow writes the real one in job G.
    ws.write(
        "gen.yml",
        b"pegasus: '5.0'\nname: stale\njobs:\n- {type: job, name: x, id: X, arguments: [], uses: []}\n",
    );
    ws.write(
        "outer.yml",
        format!(
            "pegasus: '5.0'
name: outer
transformationCatalog:
  transformations:
  - name: gen
    sites:
    - name: local
      pfn: {gen}
      type: installed
jobs:
- type: job
  name: gen
  id: G
  arguments: []
  uses:
  - {{lfn: gen.yml, type: output}}
  - {{lfn: seed.txt, type: output}}
- type: pegasusWorkflow
  file: gen.yml
  id: S
  arguments: []
  uses:
  - {{lfn: gen.yml, type: input}}
jobDependencies:
- id: G
  children: [S]
",
            gen = gen.display()
        )
        .as_bytes(),
    );
    // For pegasus-plan: a job between G and S augments the file G writes, and S plans the
    // augmented one; nothing is read now.
    let v = json(&ws.ok(&[
        "augment",
        "outer.yml",
        "-o",
        "t.yml",
        "--policy",
        "full",
        "--json",
    ]));
    let run_id = v["run_id"]
        .as_str()
        .expect("a tree fixes its run")
        .to_string();
    let t = crate::common::yaml_as_json(&ws.p("t.yml"));
    let job = |id: &str| {
        t["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no job {id}"))
    };
    let args: Vec<String> = job("store_augment_S")["arguments"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let at = args.iter().position(|a| a == "augment").expect("augment");
    assert_eq!(
        args[at + 1..at + 4],
        ["gen.yml", "-o", "gen.tracked.yml"],
        "{args:?}"
    );
    for (flag, value) in [
        ("--run-id", run_id.as_str()),
        ("--job-path", "S"),
        ("--policy", "full"),
    ] {
        let i = args.iter().position(|a| a == flag).expect(flag);
        assert_eq!(args[i + 1], value, "{args:?}");
    }
    assert_eq!(job("S")["file"], "gen.tracked.yml");
    let children = |parent: &str| -> Vec<String> {
        t["jobDependencies"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| d["id"] == parent)
            .flat_map(|d| d["children"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect()
    };
    assert!(
        children("G").contains(&"store_augment_S".to_string()),
        "{t}"
    );
    assert_eq!(children("store_augment_S"), ["S"], "{t}");
    assert!(!ws.p("gen.tracked.yml").exists());
    if crate::common::pegasus_available() {
        load_workflow(&ws.p("t.yml"));
    }

    // `store run`: the fresh sub-workflow runs, tracked into the same run.
    let id = ws
        .ok(&[
            "run",
            "outer.yml",
            "--policy",
            "full",
            "--workdir",
            "w",
            "-q",
        ])
        .trim()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(ws.p("w/result.txt")).expect("result"),
        "FRESH SEED\n"
    );
    let show = json(&ws.ok(&["show", &id, "--json"]));
    assert!(show["sealed_ns"].as_i64().is_some_and(|t| t > 0), "{show}");
    let entries = show["entries"].as_array().expect("entries");
    let has = |job: &str, role: &str, lfn: &str| {
        entries
            .iter()
            .any(|e| e["job_id"] == job && e["role"] == role && e["lfn"] == lfn)
    };
    assert!(has("S:C", "input", "seed.txt"), "{show}");
    assert!(has("S:C", "output", "result.txt"), "{show}");
    assert!(
        entries
            .iter()
            .any(|e| e["job_id"] == "S:transformations" && e["role"] == "code"),
        "{show}"
    );
    let desc = entries
        .iter()
        .find(|e| e["role"] == "workflow" && e["lfn"] == "gen.yml")
        .unwrap_or_else(|| panic!("the generated description is recorded: {show}"));
    let text = ws.ok(&["cat", desc["hash"].as_str().expect("hash")]);
    assert!(text.contains("name: fresh"), "{text}");

    // A rerun plans the recorded sub-workflow and reproduces the result.
    let r = json(&ws.ok(&["rerun", &id, "--workdir", "again", "--json"]));
    assert_eq!(r["identical"], true, "{r}");

    // A generator that writes nothing: the run stops (at G's tracker or the augment job),
    // naming the file, and S never runs.
    let o = ws
        .cmd(&["run", "outer.yml", "--policy", "full", "--workdir", "w2"])
        .env("SKIP_GEN", "1")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("gen.yml: no such file") && e.contains("not started: S"),
        "{e}"
    );
}

#[test]
fn pathological_yaml_is_refused_at_once_naming_the_file_and_line() {
    let ws = Ws::new();
    let head = "pegasus: '5.0'\nname: x\njobs: []\n";
    let mut block = String::from(head);
    for d in 0..400 {
        block.push_str(&" ".repeat(d));
        block.push_str("k:\n");
    }
    let mut bomb = format!("{head}a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    for (name, text, says) in [
        (
            "flow.yml",
            format!("{head}k: {}\n", "[".repeat(400_000)),
            "line 4: YAML nested deeper",
        ),
        ("block.yml", block, "YAML nested deeper"),
        ("bomb.yml", bomb, "limit exceeded"),
        (
            "aliases.yml",
            format!("{head}a: &a 1\nb: [{}]\n", vec!["*a"; 20_000].join(", ")),
            "line 5: more than 10000 YAML aliases",
        ),
    ] {
        ws.write(name, text.as_bytes());
        for args in [
            vec!["augment", name, "-o", "out.yml"],
            vec!["run", name, "--workdir", "w"],
        ] {
            let o = ws.run(&args);
            assert_eq!(o.status.code(), Some(store::exit::USAGE), "{name} {args:?}");
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains(name) && e.contains(says), "{name}: {e}");
            assert!(!ws.p("out.yml").exists() && !ws.p("w").exists(), "{name}");
        }
    }
    // A 5 MB single line (a workflow written as one-line JSON would be one) is read, not
    // refused: the parser takes it in a fraction of a second (benches/augment.sh).
    ws.write(
        "long.yml",
        format!("{head}k: {}\n", "x".repeat(5 << 20)).as_bytes(),
    );
    ws.ok(&["augment", "long.yml", "-o", "out.yml"]);
}
