//! `store ls`: tracked paths, or the entries of a tree.

use std::io::Write;

use store::Store;

use super::output::{human_bytes, print_json, printable, root_json, shown_path};
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// A tree hash (or unique prefix) to list instead.
    hash: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let s = ctx.open()?;
    match args.hash {
        None => roots(&s, args.json)?,
        Some(h) => tree(&s, &h, args.json)?,
    }
    Ok(store::exit::OK)
}

fn roots(s: &Store, json: bool) -> anyhow::Result<()> {
    let roots = s.roots()?;
    if json {
        let v: Vec<_> = roots.iter().map(root_json).collect();
        print_json(&v)?;
    } else {
        let ws = s.workspace();
        let mut out = std::io::stdout().lock();
        for r in roots {
            writeln!(
                out,
                "{}  {:<4}  {:>10}  {}",
                r.hash,
                printable(&r.kind),
                human_bytes(r.size),
                shown_path(&r.path, &ws)
            )?;
        }
    }
    Ok(())
}

fn tree(s: &Store, hash: &str, json: bool) -> anyhow::Result<()> {
    let h = s.resolve(hash)?;
    let t = s.tree_manifest(&h)?;
    let rows: Vec<_> = t
        .entries
        .iter()
        .map(|e| {
            let (kind, target) = match &e.kind {
                store::manifest::EntryKind::File(h) => ("file", h.to_hex()),
                store::manifest::EntryKind::Dir(h) => ("tree", h.to_hex()),
                store::manifest::EntryKind::Symlink(t) => {
                    ("link", String::from_utf8_lossy(t).into_owned())
                }
            };
            (
                String::from_utf8_lossy(&e.name).into_owned(),
                kind,
                target,
                e.size,
                e.mode,
            )
        })
        .collect();
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, k, t, s, m)| serde_json::json!({"name": n, "kind": k, "hash_or_target": t, "size": s, "mode": m}))
            .collect();
        print_json(&v)?;
    } else {
        let mut out = std::io::stdout().lock();
        for (n, k, t, s, m) in rows {
            let (n, t) = (printable(&n), printable(&t));
            writeln!(out, "{m:06o} {k:<4} {t}  {:>10}  {n}", human_bytes(s))?;
        }
    }
    Ok(())
}
