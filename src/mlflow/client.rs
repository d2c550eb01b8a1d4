//! A small client for MLflow's REST API 2.0: the handful of calls the linkage needs, each
//! bounded in time and retried with full-jitter backoff, all under one time budget per command.
//!
//! Why a budget rather than a retry count: a tracking job must finish in bounded time whatever
//! the server does (down, slow, rate-limiting), because a workflow waits for it. Every request
//! gets at most [`PER_CALL`] (less when the budget is nearly spent); connection errors, timeouts,
//! 429 and 5xx are retried after a random pause in `[0, min(CAP, BASE * 2^attempt))` (full
//! jitter, so a thousand jobs that lost the server at once do not come back in lockstep) until
//! the budget is gone; any other 4xx is an answer, not a failure to reach the server, and is
//! returned at once. A `runs/create` whose answer was lost may have created the run: it waits
//! for its answer as long as the budget allows, and before it is sent again, a search looks for
//! the run ([`Client::create_run`]).
//!
//! Credentials come only from `MLFLOW_TRACKING_TOKEN` (Bearer) or `MLFLOW_TRACKING_USERNAME` /
//! `MLFLOW_TRACKING_PASSWORD` (Basic). They live in [`Auth`], which has no `Debug` that shows
//! them, go only into request headers, and never into a message: error texts carry the URL
//! (which never has a `user:password@` part, [`check_uri`]) and the server's answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The longest a single request may take.
const PER_CALL: Duration = Duration::from_secs(5);
/// The longest wait to establish a connection.
const CONNECT: Duration = Duration::from_secs(2);
/// First backoff ceiling.
const BASE: Duration = Duration::from_millis(100);
/// Largest backoff ceiling.
const CAP: Duration = Duration::from_secs(2);
/// The error code of [`Client::put_artifact`] for a server that does not store artifacts.
pub const NOT_PROXIED: &str = "ARTIFACTS_NOT_PROXIED";
/// Requests in flight at once (creating one run per job, logging per job at seal).
pub const CONCURRENCY: usize = 8;
/// Parameters (and, separately, tags) per `runs/log-batch` request: MLflow's limit.
const BATCH: usize = 100;

