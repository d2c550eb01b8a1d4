//! The one redaction function: what the store captures, stores, uploads, sends to MLflow or
//! prints never carries a secret found inside a value. It replaces with `***`:
//! - the userinfo of a URL (`https://user:pass@host` → `https://***@host`, and a lone token
//!   before `@`);
//! - the value of a secret-looking query or `key=value` parameter (`password`, `passwd`,
//!   `pwd`, `token`, `access_token`, `refresh_token`, `key`, `api_key`, `apikey`, `secret`,
//!   `client_secret`, `sig`, `signature`, `x-amz-signature`, `x-amz-credential`,
//!   `x-amz-security-token`; any case);
//! - the credentials after `Bearer `, `Basic ` and `token ` (Authorization-like values);
//! - well-known token shapes anywhere: GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`,
//!   `github_pat_`), GitLab (`glpat-`), Slack (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`),
//!   AWS access key IDs (`AKIA`/`ASIA` + 16 upper-case letters or digits), and JWTs (three
//!   base64url parts, the first starting `eyJ`).
//!
//! It is applied to environment values and package lists when a job's environment is captured,
//! to errors and warnings, and to remote settings; it does not rewrite the user's own files
//! (workflows and data are recorded as they are).

/// Parameter names whose values are secrets (lower case).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "key",
    "api_key",
    "apikey",
    "secret",
    "client_secret",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Token prefixes whose whole token is a secret.
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
];

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~' | '+' | '/' | '=')
}

/// Redacts every secret this module knows in `text`.
pub fn redact(text: &str) -> String {
    let t = userinfo(text);
    let t = params(&t);
    let t = schemes(&t);
    tokens(&t)
}

/// `scheme://user:pass@` and `scheme://token@`.
fn userinfo(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// `name=value` where name is a secret parameter (after `?`, `&`, `;`, whitespace, a quote or
/// the start).
fn params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let b = text.as_bytes();
    while i < text.len() {
        let at_start = i == 0
            || matches!(
                b[i - 1],
                b'?' | b'&' | b';' | b' ' | b'\t' | b'"' | b'\'' | b',' | b'\n'
            );
        if at_start {
            if let Some(eq) = text[i..].find('=') {
                let name = &text[i..i + eq];
                let lower = name.to_ascii_lowercase();
                let plain = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain
                    && SECRET_PARAMS
                        .iter()
                        .any(|p| lower == *p || lower.ends_with(&format!("_{p}")))
                {
                    out.push_str(name);
                    out.push_str("=***");
                    let v = i + eq + 1;
                    let end = text[v..]
                        .find(|c: char| {
                            c == '&'
                                || c == ';'
                                || c.is_whitespace()
                                || c == '"'
                                || c == '\''
                                || c == ','
                        })
                        .map_or(text.len(), |e| v + e);
                    i = end;
                    continue;
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `Bearer X`, `Basic X`, `token X`.
fn schemes(text: &str) -> String {
    let mut out = text.to_string();
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic ", "token "] {
        let mut from = 0;
        while let Some(i) = out[from..].find(scheme) {
            let v = from + i + scheme.len();
            let end = out[v..]
                .find(|c: char| !token_char(c))
                .map_or(out.len(), |e| v + e);
            if end - v >= 8 && &out[v..end] != "***" {
                out.replace_range(v..end, "***");
            }
            from = v;
        }
    }
    out
}

/// Well-known token shapes.
fn tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let boundary = i == 0 || !token_char(text[..i].chars().next_back().unwrap_or(' '));
        if boundary {
            let rest = &text[i..];
            let word_end = rest.find(|c: char| !token_char(c)).unwrap_or(rest.len());
            let word = &rest[..word_end];
            if is_secret_token(word) {
                out.push_str("***");
                i += word_end;
                continue;
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn is_secret_token(w: &str) -> bool {
    if TOKEN_PREFIXES
        .iter()
        .any(|p| w.starts_with(p) && w.len() >= p.len() + 8)
    {
        return true;
    }
    let aws = (w.starts_with("AKIA") || w.starts_with("ASIA"))
        && w.len() == 20
        && w[4..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let jwt = w.starts_with("eyJ") && w.split('.').filter(|p| p.len() >= 4).count() == 3;
    aws || jwt
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secrets_inside_values_are_redacted() {
        for (input, secret) in [
            ("https://svc:PASSWORD1@host/submit", "PASSWORD1"),
            ("postgres://u:PASSWORD2@h/db", "PASSWORD2"),
            ("http://u:PASSWORD3@proxy:3128", "PASSWORD3"),
            (
                "pkg @ git+https://oauth2:TOKEN4abcdef@host/x.git",
                "TOKEN4abcdef",
            ),
            (
                "https://ghp_abcdefghijklmnop1234@github.com/x",
                "ghp_abcdefghijklmnop1234",
            ),
            ("https://h/x?X-Amz-Signature=SIG5abcdef&a=1", "SIG5abcdef"),
            ("https://h/x?token=TOK6abcdef", "TOK6abcdef"),
            ("password=PW7abcdef other", "PW7abcdef"),
            ("DB_PASSWORD=PW8abcdef", "PW8abcdef"),
            ("Authorization: Bearer BEARER9abcdefgh", "BEARER9abcdefgh"),
            (
                "use ghp_0123456789abcdefABCD now",
                "ghp_0123456789abcdefABCD",
            ),
            ("glpat-abcdefghijklmnop", "glpat-abcdefghijklmnop"),
            ("xoxb-1234567890-abcdefgh", "xoxb-1234567890-abcdefgh"),
            ("key id AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end",
                "eyJhbGciOiJIUzI1NiJ9",
            ),
        ] {
            let r = redact(input);
            assert!(!r.contains(secret), "{input} -> {r}");
            assert!(r.contains("***"), "{input} -> {r}");
        }
        for keep in [
            "https://example.com/path?x=1",
            "numpy==1.26.4",
            "PATH=/usr/bin:/bin",
            "keyboard=us",
            "monkey business",
            "s3://bucket/prefix",
        ] {
            assert_eq!(redact(keep), keep);
        }
    }
}
