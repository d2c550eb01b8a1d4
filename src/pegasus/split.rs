//! Parsing a large workflow on every core: a Pegasus workflow is almost all `jobs`, and in
//! block style (as the Python API's `write()` and PyYAML produce it) each job is a `- ` item at
//! column 0 under a column-0 `jobs:` key. Such a document is cut at item boundaries into the
//! rest of the document (with `jobs: []`) and a few runs of items, each a YAML sequence of its
//! own, parsed concurrently and joined into the tree the whole document gives.
//!
//! Only where cutting cannot change the meaning: no anchors or aliases (`&`, `*` anywhere), no
//! tags (`!`), no tabs, one document without directives, nothing but items and indented lines
//! inside the `jobs` block, and no float (whose spelling [`super::doc::parse`] recovers in a
//! second, serial reading). Anything else, and any error in any part, leaves the document to
//! the serial parser, so errors and their line numbers are exactly the serial ones.

use super::doc::{Map, Node};

/// Documents smaller than this are parsed serially (threads would not pay).
const MIN_SIZE: usize = 256 * 1024;

/// The tree of `text` parsed in parts, or None when the document is not one this applies to
/// (then parse it serially).
pub(super) fn parse(text: &str) -> Option<Node> {
    if text.len() < MIN_SIZE
        || text.contains(['&', '*', '!', '\t', '\r'])
        || text.starts_with(['%', '-'])
        || text.contains("\n---")
        || text.contains("\n...")
    {
        return None;
    }
    let key = if text.starts_with("jobs:\n") {
        0
    } else {
        text.find("\njobs:\n")? + 1
    };
    let body = key + "jobs:\n".len();
    let mut items = Vec::new();
    let mut end = text.len();
    let mut at = body;
    for line in text[body..].split_inclusive('\n') {
        if line.starts_with("- ") {
            items.push(at);
        } else if line.starts_with(' ') || line == "\n" {
            if items.is_empty() {
                return None;
            }
        } else {
            end = at;
            break;
        }
        at += line.len();
    }
    let parts = rayon::current_num_threads().clamp(2, 8);
    if items.len() < parts * 2 {
        return None;
    }
    let per = items.len().div_ceil(parts);
    let mut texts: Vec<&str> = Vec::with_capacity(parts);
    for chunk in items.chunks(per) {
        let from = chunk[0];
        let to = items
            .get(items.partition_point(|&i| i <= chunk[chunk.len() - 1]))
            .copied()
            .unwrap_or(end);
        texts.push(&text[from..to]);
    }
    let head = format!("{}jobs: []\n{}", &text[..key], &text[end..]);
    let (head, jobs) = rayon::join(
        || serde_norway::from_str::<Node>(&head).ok(),
        || {
            use rayon::prelude::*;
            texts
                .par_iter()
                .map(|t| serde_norway::from_str::<Node>(t).ok())
                .collect::<Option<Vec<Node>>>()
        },
    );
    let (mut head, jobs) = (head?, jobs?);
    let mut all = Vec::with_capacity(items.len());
    for part in jobs {
        let Node::Seq(v) = part else {
            return None;
        };
        all.extend(v);
    }
    if all.len() != items.len() || all.iter().any(Node::has_float) || head.has_float() {
        return None;
    }
    let top: &mut Map = head.as_map_mut()?;
    match top.get_mut("jobs") {
        Some(Node::Seq(v)) if v.is_empty() => *v = all,
        _ => return None,
    }
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(jobs: usize, extra: &str) -> String {
        let mut s =
            String::from("pegasus: '5.0'\nname: big\nmetadata:\n  store_track: basic\njobs:\n");
        for j in 0..jobs {
            s.push_str(&format!(
                "- type: job\n  name: step\n  id: J{j}\n  arguments: [a{j}, \"q: {j}\"]\n  uses:\n  - lfn: f{j}\n    type: output\n    stageOut: true\n{extra}"
            ));
        }
        s.push_str("jobDependencies:\n- id: J0\n  children: [J1]\n");
        s
    }

    fn serial(text: &str) -> Node {
        serde_norway::from_str::<Node>(text).expect("serial")
    }

    #[test]
    fn a_split_parse_gives_the_tree_of_the_whole_document() {
        let text = big(6000, "");
        let split = parse(&text).expect("split applies");
        assert_eq!(split, serial(&text));
        // Items with block scalars and comments indented inside them.
        let text = big(
            6000,
            "  # a comment\n  stdin: |\n    line one\n    - not an item\n",
        );
        assert_eq!(parse(&text).expect("split applies"), serial(&text));
    }

    #[test]
    fn documents_it_cannot_cut_safely_are_left_to_the_serial_parser() {
        for extra in [
            "  arguments: &a [x]\n",  // an anchor
            "  stdin: !tag x\n",      // a tag
            "  metadata: {x: 1.5}\n", // a float: its spelling needs the serial reading
            "# a column-0 comment\n", // not an item line inside the block
            "bad: [\n",               // an error: the serial parser names its line
        ] {
            assert!(parse(&big(6000, extra)).is_none(), "{extra}");
        }
        assert!(
            parse(&big(10, "")).is_none(),
            "small documents are parsed serially"
        );
    }
}
