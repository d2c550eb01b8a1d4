//! Output for people (issue 17): dates, plurals, counts that agree with what lands on disk, a
//! clean status that says so.

use crate::common::Ws;

fn files_on_disk(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let t = e.file_type().expect("type");
        if t.is_dir() {
            n += files_on_disk(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn runs_checkout_and_status_speak_to_people() {
    let ws = Ws::new();
    ws.write("data/in.txt", b"shared input\n");
    ws.write("data/out.txt", b"result\n");
    // One input recorded by two jobs, one output: three records, two files.
    for (job, role, path) in [
        ("A", "input", "data/in.txt"),
        ("B", "input", "data/in.txt"),
        ("B", "output", "data/out.txt"),
    ] {
        ws.ok(&[
            "add", "--role", role, "--wf", "wf", "--run", "r-1", "--job", job, "--no-env", path,
        ]);
    }
    ws.ok(&["seal", "r-1"]);
    // A table with a header, a date for people in the local time zone, one vocabulary.
    let runs = ws.ok_env(&["runs"], &[("TZ", "Asia/Kolkata")]);
    let mut lines = runs.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        ["RUN", "WORKFLOW", "STATUS", "CREATED", "JOBS", "FILES", "RECORDS", "SIZE"]
    );
    let line = lines.next().expect("a run");
    assert!(!line.contains(" t=") && !line.contains("UTC"), "{line}");
    let cols: Vec<&str> = line.split_whitespace().collect();
    // r-1 wf sealed DATE TIME 2 2 3 SIZE UNIT
    assert_eq!(&cols[..3], ["r-1", "wf", "sealed"], "{line}");
    let json: serde_json::Value = serde_json::from_str(&ws.ok(&["runs", "--json"])).expect("json");
    let created_ns = json[0]["created_ns"].as_i64().expect("created_ns");
    // The time shown is the creation time in Kolkata (UTC+05:30, no daylight saving).
    let local = created_ns / 1_000_000_000 + 5 * 3600 + 1800;
    let secs = local.rem_euclid(86_400);
    assert_eq!(
        cols[4],
        format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60),
        "{line}"
    );
    assert!(cols[3].len() == 10 && cols[3].starts_with("20"), "{line}");
    // Two jobs, two files (in.txt once though two jobs read it), three records.
    assert_eq!(&cols[5..8], ["2", "2", "3"], "{line}");
    assert_eq!(json[0]["jobs"], 2);
    assert_eq!(json[0]["files"], 2);
    assert_eq!(json[0]["records"], 3);
    assert_eq!(json[0]["bytes"], 13 + 7);
    // show says the same, one line per file: who wrote it, who read it.
    let show = ws.ok(&["show", "r-1"]);
    assert!(show.contains("2 jobs, 2 files, 3 records, 20 B"), "{show}");
    let input = show
        .lines()
        .find(|l| l.contains("data/in.txt"))
        .expect("in.txt");
    assert!(input.ends_with("read by A and B"), "{show}");
    assert_eq!(show.matches("data/in.txt").count(), 1, "{show}");
    let output = show
        .lines()
        .find(|l| l.contains("data/out.txt"))
        .expect("out.txt");
    assert!(output.ends_with("written by B"), "{show}");
    // --by-job keeps one line per record.
    let by_job = ws.ok(&["show", "r-1", "--by-job"]);
    assert_eq!(by_job.matches("data/in.txt").count(), 2, "{by_job}");
    assert!(by_job.contains("job A"), "{by_job}");
    let show_json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["show", "r-1", "--json"])).expect("json");
    assert_eq!(
        show_json["counts"],
        serde_json::json!({"jobs": 2, "files": 2, "records": 3, "bytes": 20})
    );
    // Checkout counts what lands on disk.
    let out = ws.ok(&["checkout", "r-1", "--to", "restored", "--link", "copy"]);
    assert!(out.contains("restored 2 files"), "{out}");
    assert!(out.contains("2 copied"), "{out}");
    assert_eq!(files_on_disk(&ws.p("restored")), 2);
    // A clean status says so.
    ws.ok(&["add", "data"]);
    assert_eq!(ws.ok(&["status"]).trim(), "nothing changed");
    // Tracked paths are shown relative to the workspace (the same on every clone).
    let ls = ws.ok(&["ls"]);
    assert!(ls.lines().any(|l| l.ends_with("  data")), "{ls}");
    assert!(!ls.contains(&*ws.path().to_string_lossy()), "{ls}");
    // The checkout's argument is a run or a hash.
    let help = ws.ok(&["checkout", "--help"]);
    assert!(help.contains("[RUN|HASH|PATH]..."), "{help}");
}

#[test]
fn stats_counts_logical_and_unique_bytes_over_the_same_content() {
    let ws = Ws::new();
    // Two runs recording the same 1 MiB input and their own small output: the input is
    // stored once, so the logical size (each run's files counted whole) exceeds the unique.
    let big = crate::common::pseudo_random(1 << 20, 3);
    ws.write("data/in.bin", &big);
    for run in ["r-1", "r-2"] {
        ws.write("data/out.txt", run.as_bytes());
        for (role, path) in [("input", "data/in.bin"), ("output", "data/out.txt")] {
            ws.ok(&[
                "add", "--role", role, "--wf", "wf", "--run", run, "--job", "J", "--no-env", path,
            ]);
        }
        ws.ok(&["seal", run]);
    }
    let st: serde_json::Value = serde_json::from_str(&ws.ok(&["stats", "--json"])).expect("json");
    assert_eq!(st["runs"], 2, "{st}");
    let logical = st["logical_bytes"].as_u64().expect("logical");
    let unique = st["unique_bytes"].as_u64().expect("unique");
    // Versions: in.bin once, out.txt twice; runs: in.bin and out.txt each.
    assert_eq!(logical, (1 << 20) + 3 + 3 + 2 * ((1 << 20) + 3), "{st}");
    assert!((1 << 20..(1 << 20) + 4096).contains(&unique), "{st}");
    let ratio = st["dedup_ratio"].as_f64().expect("ratio");
    assert!(ratio > 2.9 && ratio < 3.1, "{st}");
    let human = ws.ok(&["stats"]);
    assert!(human.contains("2 runs"), "{human}");
    assert!(human.contains("dedup ratio:       3.00x"), "{human}");
}
