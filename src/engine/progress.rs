//! Progress on a terminal: every long command draws a bar on stderr when it is a terminal and
//! progress is wanted (`--quiet` turns it off), and nothing at all otherwise, so piped output
//! and logs stay clean. The one module that names `indicatif`.

use std::io::IsTerminal;

pub use indicatif::ProgressBar;
use indicatif::ProgressStyle;

fn bar(show: bool, total: u64, msg: &'static str, template: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg);
    pb
}

/// A bar counting bytes (`adding [====>   ] 1.2 GiB/3.4 GiB 410 MiB/s eta 5s`).
pub fn bytes(show: bool, total: u64, msg: &'static str) -> ProgressBar {
    bar(
        show,
        total,
        msg,
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
}

/// A bar counting things (`jobs [====>     ] 12/40 eta 1m`).
pub fn items(show: bool, total: u64, msg: &'static str) -> ProgressBar {
    bar(show, total, msg, "{msg} [{bar:30}] {pos}/{len} eta {eta}")
}

/// A bar that shows nothing: for callers without a terminal to draw on.
pub fn hidden() -> ProgressBar {
    ProgressBar::hidden()
}