/// How a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The server could not be reached or kept failing (connection error, timeout, 429, 5xx)
    /// until the budget was spent: worth trying again later.
    Unavailable(String),
    /// The server answered with an error that retrying will not change (a 4xx other than 429).
    Rejected {
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code` (e.g. `RESOURCE_ALREADY_EXISTS`), or empty.
        code: String,
        /// MLflow's message.
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable(why) => write!(f, "unreachable: {why}"),
            CallError::Rejected {
                status,
                code,
                message,
            } => write!(f, "HTTP {status} {code}: {message}"),
        }
    }
}

impl CallError {
    fn is_code(&self, want: &str) -> bool {
        matches!(self, CallError::Rejected { code, .. } if code == want)
    }
}

/// What one request sends.
#[derive(Clone, Copy)]
enum Body<'a> {
    /// `GET`, the query in the URL.
    Get,
    /// `POST` of a JSON document.
    Json(&'a str),
    /// `PUT` of a file's bytes (the artifact API).
    Bytes(&'a [u8]),
}

/// How one attempt failed: for good, or worth retrying.
enum Failure {
    Final(CallError),
    Retry(String),
}

/// Credentials from the environment (never stored; no `Debug`, so never printed).
enum Auth {
    None,
    Bearer(String),
    Basic(String, Option<String>),
}

impl Auth {
    fn from_env() -> Auth {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        if let Some(t) = var("MLFLOW_TRACKING_TOKEN") {
            Auth::Bearer(t)
        } else if let Some(u) = var("MLFLOW_TRACKING_USERNAME") {
            Auth::Basic(u, var("MLFLOW_TRACKING_PASSWORD"))
        } else {
            Auth::None
        }
    }
}

pub use crate::engine::store::check_mlflow_uri as check_uri;

/// An MLflow run as `runs/search` and `runs/create` describe it (the parts the linkage reads).
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// MLflow's run ID.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Start time, ms.
    pub start_time: i64,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Where its artifacts go (`mlflow-artifacts:/<experiment>/<run>/artifacts` when the
    /// server stores them).
    pub artifact_uri: Option<String>,
}

impl RunInfo {
    fn parse(run: &Value) -> Option<RunInfo> {
        let info = run.get("info")?;
        let tags = run
            .pointer("/data/tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t.get("key")?.as_str()?.to_string(),
                    t.get("value")?.as_str().unwrap_or("").to_string(),
                ))
            })
            .collect();
        Some(RunInfo {
            run_id: info.get("run_id")?.as_str()?.to_string(),
            experiment_id: info.get("experiment_id")?.as_str()?.to_string(),
            start_time: info.get("start_time").and_then(Value::as_i64).unwrap_or(0),
            tags,
            artifact_uri: info
                .get("artifact_uri")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// A connection to one tracking server, with a deadline for everything this command sends.
pub struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    uri: String,
    auth: Auth,
    deadline: Instant,
    budget: Duration,
    requests: AtomicU64,
    seed: AtomicU64,
}

impl Client {
    /// A client for `uri` (checked with [`check_uri`]) that gives up `budget` from now.
    pub fn new(uri: &str, budget: Duration) -> Result<Client> {
        let uri = check_uri(uri)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("<tokio runtime>", e))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT)
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .map_err(|e| mlflow_error(&uri, e))?;
        Ok(Client {
            rt,
            http,
            uri,
            auth: Auth::from_env(),
            deadline: Instant::now() + budget,
            budget,
            requests: AtomicU64::new(0),
            seed: AtomicU64::new(
                crate::engine::util::now_ns() as u64 ^ u64::from(std::process::id()),
            ),
        })
    }

    /// The tracking URI (no trailing `/`).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Runs a future made of this client's calls to completion.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A random pause in `[0, ceiling)` (xorshift; only spreads retries, so no crypto).
    fn jitter(&self, ceiling: Duration) -> Duration {
        let mut x = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let nanos = ceiling.as_nanos().max(1) as u64;
        Duration::from_nanos(x % nanos)
    }

    /// One REST call: `GET` with query parameters or `POST` with a JSON body, retried (see
    /// the module) until it is answered or the budget is spent.
    async fn call(
        &self,
        post: bool,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Value,
    ) -> std::result::Result<Value, CallError> {
        let url = self.url(endpoint, query);
        let payload = body.to_string();
        let body = if post {
            Body::Json(&payload)
        } else {
            Body::Get
        };
        self.send(&url, body).await
    }

    /// Sends `body` to `url`, retried until it is answered or the budget is spent.
    async fn send(&self, url: &str, body: Body<'_>) -> std::result::Result<Value, CallError> {
        let mut attempt: u32 = 0;
        loop {
            match self.attempt(body, url, attempt, PER_CALL).await {
                Ok(v) => return Ok(v),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(why)) => self.pause(&mut attempt, why).await?,
            }
        }
    }

    fn url(&self, endpoint: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}/api/2.0/mlflow/{endpoint}", self.uri);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{}={}", encode(k), encode(v)));
        }
        url
    }

    /// One request, given at most `limit` (and what is left of the budget). `attempt` is how
    /// many were made before it: once the budget is spent, a retry is not sent.
    async fn attempt(
        &self,
        body: Body<'_>,
        url: &str,
        attempt: u32,
        limit: Duration,
    ) -> std::result::Result<Value, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && attempt > 0 {
            return Err(Failure::Final(CallError::Unavailable(format!(
                "{url}: gave up after {attempt} attempts within the time budget"
            ))));
        }
        let mut req = match body {
            Body::Get => self.http.get(url),
            Body::Json(payload) => self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .body(payload.to_string()),
            Body::Bytes(bytes) => self
                .http
                .put(url)
                .header("Content-Type", "application/octet-stream")
                .body(bytes.to_vec()),
        };
        req = req.timeout(limit.min(left.max(Duration::from_millis(200))));
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, p.as_ref()),
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return Err(Failure::Retry(describe(&e))),
        };
        let status = resp.status().as_u16();
        match resp.bytes().await {
            Ok(bytes) if (200..300).contains(&status) => {
                if bytes.is_empty() {
                    return Ok(json!({}));
                }
                serde_json::from_slice(&bytes).map_err(|e| {
                    Failure::Final(CallError::Rejected {
                        status,
                        code: String::new(),
                        message: format!("{url}: not JSON: {e}"),
                    })
                })
            }
            Ok(bytes) if status != 429 && status < 500 => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let mut message = text("message");
                if message.is_empty() {
                    message = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                }
                Err(Failure::Final(CallError::Rejected {
                    status,
                    code: text("error_code"),
                    message,
                }))
            }
            Ok(_) => Err(Failure::Retry(format!("{url}: HTTP {status}"))),
            Err(e) => Err(Failure::Retry(format!(
                "{url}: HTTP {status}, reading the answer: {e}"
            ))),
        }
    }

    /// After a failed attempt: the budget's end (as `Unavailable(why)`), or a full-jitter pause.
    async fn pause(&self, attempt: &mut u32, why: String) -> std::result::Result<(), CallError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::Unavailable(why));
        }
        let ceiling = BASE.saturating_mul(1 << (*attempt).min(16)).min(CAP);
        tokio::time::sleep(self.jitter(ceiling).min(left)).await;
        *attempt += 1;
        Ok(())
    }

    /// The ID of the experiment named `name`, created if absent (and restored if deleted). Two
    /// processes racing to create it both end up with the one that won.
    pub async fn experiment(&self, name: &str) -> std::result::Result<String, CallError> {
        for _ in 0..3 {
            match self
                .call(
                    false,
                    "experiments/get-by-name",
                    &[("experiment_name", name)],
                    Value::Null,
                )
                .await
            {
                Ok(v) => {
                    let e = &v["experiment"];
                    let id = e["experiment_id"].as_str().unwrap_or("").to_string();
                    if e["lifecycle_stage"] == "deleted" {
                        self.call(
                            true,
                            "experiments/restore",
                            &[],
                            json!({"experiment_id": id}),
                        )
                        .await?;
                    }
                    return Ok(id);
                }
                Err(e) if e.is_code("RESOURCE_DOES_NOT_EXIST") => {}
                Err(e) => return Err(e),
            }
            match self
                .call(true, "experiments/create", &[], json!({"name": name}))
                .await
            {
                Ok(v) => return Ok(v["experiment_id"].as_str().unwrap_or("").to_string()),
                // Another process created it first: read it again.
                Err(e) if e.is_code("RESOURCE_ALREADY_EXISTS") => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CallError::Unavailable(format!(
            "experiment {name:?} kept appearing and disappearing"
        )))
    }

    /// Every run of `experiments` matching `filter` (all pages).
    pub async fn search(
        &self,
        experiments: &[String],
        filter: &str,
    ) -> std::result::Result<Vec<RunInfo>, CallError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": experiments,
                "filter": filter,
                "max_results": 1000,
                "run_view_type": "ACTIVE_ONLY",
            });
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let v = self.call(true, "runs/search", &[], body).await?;
            out.extend(
                v["runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(RunInfo::parse),
            );
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Creates a run with its name, start time (ms) and tags.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> std::result::Result<RunInfo, CallError> {
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": start_ms,
            "tags": pairs(tags),
        });
        let url = self.url("runs/create", &[]);
        let payload = body.to_string();
        let run_tag = tags.iter().find(|(k, _)| k == "store.run_id");
        let mut attempt: u32 = 0;
        loop {
            // No per-request limit but the budget: a slow server that is still creating the
            // run must not be asked again before it answers.
            match self
                .attempt(Body::Json(&payload), &url, attempt, self.budget)
                .await
            {
                Ok(v) => {
                    return RunInfo::parse(&v["run"]).ok_or_else(|| CallError::Rejected {
                        status: 200,
                        code: String::new(),
                        message: "runs/create answered without a run".into(),
                    })
                }
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(why)) => self.pause(&mut attempt, why).await?,
            }
            // Not creating twice: the server may have created the run and the answer been lost
            // (a gateway's 502/504, a timeout); if a run with every one of these tags is there,
            // it is the one.
            let Some((_, run_id)) = run_tag else { continue };
            let found = self
                .search(
                    &[experiment_id.to_string()],
                    &format!("tags.`store.run_id` = '{run_id}'"),
                )
                .await?;
            let mine = found
                .into_iter()
                .filter(|r| tags.iter().all(|(k, v)| r.tags.get(k) == Some(v)))
                .min_by(|a, b| (a.start_time, &a.run_id).cmp(&(b.start_time, &b.run_id)));
            if let Some(r) = mine {
                return Ok(r);
            }
        }
    }

    /// Logs parameters and tags to a run, at most 100 of each per request. Logging the same
    /// parameter with the same value again is accepted by MLflow, so this is idempotent.
    pub async fn log_batch(
        &self,
        run_id: &str,
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> std::result::Result<(), CallError> {
        let n = params.len().div_ceil(BATCH).max(tags.len().div_ceil(BATCH));
        for i in 0..n {
            let slice = |v: &[(String, String)]| {
                let lo = (i * BATCH).min(v.len());
                pairs(&v[lo..((i + 1) * BATCH).min(v.len())])
            };
            let body = json!({"run_id": run_id, "params": slice(params), "tags": slice(tags)});
            self.call(true, "runs/log-batch", &[], body).await?;
        }
        Ok(())
    }

    /// One run, by its MLflow ID.
    pub async fn get_run(&self, run_id: &str) -> std::result::Result<RunInfo, CallError> {
        let v = self
            .call(false, "runs/get", &[("run_id", run_id)], Value::Null)
            .await?;
        RunInfo::parse(&v["run"]).ok_or_else(|| CallError::Rejected {
            status: 200,
            code: String::new(),
            message: "runs/get answered without a run".into(),
        })
    }

    /// Uploads `bytes` as the artifact `name` of a run whose artifacts the tracking server
    /// stores itself (`artifact_uri` `mlflow-artifacts:/...`, the default of `mlflow server`):
    /// `PUT /api/2.0/mlflow-artifacts/artifacts/<path>/<name>`. Writing the same artifact
    /// again replaces it, so this is idempotent. Any other artifact store (a path on the
    /// server's disk, a bucket the client would write itself) is refused with
    /// `ARTIFACTS_NOT_PROXIED`, sending nothing.
    pub async fn put_artifact(
        &self,
        artifact_uri: &str,
        name: &str,
        bytes: &[u8],
    ) -> std::result::Result<(), CallError> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            return Err(CallError::Rejected {
                status: 0,
                code: NOT_PROXIED.into(),
                message: format!(
                    "artifacts go to {artifact_uri}, which the tracking server does not serve \
                     (start it with --serve-artifacts)"
                ),
            });
        };
        // `mlflow-artifacts://host:port/path` names the server too: the path is what counts.
        let path = match rest.strip_prefix("//") {
            Some(r) => r.split_once('/').map_or("", |(_, p)| p),
            None => rest,
        };
        let path: Vec<String> = path
            .split('/')
            .chain(name.split('/'))
            .filter(|p| !p.is_empty())
            .map(encode)
            .collect();
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.uri,
            path.join("/")
        );
        self.send(&url, Body::Bytes(bytes)).await.map(|_| ())
    }

    /// Sets a run's status (`FINISHED`, `FAILED`, …) and end time (ms).
    pub async fn update_run(
        &self,
        run_id: &str,
        status: &str,
        end_ms: i64,
    ) -> std::result::Result<(), CallError> {
        let body = json!({"run_id": run_id, "status": status, "end_time": end_ms});
        self.call(true, "runs/update", &[], body).await.map(|_| ())
    }
}

