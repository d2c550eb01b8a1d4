//! The second half of augmentation: the additions decided for each workflow of the tree (new
//! jobs, edges, replicas, metadata, renamed sub-workflow files) written into its document,
//! with the `store` transformation; nothing here decides what to track.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::augment::AugmentOptions;
use super::doc::{Map, Node};
use super::{str_of, Workflow, WorkflowTree};
use crate::error::{Error, Result};

/// What augmentation adds to one workflow, decided before any document changes.
#[derive(Default)]
pub(super) struct Additions {
    pub(super) jobs: Vec<Node>,
    /// (parent, child) edges.
    pub(super) deps: Vec<(String, String)>,
    /// (LFN, PFN) replica entries.
    pub(super) replicas: Vec<(String, String)>,
    pub(super) metadata: Vec<(&'static str, String)>,
    /// Sub-workflow references rewritten to the augmented child: (job, old file, new file).
    pub(super) renamed: Vec<(String, String, String)>,
}

/// Applies the additions to each workflow of the tree, in the order the analysis made them.
pub(super) fn apply(
    node: &mut WorkflowTree,
    adds: &mut impl Iterator<Item = Additions>,
    opts: &AugmentOptions,
) -> Result<()> {
    let add = adds
        .next()
        .ok_or_else(|| Error::Invalid("internal: one set of additions per workflow".into()))?;
    for s in &mut node.subs {
        if let Some((_, _, new)) = add.renamed.iter().find(|(j, _, _)| *j == s.job) {
            s.file = new.clone();
        }
    }
    apply_one(&mut node.wf, add, opts, &node.path)?;
    for s in &mut node.subs {
        apply(&mut s.tree, adds, opts)?;
    }
    Ok(())
}

fn apply_one(wf: &mut Workflow, add: Additions, opts: &AugmentOptions, path: &Path) -> Result<()> {
    let bad = |what: &str| Error::Invalid(format!("{}: {what}", path.display()));
    // The workflow stays valid by construction: new jobs only follow existing ones.
    for j in add.jobs.iter().filter_map(Node::as_map) {
        let id = str_of(j, "id").expect("built with an id").to_string();
        wf.parents.insert(id.clone(), BTreeSet::new());
        wf.jobs.push(id);
    }
    for (p, c) in &add.deps {
        wf.parents.entry(c.clone()).or_default().insert(p.clone());
    }
    let top = wf.doc.as_map_mut().expect("validated: a mapping");
    if let Some(Node::Seq(jobs)) = top.get_mut("jobs") {
        for (job, old, new) in &add.renamed {
            let Some(m) = jobs
                .iter_mut()
                .filter_map(Node::as_map_mut)
                .find(|m| str_of(m, "id") == Some(job.as_str()))
            else {
                continue;
            };
            m.insert("file", Node::str(new));
            for u in m
                .get_mut("uses")
                .and_then(Node::as_seq_mut)
                .into_iter()
                .flatten()
                .filter_map(Node::as_map_mut)
            {
                if str_of(u, "lfn") == Some(old.as_str()) {
                    u.insert("lfn", Node::str(new));
                }
            }
        }
        jobs.extend(add.jobs);
    }
    // Dependencies: existing entries stay as they are; new edges are appended per parent.
    let mut by_parent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, c) in add.deps {
        by_parent.entry(p).or_default().push(c);
    }
    let dep_list = top.entry("jobDependencies", || Node::Seq(Vec::new()));
    if dep_list.is_null() {
        *dep_list = Node::Seq(Vec::new());
    }
    if let Node::Seq(list) = dep_list {
        // One entry per parent: Pegasus keys dependencies by parent id, so a second entry for
        // the same parent would replace the first. New children join the existing entry.
        let mut at: HashMap<String, usize> = HashMap::new();
        for (i, d) in list.iter().enumerate() {
            if let Some(id) = d.as_map().and_then(|m| str_of(m, "id")) {
                at.entry(id.to_string()).or_insert(i);
            }
        }
        for (p, cs) in by_parent {
            match at.get(&p).and_then(|&i| list[i].as_map_mut()) {
                Some(m) => {
                    if let Some(Node::Seq(children)) = m.get_mut("children") {
                        children.extend(cs.into_iter().map(Node::Str));
                    }
                }
                None => list.push(Node::Map(Map::from([
                    ("id", Node::Str(p)),
                    (
                        "children",
                        Node::Seq(cs.into_iter().map(Node::Str).collect()),
                    ),
                ]))),
            }
        }
    }
    add_store_transformation(top, opts).map_err(|e| bad(&e))?;
    for (lfn, pfn) in &add.replicas {
        add_replica(top, lfn, pfn).map_err(|e| bad(&e))?;
    }
    if !add.metadata.is_empty() {
        let Node::Map(meta) = top.entry("metadata", || Node::Map(Map::new())) else {
            return Err(bad("the workflow's `metadata` is not a mapping"));
        };
        for (k, v) in add.metadata {
            meta.insert(k, Node::Str(v));
        }
    }
    Ok(())
}

fn add_store_transformation(
    top: &mut Map,
    opts: &AugmentOptions,
) -> std::result::Result<(), String> {
    let Node::Map(tc) = top.entry("transformationCatalog", || Node::Map(Map::new())) else {
        return Err("transformationCatalog is not a mapping".into());
    };
    let Node::Seq(list) = tc.entry("transformations", || Node::Seq(Vec::new())) else {
        return Err("transformationCatalog.transformations is not a list".into());
    };
    if list
        .iter()
        .filter_map(Node::as_map)
        .any(|t| str_of(t, "name") == Some("store"))
    {
        return Err("the workflow already has a transformation named `store`".into());
    }
    let site = Map::from([
        ("name", Node::str(&opts.site)),
        ("pfn", Node::str(&opts.store_bin)),
        ("type", Node::str("installed")),
    ]);
    list.push(Node::Map(Map::from([
        ("name", Node::str("store")),
        ("sites", Node::Seq(vec![Node::Map(site)])),
    ])));
    Ok(())
}

pub(super) fn add_replica(top: &mut Map, lfn: &str, pfn: &str) -> std::result::Result<(), String> {
    let Node::Map(rc) = top.entry("replicaCatalog", || Node::Map(Map::new())) else {
        return Err("replicaCatalog is not a mapping".into());
    };
    let Node::Seq(list) = rc.entry("replicas", || Node::Seq(Vec::new())) else {
        return Err("replicaCatalog.replicas is not a list".into());
    };
    let p = Map::from([("site", Node::str("local")), ("pfn", Node::str(pfn))]);
    list.push(Node::Map(Map::from([
        ("lfn", Node::str(lfn)),
        ("pfns", Node::Seq(vec![Node::Map(p)])),
    ])));
    Ok(())
}
