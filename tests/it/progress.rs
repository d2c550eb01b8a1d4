//! Output for scripts and for people: every command a script reads has `--json`, and every
//! command that can take long draws progress on a terminal (a real pseudo-terminal, made by
//! util-linux's `script`), and nothing when its output is piped or with `-q`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::{pseudo_random, Ws};

/// The commands whose output a script reads, and the flag that makes it JSON.
const JSON: &[(&str, &str)] = &[
    ("add", "--json"),
    ("augment", "--json"),
    ("checkout", "--json"),
    ("clone", "--json"),
    ("dag", "--format"),
    ("diff", "--json"),
    ("env", "--json"),
    ("gc", "--json"),
    ("init", "--json"),
    ("lineage", "--json"),
    ("log", "--json"),
    ("ls", "--json"),
    ("pull", "--json"),
    ("push", "--json"),
    ("reindex", "--json"),
    ("report", "--json"),
    ("rerun", "--json"),
    ("run", "--json"),
    ("runs", "--json"),
    ("seal", "--json"),
    ("show", "--json"),
    ("site", "--json"),
    ("stats", "--json"),
    ("status", "--json"),
    ("sync", "--json"),
    ("verify", "--json"),
];

#[test]
fn every_command_a_script_reads_prints_json() {
    let ws = Ws::new();
    for (cmd, flag) in JSON {
        let help = ws.ok(&[cmd, "--help"]);
        assert!(help.contains(flag), "store {cmd} has no {flag}:\n{help}");
    }
    // And what they print is JSON: the ones that need no remote, on a small run.
    ws.write("data/a.txt", b"a\n");
    let add: serde_json::Value =
        serde_json::from_str(&ws.ok(&["add", "--json", "data"])).expect("add --json");
    assert!(add.is_array() || add.is_object(), "{add}");
    let w = tiny_workflow(&ws);
    let run: serde_json::Value =
        serde_json::from_str(&ws.ok(&["run", "-q", &w, "--policy", "full", "--json"]))
            .expect("run --json");
    assert_eq!(run["workflow"], "tiny");
    assert_eq!(run["main_jobs"], 2);
    assert_eq!(
        run["succeeded"].as_u64(),
        Some(run["main_jobs"].as_u64().expect("n") + run["tracking_jobs"].as_u64().expect("n"))
    );
    let id = run["run_id"].as_str().expect("run id");
    let report: serde_json::Value =
        serde_json::from_str(&ws.ok(&["report", id, "-o", "r.html", "--json"])).expect("report");
    assert_eq!(report["run_id"], id);
    assert_eq!(
        report["bytes"].as_u64(),
        Some(std::fs::metadata(ws.p("r.html")).expect("page").len())
    );
    let reindex: serde_json::Value =
        serde_json::from_str(&ws.ok(&["reindex", "--json"])).expect("reindex");
    assert!(reindex["packs"].as_u64().expect("packs") > 0, "{reindex}");
    let other = Ws::bare();
    let init: serde_json::Value =
        serde_json::from_str(&other.ok(&["init", "--json"])).expect("init");
    assert_eq!(init["created"], true);
    assert!(PathBuf::from(init["store"].as_str().expect("dir")).is_dir());
}

/// A two-job Pegasus workflow that runs anywhere (`/bin/sleep`); returns its path.
fn tiny_workflow(ws: &Ws) -> String {
    ws.write(
        "tiny.yml",
        b"pegasus: '5.0'\nname: tiny\ntransformationCatalog:\n  transformations:\n  - name: sleep\n    sites: [{name: local, pfn: /bin/sleep, type: installed}]\njobs:\n- {type: job, name: sleep, id: J1, arguments: ['0.2'], uses: []}\n- {type: job, name: sleep, id: J2, arguments: ['0.2'], uses: []}\njobDependencies: [{id: J1, children: [J2]}]\n",
    );
    "tiny.yml".to_string()
}

/// `store ARGS` in a pseudo-terminal: what it drew there (stdout and stderr together).
fn on_terminal(ws: &Ws, args: &[&str]) -> String {
    let line = std::iter::once(env!("CARGO_BIN_EXE_store"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(ws.path())
        .env_remove("STORE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    assert!(
        o.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn have_script() -> bool {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        crate::skips::skip(
            "terminal",
            "no `script` (util-linux) to make a pseudo-terminal",
            false,
        );
    }
    ok
}

#[test]
fn long_commands_draw_progress_on_a_terminal_and_nothing_when_piped_or_quiet() {
    if !have_script() {
        return;
    }
    let ws = Ws::new();
    ws.write("big.bin", &pseudo_random(40 << 20, 7));
    let w = tiny_workflow(&ws);
    // (arguments, what its bar says); in this order, each on what the one before left.
    let steps: Vec<(Vec<&str>, &str)> = vec![
        (vec!["add", "big.bin"], "adding"),
        (vec!["verify"], "verifying"),
        (
            vec!["run", &w, "--policy", "full", "--run-id", "tiny-1"],
            "jobs",
        ),
        (vec!["checkout", "tiny-1", "--to", "restored"], "restoring"),
        (vec!["site", "-o", "site"], "run pages"),
        (vec!["reindex"], "reading packs"),
        (vec!["gc", "--yes"], "scanning packs"),
    ];
    for (args, bar) in &steps {
        let drawn = on_terminal(&ws, args);
        assert!(
            drawn.contains(&format!("{bar} [")),
            "store {}: no `{bar}` bar on a terminal:\n{drawn}",
            args.join(" ")
        );
        // Quiet: no bar.
        let mut quiet = vec!["-q"];
        quiet.extend(args.iter().copied());
        if args[0] == "run" {
            // A second run of the workflow needs another run ID.
            quiet = vec!["-q", "run", &w, "--policy", "full"];
        }
        if args[0] == "checkout" {
            quiet = vec!["-q", "checkout", "tiny-1", "--to", "restored-q"];
        }
        let drawn = on_terminal(&ws, &quiet);
        assert!(
            !drawn.contains(&format!("{bar} [")),
            "store {}: a bar with -q:\n{drawn}",
            quiet.join(" ")
        );
    }
    // Piped: no bar and no terminal control sequence, on either stream.
    ws.write("big2.bin", &pseudo_random(40 << 20, 8));
    for args in [
        vec!["add", "big2.bin"],
        vec!["verify"],
        vec!["checkout", "tiny-1", "--to", "restored-p"],
        vec!["gc", "--yes"],
    ] {
        let o = ws.run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for stream in [&o.stdout, &o.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains('\u{1b}'), "store {}: {text}", args.join(" "));
            assert!(!text.contains(" eta "), "store {}: {text}", args.join(" "));
        }
    }
}
