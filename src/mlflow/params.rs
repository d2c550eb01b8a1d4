//! Parameters from a configuration file: a job's `mlflow_params` metadata names a JSON or YAML
//! file the job reads (its logical name), and the job's child run gets the file's keys as
//! parameters, as `mlflow.log_params(config)` would; `--mlflow-params FILE` on `augment` and
//! `run` does the same for the parent run. Nested keys are joined with `.` (`optimizer.lr`),
//! lists and other values are logged as their JSON text; keys keep MLflow's characters.
//!
//! A job's file is taken from what the run recorded (the bytes the job read, so a retried job
//! or an edit after the run cannot change them), at seal or sync.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// The largest configuration file read for parameters.
pub const LARGEST: u64 = 1 << 20;
/// MLflow's longest parameter value.
const VALUE_MAX: usize = 6000;
/// MLflow's longest parameter key.
const KEY_MAX: usize = 250;

/// A parameter key MLflow accepts: `[A-Za-z0-9_.- /]`, others become `_`.
fn key(k: &str) -> String {
    let k: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.- /".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(KEY_MAX)
        .collect();
    if k.is_empty() {
        "_".into()
    } else {
        k
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&k, v, out);
            }
        }
        _ => {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => "null".into(),
                other => other.to_string(),
            };
            let text: String = text.chars().take(VALUE_MAX).collect();
            out.insert(key(prefix), text);
        }
    }
}

/// The parameters of a configuration file's bytes (`what` names it in errors): JSON, else
/// YAML; the top level must be a mapping.
pub fn config_params(bytes: &[u8], what: &str) -> Result<Vec<(String, String)>> {
    if bytes.len() as u64 > LARGEST {
        return Err(Error::Invalid(format!(
            "{what}: a parameter file above {LARGEST} bytes is not read"
        )));
    }
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(json) => serde_norway::from_slice(bytes).map_err(|yaml| {
            Error::Invalid(format!("{what}: neither JSON ({json}) nor YAML ({yaml})"))
        })?,
    };
    if !v.is_object() {
        return Err(Error::Invalid(format!(
            "{what}: parameters need a mapping at the top, not {}",
            match v {
                Value::Array(_) => "a list",
                Value::Null => "nothing",
                _ => "a single value",
            }
        )));
    }
    let mut out = BTreeMap::new();
    flatten("", &v, &mut out);
    Ok(out.into_iter().collect())
}

/// [`config_params`] of a file on disk.
pub fn config_params_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let what = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > LARGEST {
        return Err(Error::Invalid(format!(
            "{what}: a parameter file above {LARGEST} bytes is not read"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    config_params(&bytes, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_json_and_yaml_flatten_to_the_same_parameters() {
        let json = br#"{"lr": 0.01, "epochs": 3, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}, "tag": null, "bad key!": true}"#;
        let yaml = b"lr: 0.01\nepochs: 3\noptimizer:\n  name: adam\n  betas: [0.9, 0.99]\ntag: null\n'bad key!': true\n";
        let a = config_params(json, "c.json").expect("json");
        let b = config_params(yaml, "c.yml").expect("yaml");
        assert_eq!(a, b);
        let m: BTreeMap<_, _> = a.into_iter().collect();
        assert_eq!(m["lr"], "0.01");
        assert_eq!(m["epochs"], "3");
        assert_eq!(m["optimizer.name"], "adam");
        assert_eq!(m["optimizer.betas"], "[0.9,0.99]");
        assert_eq!(m["tag"], "null");
        assert_eq!(m["bad key_"], "true");
    }

    #[test]
    fn what_is_not_a_mapping_is_refused_by_name() {
        for (bytes, says) in [
            (&b"[1, 2]"[..], "a list"),
            (b"3", "a single value"),
            (b"key: [unclosed", "neither JSON"),
        ] {
            let e = config_params(bytes, "cfg.yml").expect_err("refused");
            let e = e.to_string();
            assert!(e.contains("cfg.yml") && e.contains(says), "{e}");
        }
        let big = vec![b' '; (LARGEST + 1) as usize];
        assert!(config_params(&big, "big.json").is_err());
    }
}
