//! `store site`: a static catalog of the local store, a folder of self-contained HTML pages
//! (inline CSS, no script, no network, relative links only, so it works from `file://` and
//! from any static web server):
//!
//! - `index.html`: every workflow with its runs (ID, status, local date, jobs, files, size, as
//!   `store runs` counts them), each linking to its page, and every tracked file;
//! - `runs/<run id>.html`: the run's report, [`report::html`](crate::report::html) as
//!   `store report` writes it;
//! - `files/<name>-<hash of the path>.html`: a tracked path (across runs) with each of its
//!   versions and the runs and jobs that consumed or produced it, from
//!   [`Store::lineage`].
//!
//! The site is regenerated incrementally: `.store-site.json` keeps, per run, a hash of what
//! its page was made from (the snapshot with its MLflow links, and the generator), and a run
//! page is rendered again only when that changed or the page is missing. Every page is
//! written atomically, and only when its bytes differ from what is on disk (an unchanged
//! page keeps its modification time).
//!
//! Layer: above the report (it writes report pages), runs (snapshots, counts, lineage) and
//! MLflow (pending marks and links); used by the CLI.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::hash::Hash;
use crate::engine::store::Store;
use crate::engine::util::{atomic_write, human_bytes};
use crate::error::{Error, Result};
use crate::report::{h, html as report_html, transformations};
use crate::run::{LineageRow, Role, RunSnapshot, RunSummary};

/// The manifest of what was written, in the site's folder.
pub const MANIFEST: &str = ".store-site.json";

/// What made the pages: a run page made by another version is made again.
const GENERATOR: &str = concat!("store ", env!("CARGO_PKG_VERSION"), " site 2");

/// How to write the site.
#[derive(Clone, Copy, Debug)]
pub struct SiteOptions {
    /// A time (ns since the epoch) as people read it (the CLI's local time).
    pub time: fn(i64) -> String,
    /// Count the run pages on a terminal.
    pub progress: bool,
}

/// What a site write did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteReport {
    /// The site's folder.
    pub dir: PathBuf,
    /// Runs in the store (each has a page).
    pub runs: usize,
    /// The runs whose page was written this time.
    pub runs_written: Vec<String>,
    /// The runs whose page was left as it was.
    pub runs_unchanged: usize,
    /// File pages (one per tracked path).
    pub file_pages: usize,
    /// File pages written this time (the others were unchanged).
    pub file_pages_written: usize,
    /// Whether `index.html` was written this time.
    pub index_written: bool,
    /// Pages of runs and paths the store no longer has, removed (only pages this site wrote
    /// before, as its manifest lists them).
    pub removed: Vec<String>,
}

/// `.store-site.json`.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    /// What made the pages.
    generator: String,
    /// Run ID -> the hash of what its page was made from.
    runs: BTreeMap<String, String>,
    /// The file pages written (paths relative to the site's folder).
    #[serde(default)]
    files: BTreeSet<String>,
}

