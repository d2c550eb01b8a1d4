//! The fake's uploads: strict `multipart/related` parsing, and resumable sessions that
//! enforce 256 KiB-multiple chunks starting at the committed offset, answer 308 with `Range`,
//! report status to `bytes */N`, and keep an unaligned part of a chunk cut off mid-body.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::wire::{bad, drive_error, not_found, Req, Resp};
use super::{create, file_reply, Principal, State, UploadSession, QUANTUM};

/// A connection dropped mid-chunk: the session keeps an unaligned part of what arrived.
pub(super) fn keep_partial_chunk(state: &Arc<Mutex<State>>, req: &Req, part: &[u8]) {
    let mut st = state.lock().expect("state");
    let Some(id) = req.query.get("upload_id") else {
        return;
    };
    let Some((start, _, _)) = req.header("content-range").and_then(parse_content_range) else {
        return;
    };
    if let Some(s) = st.sessions.get_mut(id) {
        if s.received.len() as u64 == start && s.done.is_none() {
            let keep = part.len() / 3 + 17;
            s.received.extend_from_slice(&part[..keep.min(part.len())]);
        }
    }
}

/// `bytes a-b/N` → (a, Some(b), N); `bytes */N` → (0, None, N) flagged by `None`.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>, u64)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total: u64 = total.parse().ok()?;
    if range == "*" {
        return Some((0, None, total));
    }
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, Some(b.parse().ok()?), total))
}

pub(super) fn multipart(st: &mut State, req: &Req, principal: &Principal) -> Resp {
    let Some(boundary) = req
        .header("content-type")
        .and_then(|c| c.strip_prefix("multipart/related; boundary="))
        .map(|b| b.trim_matches('"').to_string())
    else {
        return bad("multipart/related with a boundary expected");
    };
    let delim = format!("--{boundary}").into_bytes();
    let body = &req.body[..];
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let parse = || -> Option<(Vec<u8>, Vec<u8>)> {
        let rest = body.strip_prefix(&delim[..])?.strip_prefix(b"\r\n")?;
        let mut sep = b"\r\n".to_vec();
        sep.extend_from_slice(&delim);
        let i = find(rest, &sep)?;
        let part1 = &rest[..i];
        let rest = rest[i + sep.len()..].strip_prefix(b"\r\n")?;
        let mut end = sep.clone();
        end.extend_from_slice(b"--");
        let j = find(rest, &end)?;
        let part2 = &rest[..j];
        let tail = &rest[j + end.len()..];
        if !(tail.is_empty() || tail == b"\r\n") || find(part2, &delim).is_some() {
            return None;
        }
        let split = |p: &[u8]| -> Option<(String, Vec<u8>)> {
            let k = find(p, b"\r\n\r\n")?;
            Some((
                String::from_utf8_lossy(&p[..k]).to_ascii_lowercase(),
                p[k + 4..].to_vec(),
            ))
        };
        let (h1, meta) = split(part1)?;
        let (_h2, media) = split(part2)?;
        if !h1.contains("content-type: application/json") {
            return None;
        }
        Some((meta, media))
    };
    let Some((meta, media)) = parse() else {
        return bad("malformed multipart body");
    };
    let Ok(meta) = serde_json::from_slice::<Value>(&meta) else {
        return bad("metadata part is not JSON");
    };
    match create(
        st,
        req,
        principal,
        &meta,
        Some(media),
        req.flag("supportsAllDrives"),
    ) {
        Ok(id) => file_reply(st, &id, req.query.get("fields")),
        Err(r) => r,
    }
}

pub(super) fn resumable_start(st: &mut State, req: &Req, principal: &Principal) -> Resp {
    let Ok(meta) = serde_json::from_slice::<Value>(&req.body) else {
        return bad("metadata is not JSON");
    };
    let Some(total) = req
        .header("x-upload-content-length")
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return bad("X-Upload-Content-Length expected");
    };
    // Validate the metadata now, as Drive does, by a dry run on a scratch copy.
    let parent_ok = meta["parents"][0].as_str().is_some_and(|p| {
        let p = if p == "root" { st.root.as_str() } else { p };
        st.files
            .get(p)
            .is_some_and(|f| f.drive.is_none() || req.flag("supportsAllDrives"))
    });
    if !parent_ok {
        return not_found(meta["parents"][0].as_str().unwrap_or("?"));
    }
    let id = st.random_id();
    st.sessions.insert(
        id.clone(),
        UploadSession {
            meta,
            total,
            received: Vec::new(),
            principal: principal.clone(),
            supports_all: req.flag("supportsAllDrives"),
            fields: req.query.get("fields").cloned(),
            done: None,
        },
    );
    Resp::empty(200).header(
        "Location",
        format!(
            "{}/upload/drive/v3/files?uploadType=resumable&upload_id={id}",
            st.base
        ),
    )
}

pub(super) fn chunk(st: &mut State, req: &Req) -> Resp {
    let id = req.query.get("upload_id").cloned().unwrap_or_default();
    let Some(s) = st.sessions.get(&id) else {
        return drive_error(404, "notFound", "Upload session not found.");
    };
    if let Some(done) = s.done.clone() {
        let fields = s.fields.clone();
        return file_reply(st, &done, fields.as_ref());
    }
    let Some((start, end, total)) = req.header("content-range").and_then(parse_content_range)
    else {
        return bad("Content-Range expected");
    };
    if total != s.total {
        return bad("total size differs from X-Upload-Content-Length");
    }
    let have = s.received.len() as u64;
    let Some(end) = end else {
        if !req.body.is_empty() {
            return bad("a status query has no body");
        }
        let r = Resp::empty(308);
        return if have > 0 {
            r.header("Range", format!("bytes=0-{}", have - 1))
        } else {
            r
        };
    };
    let len = req.body.len() as u64;
    if end < start || end - start + 1 != len || end >= total {
        return bad("Content-Range does not match the body");
    }
    if start != have {
        return bad(&format!(
            "chunk starts at {start}, but {have} bytes are committed"
        ));
    }
    if end + 1 != total && !(len as usize).is_multiple_of(QUANTUM) {
        return bad("chunk size must be a multiple of 256 KiB except for the last chunk");
    }
    st.chunks.push((start, len, total));
    let s = st.sessions.get_mut(&id).expect("session");
    s.received.extend_from_slice(&req.body);
    if (s.received.len() as u64) < total {
        let n = s.received.len() as u64;
        return Resp::empty(308).header("Range", format!("bytes=0-{}", n - 1));
    }
    let meta = s.meta.clone();
    let data = std::mem::take(&mut s.received);
    let principal = s.principal.clone();
    let supports_all = s.supports_all;
    let fields = s.fields.clone();
    match create(st, req, &principal, &meta, Some(data), supports_all) {
        Ok(fid) => {
            if let Some(s) = st.sessions.get_mut(&id) {
                s.done = Some(fid.clone());
            }
            file_reply(st, &fid, fields.as_ref())
        }
        Err(r) => r,
    }
}
