//! Run objects as bytes: the partial run manifest (kind 7) and the run snapshot (kind 6),
//! their entries, roles and identifiers, and the one decoder that checks them (16.1).
//!
//! These are part of the format, like tree manifests: `gc` must know what a run object
//! references and `reindex` must rebuild the run tables from the packs, so they live in the
//! engine. What runs *do* (record, seal, diff, checkout) is the run layer's (`src/run/`).

use serde::{Deserialize, Serialize};

use crate::engine::hash::{Hash, ObjectKind};
use crate::error::{Error, Result};

/// A random version-4 UUID (Pegasus run IDs look like this).
pub fn new_run_id() -> String {
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = crate::engine::util::now_ns().to_le_bytes();
        b[..8].copy_from_slice(&t);
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Format version of run objects.
pub const RUN_FORMAT: u32 = 1;

/// The rule for workflow names, run IDs and job IDs (16.3): 1-200 characters of ASCII letters,
/// digits and `._:@+-`, not `.` or `..`. It holds for local input and for every run object or
/// segment decoded, whatever its source: a name that passes is one safe path component and
/// prints as itself.
pub fn valid_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 200
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:@+-".contains(c))
}

/// Why `v` is not a valid `what` (a workflow name, run ID or job ID); `{v:?}` escapes control
/// characters, so the message is safe to print.
pub(crate) fn name_problem(what: &str, v: &str) -> String {
    format!("{what} {v:?} must be 1-200 characters of letters, digits and ._:@+-")
}

pub(crate) fn check_name(what: &str, v: &str) -> Result<()> {
    if valid_name(v) {
        Ok(())
    } else {
        Err(Error::Invalid(name_problem(what, v)))
    }
}

/// A run ID (Pegasus uses UUIDs): 1-200 characters of letters, digits and `._:@+-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// A new random (version 4) UUID.
    pub fn random() -> RunId {
        RunId(new_run_id())
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RunId {
    type Err = Error;
    fn from_str(s: &str) -> Result<RunId> {
        check_name("run ID", s)?;
        Ok(RunId(s.to_string()))
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a tracked file is to its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read by a job.
    Input,
    /// Produced by the workflow for its users.
    Output,
    /// Produced by one job and read by another.
    Intermediate,
    /// Transformations: scripts and executables.
    Code,
    /// The workflow description.
    Workflow,
    /// A captured execution environment.
    Environment,
}

impl Role {
    /// All roles, in display order.
    pub const ALL: [Role; 6] = [
        Role::Input,
        Role::Output,
        Role::Intermediate,
        Role::Code,
        Role::Workflow,
        Role::Environment,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
            Role::Intermediate => "intermediate",
            Role::Code => "code",
            Role::Workflow => "workflow",
            Role::Environment => "environment",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown role {s:?} (input, output, intermediate, code, workflow, environment)"
                ))
            })
    }
}

/// One tracked file (or directory) of a run, with the metadata the research prototype kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    /// Its role.
    pub role: Role,
    /// Logical file name (Pegasus LFN; defaults to the path as given).
    pub lfn: String,
    /// Path relative to the workspace, where checkout restores it.
    pub path: String,
    /// `file` or `tree`.
    pub kind: String,
    /// Content hash (the version).
    pub hash: Hash,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// When it was recorded, ns since the epoch.
    pub recorded_ns: i64,
    /// The job that recorded it.
    pub job_id: String,
    /// Hash of the job's environment record.
    pub environment: Option<Hash>,
    /// Remote URLs (filled in when pushed).
    #[serde(default)]
    pub remote_urls: Vec<String>,
    /// MLflow run URL (filled in when linked).
    #[serde(default)]
    pub mlflow_url: Option<String>,
    /// Unix permission bits of a file (restored by checkout; executables stay executable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The absolute path it was recorded from, when that is outside the workspace: `path` is
    /// then `_external/` followed by this path without its leading `/` (16.2), so two files of
    /// one name in different folders never share a path. Absent in runs recorded before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Whether the job read it (`consumed`, recorded before the job ran) or wrote it
    /// (`produced`, recorded after). Absent when not known (recorded by hand, or before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// Which way a file went for the job that recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Read by the job.
    Consumed,
    /// Written by the job.
    Produced,
}

impl Direction {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Consumed => "consumed",
            Direction::Produced => "produced",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Direction> {
        match s {
            "consumed" | "in" | "input" => Ok(Direction::Consumed),
            "produced" | "out" | "output" => Ok(Direction::Produced),
            _ => Err(Error::Invalid(format!(
                "unknown direction {s:?} (consumed or produced)"
            ))),
        }
    }
}

/// Where a file recorded from outside the workspace lives in a run (16.2).
pub const EXTERNAL_DIR: &str = "_external";

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One job's records into a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPart {
    /// [`RUN_FORMAT`].
    pub format: u32,
    /// Workflow name.
    pub workflow: String,
    /// Run ID.
    pub run_id: String,
    /// Job ID.
    pub job_id: String,
    /// Host that recorded it.
    pub host: Option<String>,
    /// When, ns since the epoch.
    pub time_ns: i64,
    /// What was recorded.
    pub entries: Vec<RunEntry>,
}

impl RunPart {
    /// The index rows of this partial manifest (object hash `record`).
    pub(crate) fn index_row(self, record: Hash) -> crate::engine::index::RunPartRow {
        crate::engine::index::RunPartRow {
            record,
            entries: self
                .entries
                .iter()
                .map(|e| {
                    (
                        e.role.as_str().to_string(),
                        e.lfn.clone(),
                        e.path.clone(),
                        e.kind.clone(),
                        e.hash,
                        e.size,
                    )
                })
                .collect(),
            workflow: self.workflow,
            run_id: self.run_id,
            job_id: self.job_id,
            time_ns: self.time_ns,
        }
    }
}