/// Writes `data` to `path` atomically unless the file already holds exactly those bytes;
/// true if it wrote.
fn write_if_changed(path: &Path, data: &[u8]) -> Result<bool> {
    match std::fs::read(path) {
        Ok(old) if old == data => Ok(false),
        _ => atomic_write(path, data).map(|()| true),
    }
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// The page of a run, relative to the site's folder (run IDs are safe file names).
fn run_page(run_id: &str) -> String {
    format!("runs/{run_id}.html")
}

/// The page of a tracked path, relative to the site's folder: a readable part of the path
/// and a hash of it, the same on every write.
pub fn file_page(path: &str) -> String {
    let mut slug: String = path
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if slug.starts_with('.') {
        slug.replace_range(0..1, "_");
    }
    let digest = blake3::hash(path.as_bytes()).to_hex();
    format!("files/{slug}-{}.html", &digest[..16])
}

/// The first 8 characters of a run ID.
fn short_id(run_id: &str) -> String {
    run_id.chars().take(8).collect()
}

/// What a run page is made from, as a hash: the generator and the snapshot it renders.
fn page_key(snap: &RunSnapshot) -> Result<String> {
    let body = serde_json::to_vec(snap).map_err(|e| Error::Invalid(format!("site JSON: {e}")))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(GENERATOR.as_bytes());
    hasher.update(b"\n");
    hasher.update(&body);
    Ok(hasher.finalize().to_hex().to_string())
}

fn read_manifest(dir: &Path) -> Manifest {
    // A missing or unreadable manifest only means every run page is made again.
    std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .unwrap_or_default()
}

/// One version of a tracked path and who used it.
struct Version {
    hash: Hash,
    size: u64,
    lfns: BTreeSet<String>,
    rows: Vec<LineageRow>,
}

/// A tracked path across runs.
#[derive(Default)]
struct Tracked {
    versions: Vec<Version>,
    runs: BTreeSet<String>,
}

/// Writes (or brings up to date) the site of `store` in `dir`.
pub fn write(store: &Store, dir: &Path, opts: &SiteOptions) -> Result<SiteReport> {
    mkdir(&dir.join("runs"))?;
    mkdir(&dir.join("files"))?;
    let old = read_manifest(dir);
    let mut manifest = Manifest {
        generator: GENERATOR.to_string(),
        runs: BTreeMap::new(),
        files: BTreeSet::new(),
    };
    // A page made by another version of the generator is made again (but the pages it lists
    // are still this site's, and removed when their run or path is gone).
    let same_generator = old.generator == GENERATOR;
    let mut report = SiteReport {
        dir: dir.to_path_buf(),
        ..SiteReport::default()
    };
    let summaries = store.runs(None)?;
    let mlflow_pending: BTreeSet<String> = store.mlflow_pending()?.into_iter().collect();

    // Run pages, and every (path, version) of every run, oldest run first.
    let mut order: Vec<&RunSummary> = summaries.iter().collect();
    order.sort_by(|a, b| (a.run.created_ns, &a.run.run_id).cmp(&(b.run.created_ns, &b.run.run_id)));
    let mut versions: Vec<(String, Hash, u64, String)> = Vec::new();
    let pb = crate::engine::progress::items(opts.progress, order.len() as u64, "run pages");
    for summary in order {
        pb.inc(1);
        let row = &summary.run;
        // The run ID becomes a file name: one that is not a single path component (from a
        // damaged or hostile index) is refused, not written somewhere else.
        if !crate::run::valid_name(&row.run_id) {
            return Err(Error::corrupt(
                "run index",
                crate::run::name_problem("run ID", &row.run_id),
            ));
        }
        let mut snap = store.run_snapshot(row)?;
        store.mlflow_overlay(&mut snap)?;
        store.published_overlay(&mut snap)?;
        let key = page_key(&snap)?;
        let page = dir.join(run_page(&row.run_id));
        let unchanged = same_generator && old.runs.get(&row.run_id) == Some(&key) && page.is_file();
        let write = |page: &Path| -> Result<bool> {
            let html = report_html(&snap, None, &transformations(store, &snap))?;
            write_if_changed(page, html.as_bytes())
        };
        if unchanged || !write(&page)? {
            report.runs_unchanged += 1;
        } else {
            report.runs_written.push(row.run_id.clone());
        }
        manifest.runs.insert(row.run_id.clone(), key);
        report.runs += 1;
        for e in snap
            .entries
            .into_iter()
            .filter(|e| e.role != Role::Environment)
        {
            versions.push((e.path, e.hash, e.size, e.lfn));
        }
    }

    pb.finish_and_clear();
    // File pages: each path, its versions in the order they first appear, and who used each
    // (the lineage of the version, at that path).
    let mut lineage: BTreeMap<Hash, Vec<LineageRow>> = BTreeMap::new();
    let mut files: BTreeMap<String, Tracked> = BTreeMap::new();
    for (path, hash, size, lfn) in versions {
        let t = files.entry(path.clone()).or_default();
        if let Some(v) = t.versions.iter_mut().find(|v| v.hash == hash) {
            v.lfns.insert(lfn);
            continue;
        }
        if let Entry::Vacant(slot) = lineage.entry(hash) {
            slot.insert(store.lineage(&hash)?);
        }
        let rows: Vec<LineageRow> = lineage
            .get(&hash)
            .map(|rows| rows.iter().filter(|r| r.path == path).cloned().collect())
            .unwrap_or_default();
        t.runs.extend(rows.iter().map(|r| r.run_id.clone()));
        t.versions.push(Version {
            hash,
            size,
            lfns: BTreeSet::from([lfn]),
            rows,
        });
    }
    for (path, t) in &files {
        let name = file_page(path);
        if write_if_changed(&dir.join(&name), file_html(path, t).as_bytes())? {
            report.file_pages_written += 1;
        }
        manifest.files.insert(name);
        report.file_pages += 1;
    }

    // Pages of runs and paths that are gone: only names this site wrote, and only names it
    // would write (a damaged manifest cannot point outside the folder).
    let gone_runs = old
        .runs
        .keys()
        .filter(|r| !manifest.runs.contains_key(*r) && crate::run::valid_name(r))
        .map(|r| run_page(r));
    let gone_files = old.files.iter().filter(|f| {
        !manifest.files.contains(*f)
            && f.strip_prefix("files/")
                .is_some_and(|n| crate::run::valid_name(n) && n.ends_with(".html"))
    });
    for name in gone_runs.chain(gone_files.cloned()) {
        match std::fs::remove_file(dir.join(&name)) {
            Ok(()) => report.removed.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir.join(&name), e)),
        }
    }

    let index = index_html(&summaries, &mlflow_pending, &files, opts);
    report.index_written = write_if_changed(&dir.join("index.html"), index.as_bytes())?;
    let m = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Invalid(format!("site manifest: {e}")))?;
    write_if_changed(&dir.join(MANIFEST), &m)?;
    Ok(report)
}

/// A page: the shell around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{CSS}</style></head>
<body>
{body}
</body></html>
"#,
        title = h(title),
    )
}

