//! Skipped tests, said loudly: a test that cannot run here (a Python package, a server or root
//! is missing) calls [`skip`] and returns; under `CI=true` it fails instead. When the test
//! binary exits, one line per group of skipped tests is printed after libtest's own summary
//! ("SKIPPED 14 Pegasus tests: ..."), so a plain `cargo test` never looks like a full pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, Once};

/// Group -> (why, the tests that skipped).
type Skips = BTreeMap<&'static str, (String, BTreeSet<String>)>;

static SKIPS: Mutex<Skips> = Mutex::new(BTreeMap::new());
static AT_EXIT: Once = Once::new();

/// Records that the calling test skips `group` (e.g. "Pegasus") because of `why`; fails under
/// CI unless `even_in_ci` (a test that needs credentials no CI machine has).
pub fn skip(group: &'static str, why: &str, even_in_ci: bool) {
    assert!(
        even_in_ci || std::env::var_os("CI").is_none(),
        "CI must provide what the {group} tests need: {why}"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    eprintln!("SKIPPED {test}: {why}");
    AT_EXIT.call_once(|| {
        // SAFETY: `summary` is a plain `extern "C" fn()` that only locks a static and prints.
        unsafe {
            libc::atexit(summary);
        }
    });
    let mut s = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    s.entry(group)
        .or_insert_with(|| (why.to_string(), BTreeSet::new()))
        .1
        .insert(test);
}

extern "C" fn summary() {
    let s = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    for (group, (why, tests)) in s.iter() {
        let n = tests.len();
        let s = if n == 1 { "" } else { "s" };
        eprintln!("SKIPPED {n} {group} test{s}: {why}");
    }
}
