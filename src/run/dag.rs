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
        let job_node = |id: &str| Node {
            id: format!("j:{id}"),
            kind: "job".into(),
            label: id.to_string(),
            path: None,
            hash: None,
            size: None,
            level: 0,
            row: 0,
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
