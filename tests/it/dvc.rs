//! DVC habits (issue 15): `store checkout PATH...` restores tracked paths in place, to their
//! last added version or an earlier one, never over local changes without `--force`.

use crate::common::Ws;

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
    // Back to the last added version; a deleted file comes back.
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
