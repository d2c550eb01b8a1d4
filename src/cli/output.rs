//! What commands print, shared: `--json` documents, the human forms of sizes, times and
//! names, and the warnings of a pull. Data goes to stdout, messages to stderr.

use std::io::Write;

// The library escapes names and formats sizes the same way in its own messages.
pub use store::util::{human_bytes, printable};

/// Writes `v` to stdout as pretty JSON and a newline (the `--json` form of every command).
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Whole seconds since the epoch of a nanosecond timestamp, as human output shows times
/// (`t=SECS`).
pub fn unix_secs(ns: i64) -> i64 {
    ns / 1_000_000_000
}

/// A time for people: `2026-12-04 19:39 UTC` (JSON keeps nanoseconds since the epoch).
pub fn human_time(ns: i64) -> String {
    let (y, m, d, hh, mm, _) = store::util::civil_utc(ns.div_euclid(1_000_000_000));
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// `1 file`, `2 files`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One root (a version of a tracked path) as JSON, for `ls` and `log`.
pub fn root_json(r: &store::index::Root) -> serde_json::Value {
    serde_json::json!({"path": r.path, "kind": r.kind, "hash": r.hash.to_hex(), "size": r.size, "time_ns": r.time_ns})
}

/// Warns about the damage a pull met on its remote and what it did not adopt for it; true if
/// there was any (the command then exits with [`store::exit::PARTIAL`]).
pub fn warn_damage(r: &store::PullReport) -> bool {
    for p in &r.damaged {
        let object = p
            .object
            .as_deref()
            .map(|o| format!(" object {o}"))
            .unwrap_or_default();
        eprintln!(
            "store: warning: remote {}: damaged {}{object}: {}",
            r.remote,
            p.pack,
            printable(&p.detail)
        );
    }
    for s in &r.skipped {
        let object = s
            .object
            .as_deref()
            .map(|o| format!(" object {o}"))
            .unwrap_or_default();
        eprintln!(
            "store: warning: {} not adopted: it needs {}{object} of remote {}: {}",
            printable(&s.what),
            s.key,
            r.remote,
            printable(&s.detail)
        );
    }
    !(r.damaged.is_empty() && r.skipped.is_empty())
}
