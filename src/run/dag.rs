//! A run as a graph: its jobs and its files (one node per distinct path and version) as
//! nodes, an edge from a file to each job that read it and from each job to the files it
//! wrote (the recorded directions, else the roles), laid out left to right by dependency
//! level. `store dag` prints it (JSON, Graphviz dot, Mermaid); `store report` draws it.
//!
//! The layout is the first two steps of a layered (Sugiyama) drawing, which is all a run's DAG
//! needs: each node's level is its longest path from a source, and within a level nodes are
//! ordered by the mean position of their neighbours in the level before (a few sweeps). Code
//! and workflow records have no edges: they sit in a column of their own. Environment records
//! (one per job) are not nodes.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::counts::direction;
use crate::engine::run_object::{Role, RunSnapshot};

/// One node: a job or a file.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    /// `j:<job id>` or `f:<path>@<short hash>`.
    pub id: String,
    /// `job`, or the file's role (`input`, `output`, `intermediate`, `code`, `workflow`,
    /// `environment`).
    pub kind: String,
    /// What to print on it: the job ID, or the file's logical name.
    pub label: String,
    /// A file's path, hash and size (none for a job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Full content hash (hex) of a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Size in bytes of a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Dependency level (column), from 0.
    pub level: usize,
    /// Position in its column, from 0.
    pub row: usize,
    /// A job's duration in ns where the records tell it: from its last input record (taken
    /// just before it ran) to its first output record (just after).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<i64>,
    /// The nodes a group node stands for (see [`Dag::grouped`]); empty for a single node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// A run's graph.
#[derive(Clone, Debug, Serialize)]
pub struct Dag {
    /// Workflow name.
    pub workflow: String,
    /// Run ID.
    pub run_id: String,
    /// Jobs and files.
    pub nodes: Vec<Node>,
    /// (from, to) node IDs: file to the job that read it, job to the file it wrote.
    pub edges: Vec<(String, String)>,
}

impl Dag {
    /// The graph of a run's snapshot.
    pub fn of(snap: &RunSnapshot) -> Dag {
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut edges = Vec::new();
        let durations = durations(snap);
        let job_node = |id: &str| Node {
            id: format!("j:{id}"),
            kind: "job".into(),
            label: id.to_string(),
            path: None,
            hash: None,
            size: None,
            level: 0,
            row: 0,
            duration_ns: durations.get(id).copied(),
            members: Vec::new(),
        };
        // (Environment records are per job: the report lists them with the jobs.)
        for e in snap.entries.iter().filter(|e| e.role != Role::Environment) {
            let fid = format!("f:{}@{}", e.path, e.hash.short());
            nodes.entry(fid.clone()).or_insert_with(|| Node {
                id: fid.clone(),
                kind: e.role.as_str().into(),
                label: e.lfn.clone(),
                path: Some(e.path.clone()),
                hash: Some(e.hash.to_hex()),
                size: Some(e.size),
                level: 0,
                row: 0,
                duration_ns: None,
                members: Vec::new(),
            });
            if !matches!(e.role, Role::Input | Role::Output | Role::Intermediate) {
                continue;
            }
            let jid = format!("j:{}", e.job_id);
            nodes
                .entry(jid.clone())
                .or_insert_with(|| job_node(&e.job_id));
            let edge = match direction(e) {
                "consumed" => (fid, jid),
                "produced" => (jid, fid),
                _ => continue,
            };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
        let mut dag = Dag {
            workflow: snap.workflow.clone(),
            run_id: snap.run_id.clone(),
            nodes: nodes.into_values().collect(),
            edges,
        };
        dag.layout();
        dag
    }

    /// Levels (longest path from a source) and rows (barycenter sweeps); records without
    /// edges (code, workflow, environment) go in a last column.
    fn layout(&mut self) {
        let index: HashMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let n = self.nodes.len();
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (a, b) in &self.edges {
            let (a, b) = (index[a], index[b]);
            preds[b].push(a);
            succs[a].push(b);
        }
        // Kahn's order; a node in a cycle (which a recorded run should not have) keeps level 0.
        let mut indeg: Vec<usize> = preds.iter().map(Vec::len).collect();
        let mut queue: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut level = vec![0usize; n];
        while let Some(i) = queue.pop() {
            for &s in &succs[i] {
                level[s] = level[s].max(level[i] + 1);
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    queue.push(s);
                }
            }
        }
        let connected = |i: usize| !preds[i].is_empty() || !succs[i].is_empty();
        let last = (0..n)
            .filter(|&i| connected(i))
            .map(|i| level[i])
            .max()
            .map_or(0, |l| l + 1);
        for (i, l) in level.iter_mut().enumerate() {
            if !connected(i) && self.nodes[i].kind != "job" {
                *l = last;
            }
        }
        let levels = level.iter().max().map_or(0, |l| l + 1);
        let mut columns: Vec<Vec<usize>> = vec![Vec::new(); levels];
        for (i, &l) in level.iter().enumerate() {
            columns[l].push(i);
        }
        let mut row = vec![0f64; n];
        for col in &columns {
            for (r, &i) in col.iter().enumerate() {
                row[i] = r as f64;
            }
        }
        // Barycenter sweeps, left to right then right to left.
        for sweep in 0..4 {
            let order: Vec<usize> = if sweep % 2 == 0 {
                (1..levels).collect()
            } else {
                (0..levels.saturating_sub(1)).rev().collect()
            };
            for l in order {
                let col = &mut columns[l];
                let key = |i: usize| {
                    let nb = if sweep % 2 == 0 { &preds[i] } else { &succs[i] };
                    if nb.is_empty() {
                        row[i]
                    } else {
                        nb.iter().map(|&p| row[p]).sum::<f64>() / nb.len() as f64
                    }
                };
                col.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
                for (r, &i) in col.iter().enumerate() {
                    row[i] = r as f64;
                }
            }
        }
        for (l, col) in columns.iter().enumerate() {
            for (r, &i) in col.iter().enumerate() {
                self.nodes[i].level = l;
                self.nodes[i].row = r;
            }
        }
    }

