//! OAuth 2.0 for the Drive backend: which credentials, and the access token they buy.
//!
//! Two kinds of credentials, both read from a JSON file named by the remote's
//! `credentials_file` option or by `STORE_GDRIVE_CREDENTIALS` or `GOOGLE_APPLICATION_CREDENTIALS`:
//!
//! - `"type": "authorized_user"` (what `gcloud auth application-default login` writes, and
//!   the first-class kind): `client_id`, `client_secret`, `refresh_token`, exchanged at the
//!   token endpoint with `grant_type=refresh_token`;
//! - `"type": "service_account"`: `client_email` and an RSA `private_key` (PEM, PKCS#8) that
//!   signs an RS256 JWT assertion (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
//!   Service accounts have no storage quota of their own: they can only store into shared
//!   drives.
//!
//! Secrets live in memory only. `Debug` redacts them, errors name fields and files but never
//! a value, and the access token goes only into the `Authorization` header.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::error::{Error, Result};

/// The OAuth scope requested for service accounts (user credentials carry the scopes they
/// were consented with; `drive.file` suffices for a folder the store creates).
pub(super) const SCOPE: &str = "https://www.googleapis.com/auth/drive";

/// Environment variables naming a credentials file, in order of preference (after the
/// remote's `credentials_file` option).
pub const CREDENTIAL_ENV: [&str; 2] =
    ["STORE_GDRIVE_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"];

/// Credentials read from a file.
pub(super) enum Credentials {
    /// An OAuth client and a user's refresh token.
    User {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
    /// A service account and its signing key.
    Service {
        client_email: String,
        key: aws_lc_rs::signature::RsaKeyPair,
        token_uri: Option<String>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::User { client_id, .. } => f
                .debug_struct("User")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Credentials::Service { client_email, .. } => f
                .debug_struct("Service")
                .field("client_email", client_email)
                .finish_non_exhaustive(),
        }
    }
}

impl Credentials {
    /// Reads the file the option or the environment names.
    pub(super) fn locate(option: Option<&str>) -> Result<Credentials> {
        let path: PathBuf = match option {
            Some(p) => PathBuf::from(p),
            None => CREDENTIAL_ENV
                .iter()
                .find_map(|v| std::env::var_os(v).filter(|s| !s.is_empty()))
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "no Google Drive credentials: give the remote a credentials_file or set \
                         {} or {} to an authorized_user or service_account JSON file",
                        CREDENTIAL_ENV[0], CREDENTIAL_ENV[1]
                    ))
                })?,
        };
        Credentials::read(&path)
    }

    /// Parses a credentials file. Values are never echoed: a malformed file is described by
    /// the field at fault.
    pub(super) fn read(path: &Path) -> Result<Credentials> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |what: &str| {
            Error::Invalid(format!(
                "{}: not a usable Google credentials file ({what})",
                path.display()
            ))
        };
        // Parsed as a generic value so that no serde message can quote a secret.
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| bad("not valid JSON"))?;
        let field = |name: &str| -> Result<String> {
            match v.get(name).and_then(|x| x.as_str()) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(bad(&format!("missing string field {name:?}"))),
            }
        };
        match v.get("type").and_then(|t| t.as_str()) {
            Some("authorized_user") => Ok(Credentials::User {
                client_id: field("client_id")?,
                client_secret: field("client_secret")?,
                refresh_token: field("refresh_token")?,
            }),
            Some("service_account") => {
                let pem = field("private_key")?;
                let key = rsa_key(pem.as_bytes()).ok_or_else(|| {
                    bad("private_key is not a PEM-encoded PKCS#8 or PKCS#1 RSA key")
                })?;
                Ok(Credentials::Service {
                    client_email: field("client_email")?,
                    key,
                    token_uri: v
                        .get("token_uri")
                        .and_then(|x| x.as_str())
                        .map(str::to_string),
                })
            }
            _ => Err(bad(
                "\"type\" must be \"authorized_user\" or \"service_account\"",
            )),
        }
    }

    /// The token endpoint to use: the remote's option, else the file's, else Google's.
    pub(super) fn token_url(&self, option: Option<&str>) -> String {
        if let Some(u) = option {
            return u.to_string();
        }
        match self {
            Credentials::Service {
                token_uri: Some(u), ..
            } => u.clone(),
            _ => super::DEFAULT_TOKEN_URL.to_string(),
        }
    }

    /// The `application/x-www-form-urlencoded` body of a token request.
    pub(super) fn grant(&self, token_url: &str) -> Result<String> {
        match self {
            Credentials::User {
                client_id,
                client_secret,
                refresh_token,
            } => Ok(form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("refresh_token", refresh_token),
            ])),
            Credentials::Service {
                client_email, key, ..
            } => {
                let jwt = assertion(client_email, key, token_url)?;
                Ok(form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &jwt),
                ]))
            }
        }
    }
}

fn rsa_key(pem: &[u8]) -> Option<aws_lc_rs::signature::RsaKeyPair> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;
    match PrivateKeyDer::from_pem_slice(pem).ok()? {
        PrivateKeyDer::Pkcs8(k) => {
            aws_lc_rs::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).ok()
        }
        PrivateKeyDer::Pkcs1(k) => {
            aws_lc_rs::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()).ok()
        }
        _ => None,
    }
}

/// A signed JWT asking for a one-hour token with [`SCOPE`] (RFC 7523).
fn assertion(
    email: &str,
    key: &aws_lc_rs::signature::RsaKeyPair,
    audience: &str,
) -> Result<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": email,
        "scope": SCOPE,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| Error::Invalid("signing the service-account assertion failed".into()))?;
    Ok(format!("{signing_input}.{}", b64.encode(sig)))
}

/// `application/x-www-form-urlencoded`.
pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An access token and when to stop using it.
pub(super) struct AccessToken {
    pub(super) value: String,
    pub(super) renew_at: Instant,
}

impl AccessToken {
    /// Parses a token endpoint's success reply; renews a minute before expiry.
    pub(super) fn parse(body: &[u8]) -> Option<AccessToken> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let value = v.get("access_token")?.as_str()?.to_string();
        let life = v.get("expires_in").and_then(|x| x.as_u64()).unwrap_or(3600);
        let margin = (life / 10).min(60);
        Some(AccessToken {
            value,
            renew_at: Instant::now() + Duration::from_secs(life.saturating_sub(margin)),
        })
    }

    pub(super) fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// The `error` and `error_description` of a token endpoint's refusal (RFC 6749 5.2): codes
/// and prose, never a credential.
pub(super) fn refusal(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return "no error description".into();
    };
    let code = v.get("error").and_then(|x| x.as_str()).unwrap_or("error");
    match v.get("error_description").and_then(|x| x.as_str()) {
        Some(d) => format!("{code}: {d}"),
        None => code.to_string(),
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        /// Token endpoint answers: any body is a token, a refusal described, or nothing.
        #[test]
        fn token_answers_parse_or_say_nothing(text in "[\\[\\]{}:,\"a-z0-9 .\\-]{0,300}") {
            let _ = super::AccessToken::parse(text.as_bytes());
            let _ = super::refusal(text.as_bytes());
        }
    }
}
