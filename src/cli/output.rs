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

/// A time for people, in the local time zone (`TZ`, else `/etc/localtime`):
/// `2026-12-04 19:39`. JSON keeps nanoseconds since the epoch. Where the zone cannot be
/// found the time is shown in UTC and says so.
pub fn human_time(ns: i64) -> String {
    let Ok(t) = jiff::Timestamp::from_nanosecond(i128::from(ns)) else {
        return format!("{}s since 1970 (UTC)", ns.div_euclid(1_000_000_000));
    };
    match jiff::tz::TimeZone::try_system() {
        Ok(tz) => t.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => format!("{} UTC", t.strftime("%Y-%m-%d %H:%M")),
    }
}

/// A tracked path (kept absolute in the index) as people read it: relative to the
/// workspace when inside it (`data/x`, the same on every clone), else absolute.
pub fn shown_path(path: &str, workspace: &std::path::Path) -> String {
    match std::path::Path::new(path).strip_prefix(workspace) {
        Ok(rel) if !rel.as_os_str().is_empty() => printable(&rel.to_string_lossy()).into_owned(),
        _ => printable(path).into_owned(),
    }
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
