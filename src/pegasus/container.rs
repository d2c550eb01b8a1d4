//! Containers a transformation runs in. Pegasus 5 lists them in the transformation catalog
//! (`transformationCatalog.containers`: `name`, `type` docker|singularity|shifter, `image`,
//! `image.site`, `mounts`, `bypass`, `checksum`, `profiles`) and a transformation's site names
//! one (`sites[].container`). Read here for the local runner, which runs such a job in the
//! container ([`ContainerSpec`] on [`super::PlannedJob`]) or refuses to run it on the host.
//!
//! Also read, for hand-written workflows: a top-level `containerCatalog.containers` list and a
//! `container` key on the transformation itself (a site's own `container` wins).

use std::collections::HashMap;
use std::path::Path;

use super::doc::{Map, Node};
use super::{catalog, get, str_of};
use crate::error::{Error, Result};

/// The kind of container (`type` in the catalog).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerType {
    /// A Docker (OCI) image: run by podman, docker, or apptainer/singularity (`docker://`).
    Docker,
    /// A Singularity/Apptainer image (`.sif`, `.img`, `shub://`, `library://`, ...).
    Singularity,
    /// A Shifter image: a Docker image in a site's Shifter registry, run here as the Docker
    /// image it is.
    Shifter,
}

impl ContainerType {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerType::Docker => "docker",
            ContainerType::Singularity => "singularity",
            ContainerType::Shifter => "shifter",
        }
    }
}

/// The container a job runs in, from its transformation's catalog entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    /// The container's `name` in the catalog.
    pub name: String,
    /// Its `type`.
    pub kind: ContainerType,
    /// The image as the catalog gives it (`docker:///centos:7`, `file:///images/tools.sif`);
    /// a relative `file://` path is made absolute against the workflow's directory.
    pub image: String,
    /// `mounts`: `HOST:CONTAINER[:OPTIONS]`, bind-mounted as written.
    pub mounts: Vec<String>,
    /// The container's `profiles.env`: set in the container (a job's own profiles win).
    pub env: Vec<(String, String)>,
    /// Extra engine arguments: the `pegasus` profile `container.arguments`, split on white
    /// space (what Pegasus adds to `docker container run` or `singularity exec`).
    pub arguments: Vec<String>,
    /// True when the executable is a file of this machine (its site is `stageable`): it is
    /// bound into the container read-only at its own path. Otherwise (`installed`) the PFN is
    /// a path inside the image.
    pub host_executable: bool,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {what}", path.display()))
}

fn strings(n: Option<&Node>) -> Vec<String> {
    match n {
        Some(Node::Seq(s)) => s.iter().filter_map(Node::scalar_text).collect(),
        Some(n @ Node::Str(_)) => n.scalar_text().into_iter().collect(),
        _ => Vec::new(),
    }
}

fn profile<'a>(entry: &'a Map, namespace: &str) -> impl Iterator<Item = (&'a str, String)> {
    get(entry, "profiles")
        .and_then(Node::as_map)
        .and_then(|p| get(p, namespace))
        .and_then(Node::as_map)
        .into_iter()
        .flat_map(Map::iter)
        .filter_map(|(k, v)| Some((k.as_str()?, v.scalar_text()?)))
}

fn parse_container(c: &Map, dir: &Path, path: &Path) -> Result<ContainerSpec> {
    let name = str_of(c, "name")
        .ok_or_else(|| bad(path, "a container of the catalog has no `name`"))?
        .to_string();
    let kind = match str_of(c, "type") {
        Some("docker") => ContainerType::Docker,
        Some("singularity") => ContainerType::Singularity,
        Some("shifter") => ContainerType::Shifter,
        other => {
            return Err(bad(
                path,
                format!(
                    "container {name}: type {} is not docker, singularity or shifter",
                    other.map_or("(none)".to_string(), |t| format!("{t:?}"))
                ),
            ))
        }
    };
    let image = str_of(c, "image")
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| bad(path, format!("container {name} has no `image`")))?
        .trim();
    let image = match image.strip_prefix("file://") {
        Some(p) if !p.starts_with('/') => format!("file://{}", dir.join(p).display()),
        _ => image.to_string(),
    };
    let mut mounts = strings(get(c, "mounts"));
    // The pre-5.0 schema's single `mount`.
    mounts.extend(strings(get(c, "mount")));
    Ok(ContainerSpec {
        name,
        kind,
        image,
        mounts,
        env: profile(c, "env").map(|(k, v)| (k.to_string(), v)).collect(),
        arguments: profile(c, "pegasus")
            .filter(|(k, _)| *k == "container.arguments")
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect(),
        host_executable: false,
    })
}

