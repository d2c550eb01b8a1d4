//! What the store's records of a job become in MLflow: each file's hash and size as
//! parameters, the job's environment record summarized as tags, the tags every run carries,
//! and the parent run's name.

use std::collections::BTreeMap;

use crate::engine::hash::Hash;
use crate::engine::store::Store;
use crate::run::Role;

/// Keys and values: MLflow parameters or tags.
pub(super) type Pairs = Vec<(String, String)>;

/// `YYYYmmddHHMMSS` (UTC) of a time in ms, for parent run names.
pub(super) fn timestamp(ms: i64) -> String {
    let (y, m, d, hh, mm, ss) = crate::engine::util::civil_utc(ms.div_euclid(1000));
    format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}")
}

/// A parameter key MLflow accepts for `<role>/<lfn>/<what>`: characters outside
/// `[A-Za-z0-9_.- ]` become `_` within each `/`-separated part, empty, `.` and `..` parts are
/// dropped or replaced (MLflow refuses names that normalize to another), and a key longer than
/// 250 characters keeps its end and a hash of the name.
fn param_key(role: &str, lfn: &str, what: &str) -> String {
    let parts: Vec<String> = lfn
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(|p| {
            if p == ".." {
                "_".to_string()
            } else {
                p.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "_.- ".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect()
            }
        })
        .collect();
    let name = if parts.is_empty() {
        "_".to_string()
    } else {
        parts.join("/")
    };
    let key = format!("{role}/{name}/{what}");
    if key.len() <= 250 {
        return key;
    }
    let h = blake3::hash(lfn.as_bytes()).to_hex();
    let tail: String = name
        .chars()
        .rev()
        .take(180)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!(
        "{role}/{}~{}/{what}",
        &h[..12],
        tail.trim_start_matches('/')
    )
}

/// One file a job recorded, as MLflow is told about it.
#[derive(Clone, Debug)]
pub(super) struct FileRecord {
    pub role: String,
    pub lfn: String,
    pub hash: Hash,
    pub size: u64,
}

/// The parameters (hash and size of each file, the latest record of a name winning) and tags
/// (environment summary) that describe a job's records.
pub(super) fn job_data(store: &Store, files: &[FileRecord]) -> (Pairs, Pairs) {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut tags = Vec::new();
    for f in files {
        if f.role == Role::Environment.as_str() {
            if tags.is_empty() {
                tags = env_tags(store, &f.hash);
            }
            continue;
        }
        params.insert(param_key(&f.role, &f.lfn, "hash"), f.hash.to_hex());
        params.insert(param_key(&f.role, &f.lfn, "size"), f.size.to_string());
    }
    (params.into_iter().collect(), tags)
}

/// A summary of a job's captured environment record (16.1) as tags.
pub(super) fn env_tags(store: &Store, record: &Hash) -> Vec<(String, String)> {
    let mut out = vec![("store.env.record".to_string(), record.to_hex())];
    let mut bytes = Vec::new();
    if store.cat_unlocked(record, &mut bytes).is_err() {
        return out;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return out;
    };
    let text = |k: &str| match &v[k] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Array(a) if !a.is_empty() => Some(
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    for k in [
        "os",
        "kernel",
        "hostname",
        "cpu_model",
        "cpu_count",
        "memory_bytes",
        "container",
        "python",
        "rust",
    ] {
        if let Some(s) = text(k).filter(|s| !s.is_empty()) {
            out.push((format!("store.env.{k}"), s.chars().take(5000).collect()));
        }
    }
    for k in ["pip_freeze", "conda"] {
        if let Some(a) = v[k].as_array().filter(|a| !a.is_empty()) {
            out.push((format!("store.env.{k}_packages"), a.len().to_string()));
        }
    }
    out
}

/// Tags every run of a store run carries.
pub(super) fn base_tags(
    workflow: &str,
    run_id: &str,
    manifest: Option<&str>,
) -> Vec<(String, String)> {
    let mut t = vec![
        ("store.workflow".to_string(), workflow.to_string()),
        ("store.run_id".to_string(), run_id.to_string()),
    ];
    if let Some(m) = manifest {
        t.push(("store.manifest_url".to_string(), m.to_string()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_names_use_utc_time() {
        assert_eq!(timestamp(0), "19700101000000");
        // 2026-11-28 01:02:03 UTC
        assert_eq!(timestamp(1_795_827_723_000), "20261128010203");
        assert_eq!(timestamp(951_782_400_000), "20000229000000");
    }

    #[test]
    fn param_keys_are_safe_for_mlflow() {
        assert_eq!(
            param_key("input", "config.json", "hash"),
            "input/config.json/hash"
        );
        assert_eq!(param_key("output", "a/./b:c", "size"), "output/a/b_c/size");
        assert_eq!(param_key("input", "../x", "hash"), "input/_/x/hash");
        assert_eq!(param_key("input", "/", "hash"), "input/_/hash");
        let long = "d/".repeat(200) + "file.csv";
        let k = param_key("input", &long, "hash");
        assert!(k.len() <= 250 && k.ends_with("file.csv/hash"), "{k}");
    }
}
