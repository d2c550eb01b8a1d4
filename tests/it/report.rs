//! `store dag` and `store report` (issue 15): the graph of a run, and its page opened in a
//! real headless browser (Debian's `chromium`): from `file://`, no console error, the expected
//! job and file nodes in the DOM, the changed input marked, a screenshot kept under
//! `target/report-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::Ws;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("json")
}

/// Records run `run`: job A reads in.txt and writes mid.txt, job B reads mid.txt and writes
/// out.txt, as tracking jobs record them (with directions).
fn two_job_run(ws: &Ws, run: &str, input: &[u8]) {
    ws.write("in.txt", input);
    ws.write("mid.txt", b"mid\n");
    ws.write("out.txt", b"out\n");
    for (job, dir, files) in [
        ("A", "consumed", vec!["input:in.txt"]),
        ("A", "produced", vec!["intermediate:mid.txt"]),
        ("B", "consumed", vec!["intermediate:mid.txt"]),
        ("B", "produced", vec!["output:out.txt"]),
    ] {
        let mut args = vec![
            "track",
            "--wf",
            "pair",
            "--run",
            run,
            "--job",
            job,
            "--direction",
            dir,
            "--no-env",
        ];
        args.extend(files);
        ws.ok(&args);
        if (job, dir) == ("A", "consumed") {
            // Job A "runs" for 200 ms: its duration is at least that.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    ws.ok(&["seal", run]);
}

/// The browser, or None (skip) outside CI.
pub(crate) fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(name).output() {
            if o.status.success() {
                return Some(PathBuf::from(
                    String::from_utf8_lossy(&o.stdout).trim().to_string(),
                ));
            }
        }
    }
    crate::skips::skip(
        "browser",
        "no chromium on PATH; `bash tests/run.sh` installs Debian's chromium",
        false,
    );
    None
}

/// Opens `page` headless: the DOM after its scripts ran, and the console errors.
pub(crate) fn open(browser: &Path, page: &Path, screenshot: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}", page.display());
    let base = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,1000",
        ]);
    };
    let mut dump = Command::new(browser);
    base(&mut dump);
    let o = dump.arg("--dump-dom").arg(&url).output().expect("chromium");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let errors: Vec<String> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    std::fs::create_dir_all(screenshot.parent().expect("dir")).expect("mkdir");
    let mut shot = Command::new(browser);
    base(&mut shot);
    let s = shot
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("chromium");
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), errors)
}

pub(crate) fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshots")
}