/// Runs `futs` with at most [`CONCURRENCY`] in flight; results in input order.
pub async fn bounded<T, F: std::future::Future<Output = T>>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<T> {
    let mut indexed: Vec<(usize, T)> = stream::iter(
        futs.into_iter()
            .enumerate()
            .map(|(i, f)| async move { (i, f.await) }),
    )
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, t)| t).collect()
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pairs(v: &[(String, String)]) -> Value {
    Value::Array(
        v.iter()
            .map(|(k, val)| json!({"key": k, "value": val}))
            .collect(),
    )
}

/// A transport error in words, without anything secret (the URL has no credentials).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut s = format!("{what}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// A library error about the tracking server at `uri`.
pub fn mlflow_error(uri: &str, detail: impl std::fmt::Display) -> Error {
    Error::Remote {
        remote: format!("MLflow {uri}"),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_for_a_store_the_server_does_not_serve_are_refused_without_a_request() {
        let c = Client::new("http://127.0.0.1:9", Duration::from_secs(1)).expect("client");
        for uri in [
            "file:///srv/mlruns/1/abc/artifacts",
            "s3://bucket/1/abc",
            "",
        ] {
            match c.block_on(c.put_artifact(uri, "files.json", b"[]")) {
                Err(CallError::Rejected { code, message, .. }) => {
                    assert_eq!(code, NOT_PROXIED);
                    assert!(message.contains("--serve-artifacts"), "{message}");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
        assert_eq!(c.requests(), 0);
    }

    #[test]
    fn uris_with_credentials_are_refused() {
        assert!(check_uri("http://user:pw@host:5000").is_err());
        assert!(check_uri("https://token@host").is_err());
        assert!(check_uri("file:///tmp/mlruns").is_err());
        assert!(check_uri("http://").is_err());
        assert_eq!(
            check_uri("http://127.0.0.1:5000/").expect("ok"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            check_uri("https://host/mlflow/").expect("ok"),
            "https://host/mlflow"
        );
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        /// MLflow's run answers: any JSON is a run or nothing.
        #[test]
        fn run_answers_parse_or_say_nothing(text in "[\\[\\]{}:,\"a-z0-9 .\\-]{0,300}") {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let _ = super::RunInfo::parse(&v);
            }
        }
    }
}