/// The container of each transformation of the workflow `top` (file `path`, directory `dir`)
/// that names one, by transformation name. The site that names it is the first with a `pfn`
/// (the one the runner executes). A name not in the catalog, or a malformed catalog entry
/// that is used, is an [`Error::Invalid`] naming the file.
pub(super) fn by_transformation(
    top: &Map,
    dir: &Path,
    path: &Path,
) -> Result<HashMap<String, ContainerSpec>> {
    let mut wanted = Vec::new();
    for t in catalog(top, "transformationCatalog", "transformations") {
        let Some(name) = str_of(t, "name") else {
            continue;
        };
        let site = get(t, "sites")
            .and_then(Node::as_seq)
            .into_iter()
            .flatten()
            .filter_map(Node::as_map)
            .find(|s| str_of(s, "pfn").is_some());
        let container = site
            .and_then(|s| str_of(s, "container"))
            .or_else(|| str_of(t, "container"));
        if let Some(c) = container {
            let stageable = site.and_then(|s| str_of(s, "type")) == Some("stageable");
            wanted.push((name, c, stageable));
        }
    }
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let entries: Vec<&Map> = catalog(top, "transformationCatalog", "containers")
        .chain(catalog(top, "containerCatalog", "containers"))
        .collect();
    for (transformation, container, stageable) in wanted {
        let entry = entries
            .iter()
            .find(|c| str_of(c, "name") == Some(container))
            .ok_or_else(|| {
                let known: Vec<&str> = entries.iter().filter_map(|c| str_of(c, "name")).collect();
                bad(
                    path,
                    format!(
                        "transformation {transformation} names container {container}, which \
                         the container catalog does not list (it lists: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
        let mut spec = parse_container(entry, dir, path)?;
        spec.host_executable = stageable;
        out.insert(transformation.to_string(), spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<HashMap<String, ContainerSpec>> {
        let doc = super::super::doc::parse(yaml).expect("yaml");
        by_transformation(
            doc.as_map().expect("map"),
            Path::new("/wf"),
            Path::new("/wf/w.yml"),
        )
    }

    #[test]
    fn reads_the_pegasus_catalog_and_the_site_reference() {
        let got = read(
            "transformationCatalog:
  transformations:
  - name: t
    sites: [{name: local, pfn: /opt/t, type: installed, container: c7}]
  - name: s
    sites: [{name: local, pfn: bin/s.sh, type: stageable, container: sif}]
  - name: host
    sites: [{name: local, pfn: /bin/true, type: installed}]
  containers:
  - name: c7
    type: docker
    image: docker:///centos:7
    mounts: ['/data:/data:ro']
    bypass: true
    profiles:
      env: {JAVA_HOME: /opt/java}
      pegasus: {container.arguments: '--shm-size=2g  --cap-add SYS_PTRACE'}
  - name: sif
    type: singularity
    image: file://img/tools.sif
",
        )
        .expect("read");
        assert_eq!(got.len(), 2);
        let t = &got["t"];
        assert_eq!(t.kind, ContainerType::Docker);
        assert_eq!(t.image, "docker:///centos:7");
        assert_eq!(t.mounts, ["/data:/data:ro"]);
        assert_eq!(t.env, [("JAVA_HOME".to_string(), "/opt/java".to_string())]);
        assert_eq!(t.arguments, ["--shm-size=2g", "--cap-add", "SYS_PTRACE"]);
        assert!(!t.host_executable);
        let s = &got["s"];
        assert_eq!(s.kind, ContainerType::Singularity);
        assert_eq!(s.image, "file:///wf/img/tools.sif");
        assert!(s.host_executable);
    }

    #[test]
    fn reads_a_container_catalog_and_a_transformation_reference() {
        let got = read(
            "containerCatalog:
  containers:
  - {name: box, type: docker, image: 'docker://alpine:3'}
transformationCatalog:
  transformations:
  - name: t
    container: box
    sites: [{name: local, pfn: /bin/echo}]
",
        )
        .expect("read");
        assert_eq!(got["t"].image, "docker://alpine:3");
    }

    #[test]
    fn an_unknown_or_malformed_container_is_invalid() {
        let e = read(
            "transformationCatalog:
  transformations:
  - {name: t, sites: [{name: local, pfn: /x, container: nope}]}
  containers: [{name: box, type: docker, image: 'docker://a'}]
",
        )
        .expect_err("unknown");
        assert!(e.to_string().contains("container nope"), "{e}");
        assert!(e.to_string().contains("lists: box"), "{e}");
        let e = read(
            "transformationCatalog:
  transformations:
  - {name: t, sites: [{name: local, pfn: /x, container: box}]}
  containers: [{name: box, type: rkt, image: 'docker://a'}]
",
        )
        .expect_err("type");
        assert!(e.to_string().contains("\"rkt\""), "{e}");
    }
}
