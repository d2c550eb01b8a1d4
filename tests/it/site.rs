//! `store site` (issue 15): a static catalog of the store. Runs of one workflow share an
//! input; the index lists every run with links that resolve, the shared input's page names
//! every run that consumed it and an output's page the run that produced it, the index opens
//! in a real headless browser from `file://` without a console error, and a second write
//! leaves unchanged run pages alone (modification times kept) while a new run is the only
//! page written.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::Ws;
use crate::report::{chromium, open, screenshots};

const WF: &str = "shared-wf";

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("json")
}

/// Records and seals run `run`: job `prep` reads `shared.txt` and writes `out-<run>.txt`.
fn run_with_shared_input(ws: &Ws, run: &str) {
    let out = format!("out-{run}.txt");
    ws.write(&out, format!("output of {run}\n").as_bytes());
    for (role, path) in [("input", "shared.txt"), ("output", out.as_str())] {
        ws.ok(&[
            "add", "-q", "--role", role, "--wf", WF, "--run", run, "--job", "prep", path,
        ]);
    }
    ws.ok(&["seal", run]);
}

/// `store site -o site --json`: the report, and what it said on stderr.
fn site(ws: &Ws) -> (serde_json::Value, String) {
    let o = ws.run(&["site", "-o", "site", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (
        json(&String::from_utf8_lossy(&o.stdout)),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every `href="..."` of a page.
fn hrefs(page: &str) -> Vec<String> {
    page.split(r#"href=""#)
        .skip(1)
        .map(|s| s[..s.find('"').expect("closing quote")].to_string())
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every page of the site, with its modification time.
fn pages(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut out = vec![(dir.join("index.html"), mtime(&dir.join("index.html")))];
    for sub in ["runs", "files"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("read dir") {
            let p = e.expect("entry").path();
            out.push((p.clone(), mtime(&p)));
        }
    }
    out.sort();
    out
}

#[test]
fn site_lists_runs_and_lineage_and_rewrites_only_what_changed() {
    let browser = chromium();
    let ws = Ws::new();
    ws.write("shared.txt", b"shared input <&>\n");
    run_with_shared_input(&ws, "run-1");
    run_with_shared_input(&ws, "run-2");
    let dir = ws.p("site");

    let (r, err) = site(&ws);
    assert_eq!(r["runs"], 2, "{r}");
    assert_eq!(r["runs_written"], serde_json::json!(["run-1", "run-2"]));
    assert_eq!(r["runs_unchanged"], 0);
    // shared.txt, out-run-1.txt, out-run-2.txt (environment records are no files).
    assert_eq!(r["file_pages"], 3, "{r}");
    assert!(
        err.contains("site site: 2 runs (2 written, 0 unchanged), 3 file pages"),
        "{err}"
    );

    // The index: one row per run, each linking to its page, the files section to the file
    // pages; every link resolves, none leaves the site.
    let index = read(&dir.join("index.html"));
    assert_eq!(index.matches(r#"<tr class="run sealed">"#).count(), 2);
    assert!(index.contains(r#"href="runs/run-1.html""#), "{index}");
    assert!(index.contains(r#"href="runs/run-2.html""#), "{index}");
    let links = hrefs(&index);
    assert_eq!(links.len(), 5, "{links:?}");
    for l in &links {
        assert!(!l.contains("://") && !l.starts_with('/'), "{l}");
        assert!(dir.join(l).is_file(), "{l} does not resolve");
    }
    for needle in ["http://", "https://", "src=\"", "<link"] {
        assert!(!index.contains(needle), "{needle} in the index");
    }
    // A run page is `store report`'s page of the run.
    let run_page = read(&dir.join("runs/run-1.html"));
    assert!(run_page.contains(r#"id="store-data""#));
    assert!(run_page.contains("<title>shared-wf run run-1</title>"));

    // The shared input's page: both runs consumed the one version; escaped.
    let shared = dir.join(store::site::file_page("shared.txt"));
    assert!(links.iter().any(|l| dir.join(l) == shared), "{links:?}");
    let page = read(&shared);
    assert_eq!(page.matches(r#"<section class="version""#).count(), 1);
    assert_eq!(page.matches(r#"<tr class="use consumed">"#).count(), 2);
    for run in ["run-1", "run-2"] {
        assert!(
            page.contains(&format!(r#"href="../runs/{run}.html""#)),
            "{page}"
        );
    }
    for l in hrefs(&page) {
        assert!(shared.parent().expect("files").join(&l).is_file(), "{l}");
    }
    // An output's page: the run that produced it, and no other.
    let out = read(&dir.join(store::site::file_page("out-run-1.txt")));
    assert_eq!(out.matches(r#"<tr class="use produced">"#).count(), 1);
    assert!(out.contains(r#"href="../runs/run-1.html""#), "{out}");
    assert!(!out.contains("run-2"), "{out}");

    // In a browser, from file://: no console error, a row per run.
    if let Some(browser) = &browser {
        let (dom, errors) = open(
            browser,
            &dir.join("index.html"),
            &screenshots().join("site-index.png"),
        );
        assert!(errors.is_empty(), "console: {errors:?}");
        assert_eq!(
            dom.matches(r#"<tr class="run sealed">"#).count(),
            2,
            "{dom}"
        );
        assert_eq!(dom.matches(r#"<tr class="file">"#).count(), 3, "{dom}");
        let (dom, errors) = open(browser, &shared, &screenshots().join("site-file.png"));
        assert!(errors.is_empty(), "console: {errors:?}");
        assert_eq!(dom.matches(r#"<tr class="use consumed">"#).count(), 2);
    }

    // Again: nothing changed, nothing is written (every page keeps its modification time).
    let before = pages(&dir);
    std::thread::sleep(Duration::from_millis(1100));
    let (r, err) = site(&ws);
    assert!(
        err.contains("2 runs (0 written, 2 unchanged), 3 file pages (0 written)"),
        "{err}"
    );
    assert_eq!(r["runs_written"], serde_json::json!([]));
    assert_eq!(r["index_written"], false);
    assert_eq!(pages(&dir), before);
    // Quiet: nothing on stderr.
    let o = ws.run(&["site", "-q", "-o", "site"]);
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A new run: only its page is written; the index and the shared input's page now name it.
    run_with_shared_input(&ws, "run-3");
    let (r, err) = site(&ws);
    assert!(
        err.contains("3 runs (1 written, 2 unchanged), 4 file pages (2 written)"),
        "{err}"
    );
    assert_eq!(r["runs_written"], serde_json::json!(["run-3"]));
    let after = pages(&dir);
    for (p, t) in &before {
        let now = after.iter().find(|(q, _)| q == p).expect("page kept").1;
        let name = p.strip_prefix(&dir).expect("in site").to_string_lossy();
        let expect_rewritten = name == "index.html" || p == &shared;
        assert_eq!(now != *t, expect_rewritten, "{name}");
    }
    let index = read(&dir.join("index.html"));
    assert_eq!(index.matches(r#"<tr class="run sealed">"#).count(), 3);
    assert_eq!(
        read(&shared)
            .matches(r#"<tr class="use consumed">"#)
            .count(),
        3
    );

    // A run page deleted by hand is written again, even though the manifest knows it.
    std::fs::remove_file(dir.join("runs/run-2.html")).expect("rm");
    let (r, _) = site(&ws);
    assert_eq!(r["runs_written"], serde_json::json!(["run-2"]));
    assert!(dir.join("runs/run-2.html").is_file());
}

#[test]
fn an_open_run_page_is_rewritten_when_the_run_changes() {
    let ws = Ws::new();
    ws.write("a.txt", b"a\n");
    ws.write("b.txt", b"b\n");
    let add = |path: &str| {
        ws.ok(&[
            "add", "-q", "--no-env", "--role", "input", "--wf", WF, "--run", "open-1", "--job",
            "j", path,
        ]);
    };
    add("a.txt");
    // A name that must be escaped is, in the index and on its page (named by its hash).
    ws.write("x&<y>\".txt", b"odd\n");
    add("x&<y>\".txt");
    let (r, _) = site(&ws);
    assert_eq!(r["runs_written"], serde_json::json!(["open-1"]));
    let index = read(&ws.p("site/index.html"));
    assert!(index.contains("x&amp;&lt;y&gt;&quot;.txt"), "{index}");
    assert!(!index.contains("x&<y>"), "{index}");
    let odd = store::site::file_page("x&<y>\".txt");
    assert!(index.contains(&format!(r#"href="{odd}""#)), "{index}");
    assert!(read(&ws.p("site").join(&odd)).contains("<h1>x&amp;&lt;y&gt;&quot;.txt</h1>"));
    assert_eq!(
        index.matches(r#"<tr class="run open">"#).count(),
        1,
        "{index}"
    );
    let (r, _) = site(&ws);
    assert_eq!(r["runs_written"], serde_json::json!([]));
    // A record more: the page is written again, then once sealed too.
    add("b.txt");
    let (r, _) = site(&ws);
    assert_eq!(r["runs_written"], serde_json::json!(["open-1"]));
    assert!(read(&ws.p("site/runs/open-1.html")).contains("b.txt"));
    ws.ok(&["seal", "open-1"]);
    let (r, _) = site(&ws);
    assert_eq!(r["runs_written"], serde_json::json!(["open-1"]));
    assert!(read(&ws.p("site/index.html")).contains(r#"<tr class="run sealed">"#));
}

#[test]
fn pages_of_runs_and_paths_no_longer_in_the_store_are_removed_and_nothing_else() {
    let first = Ws::new();
    first.write("shared.txt", b"shared\n");
    run_with_shared_input(&first, "run-1");
    let (r, _) = site(&first);
    assert_eq!(r["runs_written"], serde_json::json!(["run-1"]));
    let dir = first.p("site");
    let out = store::site::file_page("out-run-1.txt");
    assert!(dir.join(&out).is_file());
    // Pages the site did not write stay, whatever their names.
    std::fs::write(dir.join("runs/mine.html"), "mine").expect("write");
    std::fs::write(dir.join("notes.txt"), "notes").expect("write");

    // Another store (a clone that holds other runs) writes into the same folder.
    let second = Ws::new();
    second.write("shared.txt", b"shared\n");
    run_with_shared_input(&second, "run-2");
    let site_dir = dir.to_str().expect("utf-8 path");
    let o = second.run(&["site", "-o", site_dir, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("2 pages of runs or paths no longer in the store removed"),
        "{err}"
    );
    let r = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        r["removed"],
        serde_json::json!(["runs/run-1.html", out.clone()])
    );
    assert!(!dir.join("runs/run-1.html").exists());
    assert!(!dir.join(&out).exists());
    assert!(dir.join("runs/run-2.html").is_file());
    assert!(dir.join(store::site::file_page("shared.txt")).is_file());
    assert_eq!(read(&dir.join("runs/mine.html")), "mine");
    assert_eq!(read(&dir.join("notes.txt")), "notes");
    let index = read(&dir.join("index.html"));
    assert!(!index.contains("run-1"), "{index}");
    // No dangling link: every page the index names exists.
    for href in hrefs(&index) {
        assert!(dir.join(&href).is_file(), "{href}");
    }
}
