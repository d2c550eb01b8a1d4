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
    let runs = ws.ok(&["runs"]);
    let line = runs.lines().next().expect("a run");
    // A date for people, not epoch seconds.
    assert!(!line.contains(" t="), "{line}");
    let year = line
        .split_whitespace()
        .find(|w| w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-')
        .expect("a YYYY-MM-DD date");
    assert!(year.starts_with("20"), "{line}");
    assert!(
        line.contains(" UTC") && line.contains("2 jobs recording") && line.contains("3 records"),
        "{line}"
    );
    // Checkout counts what lands on disk.
    let out = ws.ok(&["checkout", "r-1", "--to", "restored", "--link", "copy"]);
    assert!(out.contains("restored 2 files"), "{out}");
    assert!(out.contains("2 copied"), "{out}");
    assert_eq!(files_on_disk(&ws.p("restored")), 2);
    // A clean status says so.
    ws.ok(&["add", "data"]);
    assert_eq!(ws.ok(&["status"]).trim(), "nothing changed");
    // The checkout's argument is a run or a hash.
    let help = ws.ok(&["checkout", "--help"]);
    assert!(help.contains("<RUN|HASH>"), "{help}");
}
