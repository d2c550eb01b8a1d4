//! DVC habits (issue 15): `store checkout PATH...` restores tracked paths in place, to their
//! last added version or an earlier one, never over local changes without `--force`;
//! `store.lock` and `.gitignore` make `git checkout <commit> && store checkout` give that
//! commit's data, on the first machine and on a git clone with a remote.

use crate::common::{git, Ws};

#[test]
fn checkout_of_tracked_paths_restores_them_in_place() {
    let ws = Ws::new();
    ws.write("data/a.csv", b"a,1\n");
    ws.write("data/sub/b.csv", b"b,1\n");
    ws.write("model.txt", b"v1\n");
    let v1 = ws.add("data");
    let m1 = ws.add("model.txt");
    ws.write("data/a.csv", b"a,2\n");
    ws.write("model.txt", b"v2\n");
    let v2 = ws.add("data");
    ws.add("model.txt");
    assert_ne!(v1, v2);
    // An earlier version, in place, both paths at once where each has that version.
    ws.ok(&["checkout", "data", "--rev", &v1[..12]]);
    assert_eq!(std::fs::read(ws.p("data/a.csv")).expect("a"), b"a,1\n");
    assert_eq!(std::fs::read(ws.p("data/sub/b.csv")).expect("b"), b"b,1\n");
    // An in-place checkout counts as an add of what it restored: `status` is clean and
    // store.lock names it.
    assert_eq!(ws.ok(&["status"]).trim(), "nothing changed");
    let lock = std::fs::read_to_string(ws.p("store.lock")).expect("lock");
    assert!(lock.contains(&v1) && !lock.contains(&v2), "{lock}");
    // Back to v2; a deleted file comes back (its version is store.lock's).
    ws.ok(&["checkout", "data", "--rev", &v2]);
    std::fs::remove_file(ws.p("model.txt")).expect("rm");
    ws.ok(&["checkout", "data", "model.txt"]);
    assert_eq!(std::fs::read(ws.p("data/a.csv")).expect("a"), b"a,2\n");
    assert_eq!(std::fs::read(ws.p("model.txt")).expect("m"), b"v2\n");
    // Local changes since the last add are not overwritten without --force.
    ws.write("model.txt", b"my edit\n");
    let o = ws.run(&["checkout", "model.txt", "--rev", &m1]);
    assert_eq!(o.status.code(), Some(store::exit::BAD_PATH));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("model.txt"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(ws.p("model.txt")).expect("m"), b"my edit\n");
    ws.ok(&["checkout", "model.txt", "--rev", &m1, "--force"]);
    assert_eq!(std::fs::read(ws.p("model.txt")).expect("m"), b"v1\n");
    // A version of another path is refused, naming both.
    let o = ws.run(&["checkout", "model.txt", "--rev", &v1]);
    assert_eq!(o.status.code(), Some(store::exit::USAGE));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a version of model.txt"));
    // Already there: nothing written.
    let o = ws.run(&["checkout", "data"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already at"));
}

#[test]
fn store_lock_and_gitignore_let_git_checkout_choose_the_data() {
    let ws = Ws::new();
    git(ws.path(), &["init", "-q"]);
    ws.write("data/a.csv", b"a,1\n");
    ws.write("data/sub/b.csv", b"b,1\n");
    ws.write("model.txt", b"v1\n");
    ws.write("train.py", b"print('train')\n");
    let d1 = ws.add("data");
    let m1 = ws.add("model.txt");
    // store.lock: workspace-relative paths, hash, kind, size, files.
    let lock = crate::common::yaml_as_json(&ws.p("store.lock"));
    assert_eq!(lock["version"], 1, "{lock}");
    assert_eq!(lock["paths"]["data"]["hash"], d1.as_str(), "{lock}");
    assert_eq!(lock["paths"]["data"]["kind"], "tree");
    assert_eq!(lock["paths"]["data"]["size"], 8);
    assert_eq!(lock["paths"]["data"]["files"], 2);
    assert_eq!(lock["paths"]["model.txt"]["hash"], m1.as_str());
    assert_eq!(lock["paths"]["model.txt"]["kind"], "file");
    assert_eq!(lock["paths"]["model.txt"]["files"], 1);
    // .gitignore gets each path once, however often it is added; the store ignores itself.
    ws.add("data");
    assert_eq!(
        std::fs::read_to_string(ws.p(".gitignore")).expect("gitignore"),
        "/data\n/model.txt\n"
    );
    git(ws.path(), &["add", "-A"]);
    let staged = git(ws.path(), &["diff", "--cached", "--name-only"]);
    assert_eq!(
        staged.lines().collect::<Vec<_>>(),
        [".gitignore", "store.lock", "train.py"]
    );
    git(ws.path(), &["commit", "-qm", "v1"]);

    // v2: one file changed, one new.
    ws.write("data/a.csv", b"a,2\n");
    ws.write("data/new.csv", b"n\n");
    let d2 = ws.add("data");
    git(ws.path(), &["commit", "-qam", "v2"]);
    assert_eq!(ws.ok(&["status"]).trim(), "nothing changed");

    // The v1 commit: status says the lock wants another version, checkout restores it.
    git(ws.path(), &["checkout", "-q", "HEAD~1"]);
    let st = ws.ok(&["status"]);
    assert!(st.starts_with("locked:   data ("), "{st}");
    let st: serde_json::Value = serde_json::from_str(&ws.ok(&["status", "--json"])).expect("json");
    assert_eq!(st[0]["change"], "lock_differs", "{st}");
    ws.ok(&["checkout"]);
    assert_eq!(std::fs::read(ws.p("data/a.csv")).expect("a"), b"a,1\n");
    assert!(
        !ws.p("data/new.csv").exists(),
        "a file v1 does not hold is gone"
    );
    assert_eq!(std::fs::read(ws.p("data/sub/b.csv")).expect("b"), b"b,1\n");
    assert_eq!(ws.ok(&["status"]).trim(), "nothing changed");
    assert_eq!(
        git(ws.path(), &["status", "--porcelain"]),
        "",
        "the lock is v1's again"
    );

    // Back to v2, but a local edit is never overwritten without --force.
    git(ws.path(), &["checkout", "-q", "-"]);
    ws.write("data/a.csv", b"mine\n");
    let o = ws.run(&["checkout"]);
    assert_eq!(o.status.code(), Some(store::exit::BAD_PATH));
    assert!(String::from_utf8_lossy(&o.stderr).contains("data"));
    assert_eq!(std::fs::read(ws.p("data/a.csv")).expect("a"), b"mine\n");
    ws.ok(&["checkout", "--force"]);
    assert_eq!(std::fs::read(ws.p("data/a.csv")).expect("a"), b"a,2\n");
    assert_eq!(std::fs::read(ws.p("data/new.csv")).expect("n"), b"n\n");

    // A git clone of the project, with the data on a remote: `store checkout` fetches it.
    let remote = ws.p("remote");
    ws.ok(&["remote", "add", "origin", &remote.display().to_string()]);
    ws.ok(&["push", "-q"]);
    let other = Ws::bare();
    let clone = other.p("proj");
    git(
        other.path(),
        &["clone", "-q", &ws.path().display().to_string(), "proj"],
    );
    assert!(!clone.join("data").exists());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_store"))
            .args(args)
            .current_dir(&clone)
            .output()
            .expect("store runs")
    };
    for args in [
        vec!["init", "-q"],
        vec!["remote", "add", "origin", &remote.display().to_string()],
        vec!["checkout", "-q"],
    ] {
        let o = run(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        std::fs::read(clone.join("data/a.csv")).expect("a"),
        b"a,2\n"
    );
    assert_eq!(std::fs::read(clone.join("model.txt")).expect("m"), b"v1\n");
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
    let _ = d2;

    // A lock naming a path outside the workspace is refused, naming it; nothing is written.
    std::fs::write(
        clone.join("store.lock"),
        format!("version: 1\npaths:\n  ../escape:\n    hash: {d1}\n    kind: tree\n    size: 8\n    files: 2\n"),
    )
    .expect("write");
    let o = run(&["checkout"]);
    assert_eq!(o.status.code(), Some(store::exit::CORRUPT));
    assert!(String::from_utf8_lossy(&o.stderr).contains("../escape"));
    assert!(!other.p("escape").exists());
}
