//! The Drive backend's HTTP: each request sent and its reply read whole on the backend's
//! runtime while the calling thread blocks (many threads may call at once), the access
//! token (cached, renewed before expiry and on a 401), bounded full-jitter retries, and
//! Drive's error bodies turned into messages that name the key and never a token.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::{auth, lock, GdriveBackend, TOKEN_KEY};
use crate::error::{Error, Result};

/// One HTTP reply, read whole.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// Whether a request may be sent again after a transport error or a retryable status.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Idempotent (or harmless to repeat): retry.
    Yes,
    /// The caller recovers itself (resumable chunks).
    No,
}

impl GdriveBackend {
    /// Sends one request and reads the whole reply; `Err` is a transport failure.
    fn exchange(&self, rb: reqwest::RequestBuilder) -> std::result::Result<Reply, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.rt.block_on(async {
            let resp = rb.send().await.map_err(describe)?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(describe)?;
            Ok(Reply {
                status,
                headers,
                body,
            })
        })
    }

    fn access_token(&self) -> Result<String> {
        let mut g = lock(&self.token);
        if let Some(t) = g.as_ref().filter(|t| t.fresh()) {
            return Ok(t.value.clone());
        }
        let t = self.fetch_token()?;
        let v = t.value.clone();
        *g = Some(t);
        Ok(v)
    }

    /// Forgets `used` if it is still the cached token (a 401 said it expired).
    fn invalidate(&self, used: &str) {
        let mut g = lock(&self.token);
        if g.as_ref().is_some_and(|t| t.value == used) {
            *g = None;
        }
    }

    fn fetch_token(&self) -> Result<auth::AccessToken> {
        let body = self.creds.grant(&self.token_url)?;
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let rb = self
                .client
                .post(&self.token_url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone());
            match self.exchange(rb) {
                Ok(r) if r.status == 200 => {
                    return auth::AccessToken::parse(&r.body).ok_or_else(|| {
                        self.err(TOKEN_KEY, "token endpoint reply carries no access_token")
                    })
                }
                Ok(r) if retryable(&r) && self.may_retry(attempt, start) => {
                    self.backoff(attempt, Some(&r.headers))
                }
                Ok(r) => {
                    return Err(self.err(
                        TOKEN_KEY,
                        format!(
                            "token endpoint refused the credentials: HTTP {} ({})",
                            r.status,
                            auth::refusal(&r.body)
                        ),
                    ))
                }
                Err(_) if self.may_retry(attempt, start) => self.backoff(attempt, None),
                Err(e) => {
                    return Err(self.err(
                        TOKEN_KEY,
                        format!("token endpoint unreachable after {attempt} attempts: {e}"),
                    ))
                }
            }
        }
    }

    /// Sends an authorized request built by `build`, renewing the token once on a 401 and,
    /// with [`Retry::Yes`], retrying transport errors and retryable statuses. The inner `Err`
    /// is the last transport error.
    pub(super) fn attempt(
        &self,
        retry: Retry,
        build: &dyn Fn() -> reqwest::RequestBuilder,
    ) -> Result<std::result::Result<Reply, String>> {
        let start = Instant::now();
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            let token = self.access_token()?;
            let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| self.err(TOKEN_KEY, "access token is not a valid header value"))?;
            auth.set_sensitive(true);
            match self.exchange(build().header(AUTHORIZATION, auth)) {
                Ok(r) if r.status == 401 && !renewed => {
                    self.invalidate(&token);
                    renewed = true;
                }
                Ok(r) if retry == Retry::Yes && retryable(&r) && self.may_retry(attempt, start) => {
                    self.backoff(attempt, Some(&r.headers))
                }
                Ok(r) => return Ok(Ok(r)),
                Err(_) if retry == Retry::Yes && self.may_retry(attempt, start) => {
                    self.backoff(attempt, None)
                }
                Err(e) => return Ok(Err(format!("{e} (attempt {attempt})"))),
            }
        }
    }

    pub(super) fn call(
        &self,
        key: &str,
        build: &dyn Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply> {
        self.attempt(Retry::Yes, build)?
            .map_err(|e| self.err(key, e))
    }

    /// The reply if its status is one of `ok`, else an error naming key, status and reason.
    pub(super) fn expect(&self, key: &str, r: Reply, ok: &[u16]) -> Result<Reply> {
        if ok.contains(&r.status) {
            Ok(r)
        } else {
            Err(self.status_error(key, &r))
        }
    }

    pub(super) fn status_error(&self, key: &str, r: &Reply) -> Error {
        self.err(key, format!("HTTP {}{}", r.status, drive_reason(&r.body)))
    }

    pub(super) fn may_retry(&self, attempt: u32, start: Instant) -> bool {
        attempt < self.opts.max_attempts && start.elapsed() < self.opts.retry_budget
    }

    /// Full jitter: uniform in [0, min(cap, base·2^(attempt-1))], at least `Retry-After`
    /// (bounded by the cap) when the server sent one.
    pub(super) fn backoff(&self, attempt: u32, headers: Option<&HeaderMap>) {
        let ceiling = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.opts.backoff_cap);
        let mut sleep = ceiling.mul_f64(random_unit());
        let hinted = headers
            .and_then(|h| h.get(reqwest::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(self.opts.backoff_cap));
        if let Some(h) = hinted {
            sleep = sleep.max(h);
        }
        std::thread::sleep(sleep);
    }
}

/// 429, 5xx and the rate-limit 403s may succeed later; nothing else does.
pub(super) fn retryable(r: &Reply) -> bool {
    match r.status {
        408 | 429 | 500..=599 => true,
        403 => matches!(
            drive_error(&r.body).1.as_deref(),
            Some("rateLimitExceeded" | "userRateLimitExceeded")
        ),
        _ => false,
    }
}

/// Drive's `{"error": {"message", "errors": [{"reason"}]}}`: (message, first reason).
fn drive_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let e = &v["error"];
    let msg = e["message"].as_str().map(str::to_string);
    let reason = e["errors"][0]["reason"]
        .as_str()
        .or_else(|| e["status"].as_str())
        .map(str::to_string);
    (msg, reason)
}

/// ` (reason): message`, bounded, for error text.
pub(super) fn drive_reason(body: &[u8]) -> String {
    let (msg, reason) = drive_error(body);
    let mut s = String::new();
    if let Some(r) = reason {
        s.push_str(&format!(" ({r})"));
    }
    if let Some(m) = msg {
        let m: String = m.chars().take(300).collect();
        s.push_str(&format!(": {m}"));
    }
    s
}

/// A transport error's message without its URL (a session URL is a capability) and with its
/// causes (which say what actually broke).
pub(super) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A value in [0, 1) that differs per call (backoff jitter, not cryptography).
pub(super) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(crate::engine::util::now_ns());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        /// Drive's error answers: any body reads as (message, reason) or nothing.
        #[test]
        fn drive_errors_parse_or_say_nothing(text in "[\\[\\]{}:,\"a-z0-9 .\\-]{0,300}") {
            let _ = super::drive_error(text.as_bytes());
        }
    }
}
