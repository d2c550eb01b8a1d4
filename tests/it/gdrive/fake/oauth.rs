//! The fake OAuth token endpoint: the refresh-token grant (client id, secret and refresh
//! token checked) and the JWT-bearer grant (RS256 signature verified against the service
//! account's public key; `iss`, `aud`, `scope`, `iat` and `exp` checked).

use base64::Engine as _;
use serde_json::{json, Value};

use super::wire::{parse_form, Req, Resp};
use super::{Principal, State, ACCESS_PREFIX, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

pub(super) fn token(st: &mut State, req: &Req) -> Resp {
    if req.header("content-type") != Some("application/x-www-form-urlencoded") {
        return Resp::json(400, json!({"error": "invalid_request"}));
    }
    let form = parse_form(&String::from_utf8_lossy(&req.body));
    let refuse =
        |code: u16, e: &str, d: &str| Resp::json(code, json!({"error": e, "error_description": d}));
    let principal = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return refuse(401, "invalid_client", "The OAuth client was not found.");
            }
            if form.get("refresh_token").map(String::as_str) != Some(REFRESH_TOKEN) {
                return refuse(400, "invalid_grant", "Bad Request");
            }
            Principal::User
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let token_url = format!("{}/token", st.base);
            match form.get("assertion").map(|a| check_jwt(st, a, &token_url)) {
                Some(Ok(())) => Principal::Service,
                Some(Err(why)) => return refuse(400, "invalid_grant", why),
                None => return refuse(400, "invalid_request", "no assertion"),
            }
        }
        _ => return refuse(400, "unsupported_grant_type", "Invalid grant_type"),
    };
    st.grants += 1;
    let token = format!("{ACCESS_PREFIX}{}", st.random_id());
    st.tokens.insert(token.clone(), (principal, false));
    Resp::json(
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn check_jwt(st: &State, jwt: &str, audience: &str) -> Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("Invalid JWT: not three parts.");
    }
    let header: Value = b64
        .decode(parts[0])
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("Invalid JWT header.")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT algorithm.");
    }
    let claims: Value = b64
        .decode(parts[1])
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("Invalid JWT claims.")?;
    let iss = claims["iss"].as_str().ok_or("Invalid JWT: no iss.")?;
    let key = st
        .service_accounts
        .get(iss)
        .ok_or("Invalid JWT: unknown iss.")?;
    let sig = b64
        .decode(parts[2])
        .map_err(|_| "Invalid JWT signature encoding.")?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        key,
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
    .map_err(|_| "Invalid JWT Signature.")?;
    if claims["aud"] != audience {
        return Err("Invalid JWT: wrong aud.");
    }
    let scope = claims["scope"].as_str().unwrap_or("");
    if !scope
        .split(' ')
        .any(|s| s.starts_with("https://www.googleapis.com/auth/drive"))
    {
        return Err("Invalid JWT: no Drive scope.");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    if exp <= now || exp > iat + 3600 || iat > now + 60 {
        return Err("Invalid JWT: bad iat/exp.");
    }
    Ok(())
}
