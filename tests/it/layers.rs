//! The shape of the code: folders are layers and arrows point down only. A module of a layer
//! may name (`crate::<module>`) only modules of the layers below it; this fails on the first
//! import that points up, naming the file and line.

use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, lowest layer first. `main.rs` and `cli/` (the binary) sit
/// on top of all of them and use the library only through `store::`.
const LAYERS: &[&str] = &[
    "error",
    "engine",
    "workspace",
    "run",
    "pegasus",
    "runner",
    "reproduce",
    "remote",
    "mlflow",
    "catalog",
    "report",
    "site",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_layer_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut tops_seen = std::collections::BTreeSet::new();
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("utf8 name")
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "lib" | "main" | "cli") {
            continue;
        }
        let Some(mine) = rank(&top) else {
            violations.push(format!(
                "src/{}: top-level module {top} is in no layer (add it to LAYERS)",
                rel.display()
            ));
            continue;
        };
        tops_seen.insert(top.clone());
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(theirs) = rank(&name) {
                    if theirs > mine {
                        violations.push(format!(
                            "src/{}:{}: {top} uses {name}, a layer above it: {}",
                            rel.display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that point up:\n{}",
        violations.join("\n")
    );
    // Every layer exists (a renamed folder must be renamed here too).
    for l in LAYERS {
        assert!(tops_seen.contains(*l), "layer {l} has no module under src/");
    }
}