    /// Graphviz dot.
    pub fn to_dot(&self) -> String {
        let mut s = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n",
            esc(&self.run_id)
        );
        for n in &self.nodes {
            let shape = match n.kind.as_str() {
                "job" => "box, style=rounded",
                "input" => "ellipse, color=\"#2f7d32\"",
                "output" => "ellipse, color=\"#1565c0\"",
                "intermediate" => "ellipse, color=\"#757575\"",
                "code" => "note",
                "workflow" => "tab",
                _ => "component",
            };
            s.push_str(&format!(
                "  \"{}\" [label=\"{}\", shape={shape}];\n",
                esc(&n.id),
                esc(&n.label)
            ));
        }
        for (a, b) in &self.edges {
            s.push_str(&format!("  \"{}\" -> \"{}\";\n", esc(a), esc(b)));
        }
        s.push_str("}\n");
        s
    }

    /// Mermaid (`flowchart LR`).
    pub fn to_mermaid(&self) -> String {
        let ids: HashMap<&str, String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
            .collect();
        let mut s = String::from("flowchart LR\n");
        for n in &self.nodes {
            let label = n.label.replace('"', "'");
            let (open, close) = if n.kind == "job" {
                ("[", "]")
            } else {
                ("([", "])")
            };
            s.push_str(&format!(
                "  {}{open}\"{label}\"{close}:::{}\n",
                ids[n.id.as_str()],
                n.kind
            ));
        }
        for (a, b) in &self.edges {
            s.push_str(&format!("  {} --> {}\n", ids[a.as_str()], ids[b.as_str()]));
        }
        s
    }
}

/// A dot string literal's content.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Each job's duration where its records tell it: from its last `consumed` record (taken just
/// before the job ran) to its first `produced` record (just after), so it includes the
/// recording of its outputs. Jobs with no record on either side have none.
fn durations(snap: &RunSnapshot) -> HashMap<String, i64> {
    let mut span: HashMap<&str, (Option<i64>, Option<i64>)> = HashMap::new();
    for e in &snap.entries {
        let s = span.entry(e.job_id.as_str()).or_default();
        match direction(e) {
            "consumed" => s.0 = Some(s.0.map_or(e.recorded_ns, |t| t.max(e.recorded_ns))),
            "produced" => s.1 = Some(s.1.map_or(e.recorded_ns, |t| t.min(e.recorded_ns))),
            _ => {}
        }
    }
    span.into_iter()
        .filter_map(|(job, s)| match s {
            (Some(a), Some(b)) if b >= a => Some((job.to_string(), b - a)),
            _ => None,
        })
        .collect()
}

/// Above this many jobs, [`Dag::grouped`] draws repeated jobs as one node.
pub const GROUP_ABOVE_JOBS: usize = 100;
/// The fewest like nodes that make a group.
const GROUP_MIN: usize = 3;

/// A job ID with its digit runs replaced by `#` (`client_12` -> `client_#`): the name of its
/// kind when the transformation is not known.
fn pattern(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !o.ends_with('#') {
                o.push('#');
            }
        } else {
            o.push(c);
        }
    }
    o
}