/// A sealed run: every partial manifest merged, immutable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSnapshot {
    /// [`RUN_FORMAT`].
    pub format: u32,
    /// Workflow name.
    pub workflow: String,
    /// Run ID.
    pub run_id: String,
    /// First record, ns.
    pub created_ns: i64,
    /// Seal time, ns.
    pub sealed_ns: i64,
    /// The partial manifests merged, sorted.
    pub parts: Vec<Hash>,
    /// Every entry, sorted by role, path, job.
    pub entries: Vec<RunEntry>,
    /// Where the run's code was committed with git, when `code.repo` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeVersion>,
}

/// A run's code as committed to git (one commit per run on a branch named after the workflow).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeVersion {
    /// The repository (as configured in `code.repo`).
    pub repo: String,
    /// The commit.
    #[serde(flatten)]
    pub commit: GitCommit,
    /// Committed files: path in the repository and content hash (checksum).
    pub files: Vec<(String, Hash)>,
    /// Code files above `code.max_git_bytes`, versioned in the store only.
    pub store_only: Vec<String>,
}

/// A run object (partial manifest or snapshot): the names it carries are checked on decode.
pub(crate) trait RunObject: serde::de::DeserializeOwned {
    /// Every (what, name) pair that must pass [`valid_name`].
    fn names(&self) -> Vec<(&'static str, &str)>;
}

impl RunObject for RunPart {
    fn names(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![
            ("workflow name", self.workflow.as_str()),
            ("run ID", self.run_id.as_str()),
            ("job ID", self.job_id.as_str()),
        ];
        v.extend(self.entries.iter().map(|e| ("job ID", e.job_id.as_str())));
        v
    }
}

impl RunObject for RunSnapshot {
    fn names(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![
            ("workflow name", self.workflow.as_str()),
            ("run ID", self.run_id.as_str()),
        ];
        v.extend(self.entries.iter().map(|e| ("job ID", e.job_id.as_str())));
        v
    }
}

/// Parses a run object, refusing one written by a newer format, and one whose workflow name,
/// run ID or job IDs break the rule local input follows ([`valid_name`]): this is the one
/// decoder of run objects, so a name from a remote, a copied pack or `reindex` is held to the
/// same rule as one typed by a user (a run ID becomes a path in `.store/mlflow/`, and names
/// are printed).
pub(crate) fn parse_run_object<T: RunObject>(
    kind: ObjectKind,
    bytes: &[u8],
    what: &Hash,
) -> Result<T> {
    let obj: T = parse_unchecked(kind, bytes, what)?;
    if let Some((w, n)) = obj.names().into_iter().find(|(_, n)| !valid_name(n)) {
        return Err(Error::corrupt(
            format!("{} {what}", kind.name()),
            name_problem(w, n),
        ));
    }
    Ok(obj)
}

/// [`parse_run_object`] without the name check.
fn parse_unchecked<T: serde::de::DeserializeOwned>(
    kind: ObjectKind,
    bytes: &[u8],
    what: &Hash,
) -> Result<T> {
    let name = format!("{} {what}", kind.name());
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt(name.clone(), e.to_string()))?;
    let format = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
    if format > u64::from(RUN_FORMAT) {
        return Err(Error::NewerFormat {
            what: name,
            found: format as u32,
            supported: RUN_FORMAT,
        });
    }
    serde_json::from_value(v).map_err(|e| Error::corrupt(name, e.to_string()))
}

/// The references of a run object's entries (for gc). Names are not checked: what an object
/// references is known whatever its names, and gc must keep it.
pub(crate) fn entry_refs(
    kind: ObjectKind,
    bytes: &[u8],
    what: &Hash,
) -> Result<Vec<(Hash, ObjectKind)>> {
    let entries = match kind {
        ObjectKind::Run => parse_unchecked::<RunSnapshot>(kind, bytes, what)?.entries,
        _ => parse_unchecked::<RunPart>(kind, bytes, what)?.entries,
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            (
                e.hash,
                if e.kind == "tree" {
                    ObjectKind::Tree
                } else {
                    ObjectKind::File
                },
            )
        })
        .collect())
}

/// What a git commit of a run's code (or of the catalog) was: recorded in run snapshots.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GitCommit {
    /// The branch.
    pub branch: String,
    /// The commit ID (hex).
    pub commit: String,
    /// Whether it was pushed to `origin`.
    pub pushed: bool,
    /// Why the push to `origin` failed (redacted), when it did: the commit stands, the push is
    /// pending (not part of the format: never written).
    #[serde(skip)]
    pub push_error: Option<String>,
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::{parse_run_object, RunPart, RunSnapshot};
    use crate::engine::hash::{Hash, ObjectKind};

    proptest! {
        /// Run objects from a remote decode or name the damage, whatever the bytes.
        #[test]
        fn run_objects_decode_or_name_the_damage(
            raw in proptest::collection::vec(any::<u8>(), 0..512),
            text in "[\\[\\]{}:,\"a-z0-9 .\\-]{0,300}",
        ) {
            let h = Hash::of(ObjectKind::RunPart, &raw);
            for b in [&raw[..], text.as_bytes()] {
                let _ = parse_run_object::<RunPart>(ObjectKind::RunPart, b, &h);
                let _ = parse_run_object::<RunSnapshot>(ObjectKind::Run, b, &h);
                let _ = super::entry_refs(ObjectKind::RunPart, b, &h);
            }
        }
    }
}
