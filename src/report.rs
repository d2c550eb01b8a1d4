//! `store report`: one self-contained HTML page for a run (no network, no CDN: inline SVG,
//! CSS and JS; it works from `file://` and as an MLflow artifact). It draws the run's graph
//! ([`Dag`]: jobs and files by dependency level, coloured by role; pan with the mouse, zoom
//! with the wheel), lists every file (logical name, path, copyable hash, size, remote and
//! MLflow links) and every job (its files, its environment record), and, against a second
//! run, marks and lists what differs. The same data is embedded as JSON (`#store-data`: the
//! snapshot as `store show --json` prints it, the graph, the comparison), so page and command
//! agree.
//!
//! Layer: above runs (it reads a snapshot, its graph and a comparison); used by the CLI.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use crate::engine::run_object::{Role, RunSnapshot};
use crate::engine::store::Store;
use crate::engine::util::human_bytes;
use crate::pegasus::Workflow;
use crate::run::dag::Dag;
use crate::run::{RunCounts, RunDiff};

/// Column and row spacing of the drawing, in pixels.
const DX: usize = 260;
const DY: usize = 34;

/// HTML-escapes text for an element or an attribute.
pub(crate) fn h(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The logical names that differ against the other run, by role (added, removed, changed,
/// renamed), and the jobs whose environment changed.
fn differing(diff: &RunDiff) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    for d in diff.roles.values() {
        names.extend(d.added.iter().cloned());
        names.extend(d.changed.iter().cloned());
        names.extend(d.renamed.iter().map(|(_, b)| b.clone()));
    }
    let jobs = diff.environment_changes.keys().cloned().collect();
    (names, jobs)
}

/// Each job's transformation, from the Pegasus workflows the run recorded (job ID -> name):
/// the report groups a large run's jobs by it. Records that are not Pegasus workflows (side
/// catalogs, other YAML) and workflows the store cannot read are passed over: without a name,
/// jobs are grouped by their IDs.
pub fn transformations(store: &Store, snap: &RunSnapshot) -> HashMap<String, String> {
    const LARGEST: u64 = 64 << 20;
    let mut names = HashMap::new();
    let mut seen = BTreeSet::new();
    for e in &snap.entries {
        if e.role != Role::Workflow || e.kind != "file" || e.size > LARGEST || !seen.insert(e.hash)
        {
            continue;
        }
        let mut bytes = Vec::new();
        if store.cat(&e.hash, &mut bytes).is_err() {
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if let Ok(wf) = Workflow::parse(&text, Path::new(&e.path)) {
            names.extend(wf.transformations());
        }
    }
    names
}

/// Formats a duration in ns for a person (`850 ms`, `12.3 s`, `4 min 05 s`).
fn human_duration(ns: i64) -> String {
    let ms = ns / 1_000_000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// The page for `snap` (with its MLflow links filled in), compared with `against` when given
/// (its run ID and the difference from it to `snap`); `transformations` (see
/// [`transformations`]) names the groups of a large run's graph.
pub fn html(
    snap: &RunSnapshot,
    against: Option<(&str, &RunDiff)>,
    transformations: &HashMap<String, String>,
) -> crate::error::Result<String> {
    let full = Dag::of(snap);
    let dag = full.grouped(transformations);
    let label_of: HashMap<&str, &str> = full
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.label.as_str()))
        .collect();
    let counts = RunCounts::of(&snap.entries);
    let (changed, env_changed) = against.map(|(_, d)| differing(d)).unwrap_or_default();
    let mut show = serde_json::to_value(snap)
        .map_err(|e| crate::error::Error::Invalid(format!("report JSON: {e}")))?;
    if let Some(m) = show.as_object_mut() {
        m.insert("counts".into(), serde_json::json!(counts));
    }
    let data = serde_json::json!({
        "show": show,
        "dag": dag,
        "against": against.map(|(id, d)| serde_json::json!({"run_id": id, "diff": d})),
    });
    // `</` never appears inside the script element.
    let data = data.to_string().replace("</", "<\\/");

    let mut svg = String::new();
    let width = (dag.nodes.iter().map(|n| n.level).max().unwrap_or(0) + 1) * DX + 40;
    let height = (dag.nodes.iter().map(|n| n.row).max().unwrap_or(0) + 1) * DY + 40;
    let pos: BTreeMap<&str, (usize, usize)> = dag
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), (20 + n.level * DX, 20 + n.row * DY)))
        .collect();
    let _ = write!(
        svg,
        r#"<svg id="dag" viewBox="0 0 {width} {height}" data-w="{width}" data-h="{height}">"#
    );
    svg.push_str(r#"<g class="edges">"#);
    for (a, b) in &dag.edges {
        let ((x1, y1), (x2, y2)) = (pos[a.as_str()], pos[b.as_str()]);
        let (x1, y1, x2, y2) = (x1 + 200, y1 + 12, x2, y2 + 12);
        let mx = (x1 + x2) / 2;
        let _ = write!(
            svg,
            r#"<path class="edge" d="M{x1},{y1} C{mx},{y1} {mx},{y2} {x2},{y2}"/>"#
        );
    }
    svg.push_str("</g>");
    for n in &dag.nodes {
        let (x, y) = pos[n.id.as_str()];
        let labels: Vec<&str> = if n.members.is_empty() {
            vec![n.label.as_str()]
        } else {
            n.members
                .iter()
                .filter_map(|m| label_of.get(m.as_str()).copied())
                .collect()
        };
        let diff = labels.iter().any(|l| {
            if n.kind == "job" {
                env_changed.contains(*l)
            } else {
                changed.contains(*l)
            }
        });
        let mut title = match (&n.path, &n.hash, n.size) {
            (Some(p), Some(hash), Some(size)) => {
                format!(
                    "{} ({})\n{p}\n{hash}\n{}",
                    n.label,
                    n.kind,
                    human_bytes(size)
                )
            }
            _ if n.kind == "job" => format!("job {}", n.label),
            _ => format!("{} ({})", n.label, n.kind),
        };
        if let Some(d) = n.duration_ns {
            let longest = if n.members.is_empty() { "" } else { "longest " };
            let _ = write!(title, "\n{longest}duration {}", human_duration(d));
        }
        if !n.members.is_empty() {
            const SHOWN: usize = 12;
            let _ = write!(title, "\n{}", labels[..labels.len().min(SHOWN)].join(", "));
            if labels.len() > SHOWN {
                let _ = write!(title, ", … ({} more)", labels.len() - SHOWN);
            }
        }
        let _ = write!(
            svg,
            r#"<g class="node {kind}{g}{d}" data-id="{id}" transform="translate({x},{y})"><title>{title}</title><rect width="200" height="24" rx="{rx}"/><text x="8" y="16">{label}</text></g>"#,
            kind = h(&n.kind),
            g = if n.members.is_empty() { "" } else { " group" },
            d = if diff { " changed" } else { "" },
            id = h(&n.id),
            rx = if n.kind == "job" { 4 } else { 12 },
            title = h(&title),
            label = h(&short(&n.label, 30)),
        );
    }
    svg.push_str("</svg>");

    let mut files = String::new();
    let mut seen = BTreeSet::new();
    for e in &snap.entries {
        if !seen.insert((e.path.as_str(), e.hash)) {
            continue;
        }
        let links: Vec<String> = e
            .remote_urls
            .iter()
            .map(|u| format!(r#"<a href="{0}">{0}</a>"#, h(u)))
            .chain(
                e.mlflow_url
                    .iter()
                    .map(|u| format!(r#"<a href="{}">MLflow</a>"#, h(u))),
            )
            .collect();
        let _ = write!(
            files,
            r#"<tr class="{role}{d}"><td>{role}</td><td>{lfn}</td><td>{path}</td><td><code class="hash" title="{hash} (click to copy)" data-hash="{hash}">{sh}</code></td><td class="num">{size}</td><td>{links}</td></tr>"#,
            role = e.role.as_str(),
            d = if changed.contains(&e.lfn) {
                " changed"
            } else {
                ""
            },
            lfn = h(&e.lfn),
            path = h(&e.path),
            hash = e.hash.to_hex(),
            sh = e.hash.short(),
            size = human_bytes(e.size),
            links = links.join(" "),
        );
    }
    let mut per_job: BTreeMap<&str, (usize, Option<String>)> = BTreeMap::new();
    for e in &snap.entries {
        let j = per_job.entry(e.job_id.as_str()).or_default();
        if e.role.as_str() == "environment" {
            j.1 = Some(e.hash.short());
        } else {
            j.0 += 1;
        }
    }
    let duration: HashMap<&str, i64> = full
        .nodes
        .iter()
        .filter_map(|n| Some((n.label.as_str(), n.duration_ns?)))
        .collect();
    let mut jobs = String::new();
    for (job, (n, env)) in &per_job {
        let _ = write!(
            jobs,
            r#"<tr class="{d}"><td>{job}</td><td>{tr}</td><td class="num">{n}</td><td class="num">{dur}</td><td><code>{env}</code>{note}</td></tr>"#,
            tr = h(transformations.get(*job).map_or("", String::as_str)),
            dur = duration
                .get(job)
                .map_or("-".to_string(), |d| human_duration(*d)),
            d = if env_changed.contains(*job) {
                "changed"
            } else {
                ""
            },
            job = h(job),
            env = env.as_deref().unwrap_or("-"),
            note = if env_changed.contains(*job) {
                " changed"
            } else {
                ""
            },
        );
    }
    let compared = match against {
        None => String::new(),
        Some((id, d)) => {
            let mut s = format!(
                r#"<section id="against"><h2>Against run {}</h2><ul>"#,
                h(id)
            );
            for (role, rd) in &d.roles {
                for (what, names) in [
                    ("added", &rd.added),
                    ("removed", &rd.removed),
                    ("changed", &rd.changed),
                ] {
                    for name in names {
                        let _ = write!(
                            s,
                            r#"<li class="diff">{} {what}: {}</li>"#,
                            role.as_str(),
                            h(name)
                        );
                    }
                }
                for (a, b) in &rd.renamed {
                    let _ = write!(
                        s,
                        r#"<li class="diff">{} renamed: {} → {}</li>"#,
                        role.as_str(),
                        h(a),
                        h(b)
                    );
                }
            }
            for (job, changes) in &d.environment_changes {
                let _ = write!(
                    s,
                    r#"<li class="diff">environment of {}: {}</li>"#,
                    h(job),
                    h(&changes.join("; "))
                );
            }
            s.push_str("</ul></section>");
            s
        }
    };
    Ok(format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{wf} run {run}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{wf} <small>run {run}</small></h1>
<p class="counts">{jobs_n} jobs, {files_n} files, {records_n} records, {bytes}; {state}</p>
<p class="legend"><span class="k job">job</span><span class="k input">input</span><span class="k intermediate">intermediate</span><span class="k output">output</span><span class="k code">code</span><span class="k workflow">workflow</span><span class="k environment">environment</span><span class="k changed">differs</span></p></header>
<main>
<section id="graph"><h2>Graph</h2><p class="hint">Drag to pan, wheel to zoom, double-click to fit.</p><div id="view">{svg}</div></section>
{compared}
<section id="files"><h2>Files</h2><table><thead><tr><th>role</th><th>logical name</th><th>path</th><th>hash</th><th>size</th><th>links</th></tr></thead><tbody>{files}</tbody></table></section>
<section id="jobs"><h2>Jobs</h2><table><thead><tr><th>job</th><th>transformation</th><th>records</th><th>duration</th><th>environment</th></tr></thead><tbody>{jobs}</tbody></table></section>
</main>
<script type="application/json" id="store-data">{data}</script>
<script>{JS}</script>
</body></html>
"##,
        wf = h(&snap.workflow),
        run = h(&snap.run_id),
        jobs_n = counts.jobs,
        files_n = counts.files,
        records_n = counts.records,
        bytes = human_bytes(counts.bytes),
        state = if snap.sealed_ns > 0 { "sealed" } else { "open" },
    ))
}

const CSS: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{padding:12px 20px;background:#f5f5f5;border-bottom:1px solid #ddd}
h1{margin:0;font-size:20px} h1 small{color:#666;font-weight:normal}
main{padding:0 20px} h2{font-size:16px;margin:18px 0 6px}
.hint{color:#777;margin:0 0 4px;font-size:12px}
#view{border:1px solid #ddd;height:60vh;overflow:hidden;cursor:grab;background:#fff}
#dag{width:100%;height:100%}
.edge{fill:none;stroke:#9e9e9e;stroke-width:1.2}
.node rect{stroke-width:1.5;fill:#fff}
.node text{font-size:12px;fill:#222}
.node.job rect{fill:#fff3e0;stroke:#ef6c00}
.node.input rect{fill:#e8f5e9;stroke:#2e7d32}
.node.output rect{fill:#e3f2fd;stroke:#1565c0}
.node.intermediate rect{fill:#f5f5f5;stroke:#757575}
.node.code rect{fill:#f3e5f5;stroke:#6a1b9a}
.node.workflow rect{fill:#fffde7;stroke:#f9a825}
.node.environment rect{fill:#eceff1;stroke:#546e7a}
.node.group rect{stroke-dasharray:6 2;stroke-width:2.5}
.node.changed rect{stroke:#d50000;stroke-width:3}
.node.sel rect{stroke-width:3}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
td.num{text-align:right} tr.changed td{background:#ffebee}
code.hash{cursor:pointer;color:#1565c0}
.legend .k{display:inline-block;margin-right:8px;padding:0 6px;border:1.5px solid #999;border-radius:8px;font-size:12px}
.k.job{border-color:#ef6c00}.k.input{border-color:#2e7d32}.k.output{border-color:#1565c0}.k.code{border-color:#6a1b9a}.k.workflow{border-color:#f9a825}.k.environment{border-color:#546e7a}.k.changed{border-color:#d50000}
li.diff{color:#b71c1c}
"#;

const JS: &str = r#"
(function(){
  var svg=document.getElementById('dag');
  var W=+svg.dataset.w,H=+svg.dataset.h,vb={x:0,y:0,w:W,h:H};
  function set(){svg.setAttribute('viewBox',vb.x+' '+vb.y+' '+vb.w+' '+vb.h);}
  function fit(){vb={x:0,y:0,w:W,h:H};set();}
  var drag=null;
  svg.addEventListener('mousedown',function(e){drag={x:e.clientX,y:e.clientY};});
  window.addEventListener('mouseup',function(){drag=null;});
  window.addEventListener('mousemove',function(e){
    if(!drag)return;var r=svg.getBoundingClientRect(),s=vb.w/r.width;
    vb.x-=(e.clientX-drag.x)*s;vb.y-=(e.clientY-drag.y)*s;drag={x:e.clientX,y:e.clientY};set();});
  svg.addEventListener('wheel',function(e){
    e.preventDefault();var r=svg.getBoundingClientRect(),f=e.deltaY>0?1.15:1/1.15;
    var px=vb.x+(e.clientX-r.left)/r.width*vb.w,py=vb.y+(e.clientY-r.top)/r.height*vb.h;
    vb.w*=f;vb.h*=f;vb.x=px-(px-vb.x)*f;vb.y=py-(py-vb.y)*f;set();},{passive:false});
  svg.addEventListener('dblclick',fit);
  svg.addEventListener('click',function(e){
    var g=e.target.closest('.node');if(!g)return;
    document.querySelectorAll('.node.sel').forEach(function(n){n.classList.remove('sel');});
    g.classList.add('sel');});
  document.querySelectorAll('code.hash').forEach(function(c){
    c.addEventListener('click',function(){
      if(navigator.clipboard){navigator.clipboard.writeText(c.dataset.hash).catch(function(){});}
      c.textContent=c.dataset.hash;});});
  var data=JSON.parse(document.getElementById('store-data').textContent);
  document.body.dataset.nodes=String(data.dag.nodes.length);
  // A small graph fits the view; a large one opens at its natural size from the left (every
  // label readable), and double-click shows it whole.
  var r=svg.getBoundingClientRect();
  if(W<=2*r.width&&H<=2*r.height){fit();}else{vb={x:0,y:0,w:Math.max(r.width,1),h:Math.max(r.height,1)};set();}
})();
"#;