impl Dag {
    /// The graph a person can read at hundreds of jobs: with more than [`GROUP_ABOVE_JOBS`]
    /// jobs, the jobs of one transformation (`transformations`: job ID -> name; else jobs whose
    /// IDs differ only in their digits) on one level become one node, and so do the files of one
    /// role on one level that the same groups wrote and read. A group node's label counts its
    /// members (`train ×40`), `members` names them; edges join groups. Smaller graphs are
    /// returned as they are.
    pub fn grouped(&self, transformations: &HashMap<String, String>) -> Dag {
        let jobs = self.nodes.iter().filter(|n| n.kind == "job").count();
        if jobs <= GROUP_ABOVE_JOBS {
            return self.clone();
        }
        // Groups are formed per level, so edges between groups still point right: no cycle.
        let mut key: HashMap<&str, String> = HashMap::new();
        for n in self.nodes.iter().filter(|n| n.kind == "job") {
            let name = transformations
                .get(&n.label)
                .cloned()
                .unwrap_or_else(|| pattern(&n.label));
            key.insert(&n.id, format!("{}\u{0}job\u{0}{name}", n.level));
        }
        let job_keys = groups_of(&key);
        let group_of = |id: &str| -> String {
            match key.get(id) {
                Some(k) if job_keys.contains_key(k.as_str()) => k.clone(),
                _ => id.to_string(),
            }
        };
        let mut writers: HashMap<&str, Vec<String>> = HashMap::new();
        let mut readers: HashMap<&str, Vec<String>> = HashMap::new();
        for (a, b) in &self.edges {
            if a.starts_with("j:") {
                writers.entry(b).or_default().push(group_of(a));
            } else {
                readers.entry(a).or_default().push(group_of(b));
            }
        }
        let mut file_key: HashMap<&str, String> = HashMap::new();
        for n in self.nodes.iter().filter(|n| n.kind != "job") {
            let (Some(w), r) = (writers.get(n.id.as_str()), readers.get(n.id.as_str())) else {
                if let Some(r) = readers.get(n.id.as_str()) {
                    let mut r = r.clone();
                    r.sort();
                    r.dedup();
                    file_key.insert(
                        &n.id,
                        format!("{}\u{0}{}\u{0}\u{0}{}", n.level, n.kind, r.join("\u{1}")),
                    );
                }
                continue;
            };
            let mut w = w.clone();
            w.sort();
            w.dedup();
            let mut r = r.cloned().unwrap_or_default();
            r.sort();
            r.dedup();
            file_key.insert(
                &n.id,
                format!(
                    "{}\u{0}{}\u{0}{}\u{0}{}",
                    n.level,
                    n.kind,
                    w.join("\u{1}"),
                    r.join("\u{1}")
                ),
            );
        }
        let file_keys = groups_of(&file_key);
        // The node each old node becomes.
        let mut into: HashMap<&str, String> = HashMap::new();
        let mut members: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
        for n in &self.nodes {
            let k = key
                .get(n.id.as_str())
                .filter(|k| job_keys.contains_key(k.as_str()))
                .or_else(|| {
                    file_key
                        .get(n.id.as_str())
                        .filter(|k| file_keys.contains_key(k.as_str()))
                });
            let id = match k {
                Some(k) => format!("g:{}", k.replace(['\u{0}', '\u{1}'], "|")),
                None => n.id.clone(),
            };
            into.insert(&n.id, id.clone());
            members.entry(id).or_default().push(n);
        }
        let mut nodes = Vec::with_capacity(members.len());
        for (id, ms) in members {
            let first = ms[0];
            if ms.len() == 1 {
                nodes.push(first.clone());
                continue;
            }
            let name = if first.kind == "job" {
                transformations
                    .get(&first.label)
                    .cloned()
                    .unwrap_or_else(|| pattern(&first.label))
            } else {
                let p = pattern(&first.label);
                if ms.iter().all(|m| pattern(&m.label) == p) {
                    p
                } else {
                    format!("{} files", first.kind)
                }
            };
            let total: Option<u64> =
                (first.kind != "job").then(|| ms.iter().filter_map(|m| m.size).sum());
            nodes.push(Node {
                id,
                kind: first.kind.clone(),
                label: format!("{name} ×{}", ms.len()),
                path: None,
                hash: None,
                size: total,
                level: first.level,
                row: 0,
                duration_ns: ms.iter().filter_map(|m| m.duration_ns).max(),
                members: ms.iter().map(|m| m.id.clone()).collect(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        let edges = self
            .edges
            .iter()
            .map(|(a, b)| (into[a.as_str()].clone(), into[b.as_str()].clone()))
            .filter(|e| seen.insert(e.clone()))
            .collect();
        let mut dag = Dag {
            workflow: self.workflow.clone(),
            run_id: self.run_id.clone(),
            nodes,
            edges,
        };
        dag.layout();
        dag
    }
}

/// The keys shared by at least [`GROUP_MIN`] nodes, with their counts.
fn groups_of(key: &HashMap<&str, String>) -> HashMap<String, usize> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for k in key.values() {
        *count.entry(k.clone()).or_default() += 1;
    }
    count.retain(|_, n| *n >= GROUP_MIN);
    count
}