#[test]
fn dag_prints_the_runs_graph_as_json_dot_and_mermaid() {
    let ws = Ws::new();
    two_job_run(&ws, "r-1", b"hello\n");
    let d = json(&ws.ok(&["dag", "r-1"]));
    let nodes = d["nodes"].as_array().expect("nodes");
    let kind = |k: &str| nodes.iter().filter(|n| n["kind"] == k).count();
    assert_eq!(
        (
            kind("job"),
            kind("input"),
            kind("intermediate"),
            kind("output")
        ),
        (2, 1, 1, 1)
    );
    let edges: Vec<(String, String)> = serde_json::from_value(d["edges"].clone()).expect("edges");
    assert_eq!(edges.len(), 4, "{edges:?}");
    // Left to right by dependency: in.txt, A, mid.txt, B, out.txt.
    let level = |label: &str| {
        nodes
            .iter()
            .find(|n| n["label"] == label)
            .and_then(|n| n["level"].as_u64())
            .expect(label)
    };
    assert_eq!(
        ["in.txt", "A", "mid.txt", "B", "out.txt"].map(level),
        [0, 1, 2, 3, 4]
    );
    // Durations: from a job's last input record to its first output record.
    let duration = |label: &str| {
        nodes
            .iter()
            .find(|n| n["label"] == label)
            .and_then(|n| n["duration_ns"].as_u64())
            .expect(label)
    };
    assert!(duration("A") >= 200_000_000, "{d}");
    assert!(duration("A") < 60_000_000_000, "{d}");
    // B has one too (it read and wrote tracked files).
    duration("B");
    let dot = ws.ok(&["dag", "r-1", "--format", "dot"]);
    assert!(
        dot.starts_with("digraph") && dot.contains("rankdir=LR"),
        "{dot}"
    );
    assert!(dot.contains(r#""j:A" -> "f:mid.txt@"#), "{dot}");
    let mermaid = ws.ok(&["dag", "r-1", "--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert_eq!(mermaid.matches(" --> ").count(), 4, "{mermaid}");
}

#[test]
fn report_opens_in_a_browser_with_every_node_and_the_change_marked() {
    let Some(browser) = chromium() else {
        return;
    };
    let ws = Ws::new();
    two_job_run(&ws, "r-1", b"hello\n");
    two_job_run(&ws, "r-2", b"hello, changed\n");
    let page = ws.p("r2.html");
    ws.ok(&["report", "r-2", "-o", "r2.html", "--against", "r-1"]);
    let html = std::fs::read_to_string(&page).expect("page");
    // Self-contained: nothing fetched from anywhere.
    for needle in ["http://", "https://", "src=\"", "<link"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    // The embedded data is `store show --json`'s.
    let start = html.find(r#"id="store-data">"#).expect("data") + r#"id="store-data">"#.len();
    let end = start + html[start..].find("</script>").expect("end");
    let data = json(&html[start..end].replace("<\\/", "</"));
    let show = json(&ws.ok(&["show", "r-2", "--json"]));
    assert_eq!(data["show"]["entries"], show["entries"]);
    assert_eq!(data["show"]["counts"], show["counts"]);
    let (dom, errors) = open(&browser, &page, &screenshots().join("two-jobs.png"));
    assert!(errors.is_empty(), "console: {errors:?}");
    // The script ran (it counts the nodes onto <body>) and every node is drawn.
    assert!(
        dom.contains(r#"data-nodes="5""#),
        "the page's script did not run"
    );
    assert_eq!(dom.matches(r#"class="node job""#).count(), 2);
    assert_eq!(dom.matches(r#"class="node intermediate""#).count(), 1);
    assert_eq!(dom.matches(r#"class="node output""#).count(), 1);
    // The input that differs from r-1 is marked on the graph and listed.
    assert_eq!(
        dom.matches(r#"class="node input changed""#).count(),
        1,
        "{dom}"
    );
    assert!(dom.contains("input changed: in.txt"), "{dom}");
    assert!(
        std::fs::metadata(screenshots().join("two-jobs.png"))
            .expect("screenshot")
            .len()
            > 1000
    );
}

#[test]
fn a_500_job_report_is_written_and_opens_within_seconds() {
    let Some(browser) = chromium() else {
        return;
    };
    let ws = Ws::new();
    // 500 jobs in a chain of layers of 10: each reads two files of the layer before.
    for j in 0..500 {
        ws.write(&format!("d/f{j}"), format!("{j}\n").as_bytes());
    }
    let mut jobs = Vec::new();
    for j in 0..500usize {
        let (layer, k) = (j / 10, j % 10);
        let mut consumed: Vec<String> = Vec::new();
        if layer > 0 {
            consumed.push(format!("intermediate:d/f{}", (layer - 1) * 10 + k));
            consumed.push(format!(
                "intermediate:d/f{}",
                (layer - 1) * 10 + (k + 1) % 10
            ));
        }
        jobs.push((format!("J{j}"), consumed, format!("intermediate:d/f{j}")));
    }
    let children: Vec<_> = jobs
        .chunks(50)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let dir = ws.path().to_path_buf();
            std::thread::spawn(move || {
                for (job, consumed, produced) in chunk {
                    for (dir_name, files) in [("consumed", consumed), ("produced", vec![produced])]
                    {
                        if files.is_empty() {
                            continue;
                        }
                        let o = Command::new(env!("CARGO_BIN_EXE_store"))
                            .current_dir(&dir)
                            .env_remove("STORE_DIR")
                            .args(["track", "--wf", "big", "--run", "big-1", "--job", &job])
                            .args(["--direction", dir_name, "--no-env"])
                            .args(&files)
                            .output()
                            .expect("track");
                        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    }
                }
            })
        })
        .collect();
    for c in children {
        c.join().expect("tracker");
    }
    // The Pegasus workflow the jobs came from names their transformations: even jobs train,
    // odd ones evaluate.
    let mut yml = String::from("pegasus: '5.0'\nname: big\njobs:\n");
    for j in 0..500 {
        let name = if j % 2 == 0 { "train" } else { "evaluate" };
        yml.push_str(&format!(
            "- {{type: job, name: {name}, id: J{j}, arguments: [], uses: []}}\n"
        ));
    }
    ws.write("big.yml", yml.as_bytes());
    ws.ok(&[
        "track",
        "--wf",
        "big",
        "--run",
        "big-1",
        "--job",
        "plan",
        "--no-env",
        "workflow:big.yml",
    ]);
    ws.ok(&["seal", "big-1"]);
    let t = Instant::now();
    ws.ok(&["report", "big-1", "-o", "big.html"]);
    let generated = t.elapsed();
    let size = std::fs::metadata(ws.p("big.html")).expect("page").len();
    let t = Instant::now();
    let (dom, errors) = open(
        &browser,
        &ws.p("big.html"),
        &screenshots().join("500-jobs.png"),
    );
    let opened = t.elapsed();
    eprintln!("500-job report: {size} bytes, written in {generated:?}, opened in {opened:?}");
    assert!(errors.is_empty(), "console: {errors:?}");
    // Grouped by transformation and level: each layer of 10 jobs is 5 `train` and 5
    // `evaluate` jobs, and their files are grouped by the groups that wrote and read them.
    assert_eq!(dom.matches(r#"class="node job group""#).count(), 100);
    assert_eq!(dom.matches(">train ×5</text>").count(), 50, "{dom}");
    assert_eq!(dom.matches(">evaluate ×5</text>").count(), 50);
    assert_eq!(dom.matches(r#"class="node job""#).count(), 0);
    assert_eq!(
        dom.matches(r#"class="node intermediate group""#).count(),
        100
    );
    assert_eq!(dom.matches(">d/f# ×5</text>").count(), 100);
    // Every job is still listed, with its transformation.
    assert_eq!(dom.matches("<td>train</td>").count(), 250);
    assert_eq!(dom.matches("<td>evaluate</td>").count(), 250);
    // `store dag` prints the whole graph for other tools.
    let dag = json(&ws.ok(&["dag", "big-1", "--format", "json"]));
    let jobs = dag["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["kind"] == "job")
        .count();
    assert_eq!(jobs, 500);
    assert!(opened < Duration::from_secs(30), "{opened:?}");
}