fn index_html(
    runs: &[RunSummary],
    mlflow_pending: &BTreeSet<String>,
    files: &BTreeMap<String, Tracked>,
    opts: &SiteOptions,
) -> String {
    let mut by_wf: BTreeMap<&str, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        // `runs` lists the newest first; each workflow keeps that order.
        by_wf.entry(r.run.workflow.as_str()).or_default().push(r);
    }
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<header><h1>Store catalog</h1><p class="counts">{} workflows, {} runs, {} tracked files</p></header><main>"#,
        by_wf.len(),
        runs.len(),
        files.len()
    );
    body.push_str(r#"<section id="workflows"><h2>Workflows</h2>"#);
    if runs.is_empty() {
        body.push_str(r#"<p class="empty">No runs yet.</p>"#);
    }
    for (wf, wf_runs) in &by_wf {
        let _ = write!(
            body,
            r#"<section class="workflow"><h3>{wf}</h3><table><thead><tr><th>run</th><th>status</th><th>date</th><th class="num">jobs</th><th class="num">files</th><th class="num">size</th></tr></thead><tbody>"#,
            wf = h(wf)
        );
        for r in wf_runs {
            let id = &r.run.run_id;
            let mut status = vec![r.status.to_string()];
            if let Some(p) = &r.pending {
                status.push(p.describe());
            }
            if mlflow_pending.contains(id) {
                status.push("MLflow pending".to_string());
            }
            let _ = write!(
                body,
                r#"<tr class="run {st}"><td><a href="{href}" title="{id}"><code>{short}</code></a></td><td>{status}</td><td>{date}</td><td class="num">{jobs}</td><td class="num">{files}</td><td class="num">{size}</td></tr>"#,
                st = h(r.status),
                href = h(&run_page(id)),
                id = h(id),
                short = h(&short_id(id)),
                status = h(&status.join("; ")),
                date = h(&(opts.time)(r.run.created_ns)),
                jobs = r.counts.jobs,
                files = r.counts.files,
                size = human_bytes(r.counts.bytes),
            );
        }
        body.push_str("</tbody></table></section>");
    }
    body.push_str(r#"</section><section id="files"><h2>Files</h2>"#);
    if files.is_empty() {
        body.push_str(r#"<p class="empty">No tracked files.</p>"#);
    } else {
        body.push_str(r#"<table><thead><tr><th>path</th><th class="num">versions</th><th class="num">runs</th></tr></thead><tbody>"#);
    }
    for (path, t) in files {
        let _ = write!(
            body,
            r#"<tr class="file"><td><a href="{href}">{path}</a></td><td class="num">{v}</td><td class="num">{n}</td></tr>"#,
            href = h(&file_page(path)),
            path = h(path),
            v = t.versions.len(),
            n = t.runs.len(),
        );
    }
    if !files.is_empty() {
        body.push_str("</tbody></table>");
    }
    body.push_str("</section></main>");
    page("Store catalog", &body)
}

fn file_html(path: &str, t: &Tracked) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<header><p><a href="../index.html">catalog</a></p><h1>{p}</h1><p class="counts">{v} versions, {n} runs</p></header><main>"#,
        p = h(path),
        v = t.versions.len(),
        n = t.runs.len(),
    );
    for v in &t.versions {
        let hex = v.hash.to_hex();
        let names: Vec<String> = v.lfns.iter().map(|l| h(l)).collect();
        let _ = write!(
            body,
            r#"<section class="version" id="v-{hex}"><h2>version <code title="{hex}">{short}</code> <small>{size}; logical name {names}</small></h2><table><thead><tr><th>workflow</th><th>run</th><th>job</th><th>role</th><th>direction</th></tr></thead><tbody>"#,
            short = v.hash.short(),
            size = human_bytes(v.size),
            names = names.join(", "),
        );
        for r in &v.rows {
            let _ = write!(
                body,
                r#"<tr class="use {dir}"><td>{wf}</td><td><a href="../{href}" title="{id}"><code>{short}</code></a></td><td>{job}</td><td>{role}</td><td>{dir}</td></tr>"#,
                dir = h(&r.direction),
                wf = h(&r.workflow),
                href = h(&run_page(&r.run_id)),
                id = h(&r.run_id),
                short = h(&short_id(&r.run_id)),
                job = h(&r.job_id),
                role = h(&r.role),
            );
        }
        body.push_str("</tbody></table></section>");
    }
    body.push_str("</main>");
    page(&format!("{path}: lineage"), &body)
}

const CSS: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{padding:12px 20px;background:#f5f5f5;border-bottom:1px solid #ddd}
header p{margin:4px 0}
h1{margin:0;font-size:20px} h1 small,h2 small{color:#666;font-weight:normal}
main{padding:0 20px 20px} h2{font-size:16px;margin:18px 0 6px} h3{font-size:15px;margin:14px 0 4px}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right}
a{color:#1565c0;text-decoration:none} a:hover{text-decoration:underline}
tr.run.open td:nth-child(2){color:#ef6c00}
tr.use.produced td:last-child{color:#1565c0} tr.use.consumed td:last-child{color:#2e7d32}
.counts{color:#555} .empty{color:#777}
"#;
