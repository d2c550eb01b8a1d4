//! The Google Drive backend against a FAKE Drive (`fake.rs`: no real Drive can run here) on
//! 127.0.0.1: the conformance suite, push → clone → lazy checkout through the CLI, every
//! injected fault survived or named, credentials never written. A live test against real
//! Drive runs only when `STORE_TEST_GDRIVE_CREDENTIALS` names a credentials file.

pub(crate) mod fake;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use store::remote::{Backend, GdriveBackend, GdriveOptions, RemoteSpec, CHUNK_QUANTUM};

use crate::common::{pseudo_random, Ws};
use crate::remote::{all_files, conformance, contains, make_runs, push_clone_checkout, Racing};
use fake::{FakeDrive, Fault, Route};

/// Writes a credentials file; returns its path (kept alive by the returned dir).
fn creds_file(content: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tmp");
    let p = d.path().join("credentials.json");
    std::fs::write(&p, content).expect("write credentials");
    (d, p)
}

pub(crate) fn user_creds() -> (tempfile::TempDir, PathBuf) {
    creds_file(&FakeDrive::user_credentials(fake::REFRESH_TOKEN))
}

pub(crate) fn spec(fake: &FakeDrive, url: &str, creds: &Path) -> RemoteSpec {
    let mut options = BTreeMap::new();
    options.insert("api_url".to_string(), fake.base.clone());
    options.insert("token_url".to_string(), fake.token_url());
    options.insert("credentials_file".to_string(), creds.display().to_string());
    RemoteSpec {
        url: url.to_string(),
        options,
    }
}

/// Small chunks (so modest values go up resumably) and short backoffs.
fn fast() -> GdriveOptions {
    GdriveOptions {
        multipart_limit: 64 << 10,
        chunk_size: CHUNK_QUANTUM,
        max_attempts: 8,
        backoff_base: std::time::Duration::from_millis(2),
        backoff_cap: std::time::Duration::from_millis(20),
        retry_budget: std::time::Duration::from_secs(60),
        sessions_dir: None,
    }
}

fn open(fake: &FakeDrive, url: &str, creds: &Path) -> GdriveBackend {
    GdriveBackend::open_with(&spec(fake, url, creds), fast()).expect("open gdrive")
}

/// No two live files share a name in one folder (losers removed their uploads).
fn assert_no_duplicates(fake: &FakeDrive) {
    let mut seen = BTreeMap::new();
    for f in fake.files() {
        if f.mime == fake::FOLDER_MIME {
            continue;
        }
        let n = seen.entry((f.parents.clone(), f.name.clone())).or_insert(0);
        *n += 1;
        assert_eq!(*n, 1, "duplicate file {:?}", fake.path_of(&f.id));
    }
}

fn assert_chunks_aligned(fake: &FakeDrive) {
    for (start, len, total) in fake.chunks() {
        assert!(
            (len as usize).is_multiple_of(CHUNK_QUANTUM) || start + len == total,
            "chunk {start}+{len} of {total}"
        );
    }
}

#[test]
fn gdrive_backend_conforms() {
    let fake = FakeDrive::start();
    // Two items per page: every listing pages.
    fake.set_page_cap(2);
    let (_d, creds) = user_creds();
    // A name with a quote and a backslash checks the query escaping.
    let url = "gdrive://Lab Store/it's a \\ test";
    let b = open(&fake, url, &creds);
    conformance(&b, Racing::OneWinner);
    assert_no_duplicates(&fake);
    assert_chunks_aligned(&fake);
    assert!(
        fake.chunks().len() >= 2,
        "values above the multipart limit go up resumably"
    );
    let race = fake.files_at("My Drive/Lab Store/it's a \\ test/race/key");
    assert_eq!(race.len(), 1);
    // Every file carries its content hash; every upload its nonce.
    for f in fake.files().iter().filter(|f| f.mime != fake::FOLDER_MIME) {
        assert_eq!(
            f.app_properties.get(store::remote::HASH_PROPERTY),
            Some(&blake3::hash(&f.data).to_hex().to_string())
        );
        assert!(f.app_properties.contains_key(store::remote::NONCE_PROPERTY));
    }
    // A second client with cold caches reads the same values.
    let c = open(&fake, url, &creds);
    assert_eq!(
        c.get("a/b/one").expect("get").expect("present"),
        pseudo_random(300_000, 7)
    );
    // (a/b/one, a/two, c/three, race/key, and the two copies)
    assert_eq!(c.list("").expect("list all").len(), 6);
    // The default tuning (multipart below 5 MiB) conforms too, in a shared drive folder.
    fake.set_page_cap(100);
    let shared = fake.shared_folder("team");
    let d = GdriveBackend::open(&spec(&fake, &format!("gdrive://id:{shared}/store"), &creds))
        .expect("open");
    conformance(&d, Racing::OneWinner);
    assert_no_duplicates(&fake);
    // Access tokens travel only in the Authorization header, on every API request.
    for l in fake.log() {
        if l.route != Some(Route::Token) {
            assert!(
                l.authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer ")),
                "{} {}",
                l.method,
                l.target
            );
        }
        assert!(!l.target.contains(fake::ACCESS_PREFIX), "{}", l.target);
        assert!(!l.target.contains(fake::REFRESH_TOKEN), "{}", l.target);
    }
}

#[test]
fn gdrive_remote_push_clone_checkout() {
    let fake = FakeDrive::start();
    let (_d, creds) = user_creds();
    let token_url = fake.token_url();
    let creds_s = creds.display().to_string();
    let extra = [
        "--api-url",
        fake.base.as_str(),
        "--token-url",
        token_url.as_str(),
        "--credentials-file",
        creds_s.as_str(),
    ];
    let (a, b) = push_clone_checkout("gdrive://Lab Store/team's", &extra);
    let top = "My Drive/Lab Store/team's";
    // A person browsing the Drive folder finds each run.
    let manifest = fake.files_at(&format!("{top}/runs/wf/run-01.json"));
    assert_eq!(manifest.len(), 1);
    let m: serde_json::Value = serde_json::from_slice(&manifest[0].data).expect("json");
    assert_eq!(m["run_id"], "run-01");
    assert_eq!(fake.files_at(&format!("{top}/store-remote.json")).len(), 1);
    // The ~9 MB pack went up resumably, in 256 KiB multiples.
    assert!(!fake.chunks().is_empty());
    assert_chunks_aligned(&fake);
    assert_no_duplicates(&fake);
    // No credential in anything the store wrote, locally or on the remote.
    let mut secrets = vec![
        fake::CLIENT_SECRET.to_string(),
        fake::REFRESH_TOKEN.to_string(),
    ];
    secrets.extend(fake.issued_tokens());
    for dir in [a.p(".store"), b.p("ws/.store")] {
        assert_no_secret_in_store(&dir, &secrets);
    }
    for f in fake.files() {
        let plain = if f.name.ends_with(".seg") {
            zstd::stream::decode_all(&f.data[..]).expect("segment")
        } else {
            f.data.clone()
        };
        for s in &secrets {
            assert!(!contains(&plain, s.as_bytes()), "{}", f.name);
        }
    }
    for s in &secrets {
        assert!(!contains(
            &std::fs::read(a.p(".store/remotes.json")).expect("remotes"),
            s.as_bytes()
        ));
    }
}

fn assert_no_secret_in_store(store_dir: &Path, secrets: &[String]) {
    let mut files = Vec::new();
    all_files(store_dir, &mut files);
    for f in files {
        let data = std::fs::read(&f).expect("read");
        for s in secrets {
            assert!(!contains(&data, s.as_bytes()), "{}", f.display());
        }
    }
    for p in crate::common::packs(store_dir) {
        let r = store::pack::PackReader::open(&p).expect("pack");
        for e in r.entries().expect("toc") {
            let data = r.read(&e).expect("object");
            for s in secrets {
                assert!(!contains(&data, s.as_bytes()), "secret in {:?}", e.kind);
            }
        }
    }
}

/// Separate clients (as separate processes are: nothing cached in common) race to create the
/// same folders and keys: one creator per key, duplicate folders are searched too, so every
/// key written is found by a fresh client, and no duplicate file survives.
#[test]
fn gdrive_concurrent_clients() {
    let fake = FakeDrive::start();
    fake.set_page_cap(3);
    let (_d, creds) = user_creds();
    let url = "gdrive://racing";
    let clients: Vec<GdriveBackend> = (0..8).map(|_| open(&fake, url, &creds)).collect();
    let wins: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                s.spawn(move || {
                    // A key of its own in a new folder, and one key everyone wants.
                    let own = format!("packs/ab/{i}.pack");
                    assert!(c.put_new(&own, vec![i as u8; 1000]).expect("own"));
                    c.put_new("packs/ab/shared.pack", vec![i as u8; 300_000])
                        .expect("shared")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    assert_no_duplicates(&fake);
    // Racing creators of one folder leave one folder.
    let mut folders = BTreeMap::new();
    for f in fake.files().iter().filter(|f| f.mime == fake::FOLDER_MIME) {
        *folders.entry(fake.path_of(&f.id)).or_insert(0) += 1;
    }
    assert!(folders.values().all(|n| *n == 1), "{folders:?}");
    let fresh = open(&fake, url, &creds);
    let listed = fresh.list("packs/").expect("list");
    assert_eq!(listed.len(), 9, "{listed:?}");
    let shared = fresh
        .get("packs/ab/shared.pack")
        .expect("get")
        .expect("present");
    for c in &clients {
        assert_eq!(
            c.get("packs/ab/shared.pack").expect("get").as_ref(),
            Some(&shared)
        );
    }
    for i in 0..8u8 {
        assert_eq!(
            fresh
                .get(&format!("packs/ab/{i}.pack"))
                .expect("get")
                .expect("present"),
            vec![i; 1000]
        );
    }
}

/// Eight `store push` processes publish different runs to one Drive remote at once (the first
/// pushes of a fresh remote, so they race to create its folders): every run is complete after.
#[test]
fn gdrive_concurrent_pushers() {
    let fake = FakeDrive::start();
    let (_d, creds) = user_creds();
    let creds_s = creds.display().to_string();
    let token_url = fake.token_url();
    let opts = [
        "--api-url",
        fake.base.as_str(),
        "--token-url",
        token_url.as_str(),
        "--credentials-file",
        creds_s.as_str(),
    ];
    let a = Ws::new();
    let ids = make_runs(&a, "fl", 8, 100_000);
    let mut add = vec!["remote", "add", "origin", "gdrive://many"];
    add.extend_from_slice(&opts);
    a.ok(&add);
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            a.cmd(&["push", "-q", "origin", id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn push")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_no_duplicates(&fake);
    let b = Ws::bare();
    let mut clone = vec!["clone", "gdrive://many", "ws", "--json"];
    clone.extend_from_slice(&opts);
    let c: serde_json::Value = serde_json::from_str(&b.ok(&clone)).expect("json");
    assert_eq!(c["runs"].as_array().expect("runs").len(), 8, "{c}");
    let ws = b.p("ws");
    for id in &ids {
        let to = format!("r/{id}");
        let out = b
            .cmd(&["checkout", id, "--to", &to])
            .current_dir(&ws)
            .output()
            .expect("checkout");
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(ws.join(format!("{to}/out/{id}.bin"))).expect("restored"),
            std::fs::read(a.p(&format!("out/{id}.bin"))).expect("orig")
        );
    }
}

/// Each injected fault is survived: the value arrives whole, once, and reads back exactly.
#[test]
fn gdrive_faults_are_survived() {
    let fake = FakeDrive::start();
    let (_d, creds) = user_creds();
    let url = "gdrive://faults";
    let b = open(&fake, url, &creds);
    let big = pseudo_random(1_100_000, 11); // resumable: 5 chunks of 256 KiB
    let small = pseudo_random(10_000, 12); // multipart
    let cases: Vec<(&str, Route, Fault, usize, &[u8])> = vec![
        ("t/429", Route::List, Fault::Status(429), 2, &small),
        ("t/500", Route::Multipart, Fault::Status(500), 1, &small),
        ("v/503-folder", Route::Create, Fault::Status(503), 1, &small),
        (
            "t/ratelimit",
            Route::Multipart,
            Fault::RateLimit403,
            2,
            &small,
        ),
        (
            "u/ratelimit-list",
            Route::List,
            Fault::RateLimit403,
            1,
            &small,
        ),
        ("t/drop-multipart", Route::Multipart, Fault::Drop, 1, &small),
        // The file is created but the reply is lost: the retry makes a second file of this
        // upload, which put_new removes.
        (
            "t/lost-reply",
            Route::Multipart,
            Fault::DropAfterCommit,
            1,
            &small,
        ),
        ("t/drop-chunk", Route::Chunk, Fault::Drop, 2, &big),
        ("t/chunk-500", Route::Chunk, Fault::Status(500), 1, &big),
        ("t/chunk-429", Route::Chunk, Fault::Status(429), 1, &big),
        (
            "t/chunk-lost-reply",
            Route::Chunk,
            Fault::DropAfterCommit,
            1,
            &big,
        ),
        ("t/session-gone", Route::Chunk, Fault::SessionGone, 1, &big),
        (
            "t/start-503",
            Route::ResumableStart,
            Fault::Status(503),
            1,
            &big,
        ),
        ("t/expired", Route::AnyApi, Fault::ExpireTokens, 1, &small),
        (
            "t/expired-chunk",
            Route::Chunk,
            Fault::ExpireTokens,
            1,
            &big,
        ),
    ];
    for (key, route, fault, times, data) in &cases {
        fake.inject(*route, *fault, *times);
        assert!(
            b.put_new(key, data.to_vec())
                .unwrap_or_else(|e| panic!("{key}: {e}")),
            "{key}: created"
        );
        assert_eq!(fake.pending_faults(), 0, "{key}: fault not met");
        assert_eq!(b.get(key).expect("get").as_deref(), Some(*data), "{key}");
    }
    assert_no_duplicates(&fake);
    assert_chunks_aligned(&fake);
    // A dropped chunk resumed from the unaligned offset the status query reported.
    assert!(
        fake.chunks()
            .iter()
            .any(|(start, _, _)| !(*start as usize).is_multiple_of(CHUNK_QUANTUM)),
        "{:?}",
        fake.chunks()
    );
    // The expired token was renewed (one initial grant, one per expiry).
    assert_eq!(fake.grants(), 3);
    // Faults on reads, and on the token endpoint, with a fresh client.
    let c = open(&fake, url, &creds);
    fake.inject(Route::Token, Fault::Status(500), 1);
    fake.inject(Route::Download, Fault::Status(503), 1);
    fake.inject(Route::Download, Fault::Drop, 1);
    assert_eq!(
        c.get_range("t/drop-chunk", 500_000..700_000)
            .expect("range"),
        &big[500_000..700_000]
    );
    fake.inject(Route::Download, Fault::RateLimit403, 1);
    fake.inject(Route::List, Fault::Status(500), 1);
    assert_eq!(c.get("t/429").expect("get").as_deref(), Some(&small[..]));
    assert_eq!(fake.pending_faults(), 0);
    let keys: Vec<String> = c
        .list("t/")
        .expect("list")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expected = cases.iter().filter(|c| c.0.starts_with("t/")).count();
    assert_eq!(keys.len(), expected, "{keys:?}");
}

/// A non-retryable 4xx fails at once with the key and the reason, and leaves nothing
/// visible; bad credentials are named without being shown.
#[test]
fn gdrive_refusals_are_named() {
    let fake = FakeDrive::start();
    let (_d, creds) = user_creds();
    let b = open(&fake, "gdrive://refusals", &creds);
    assert!(b.put_new("x/ok", b"fine".to_vec()).expect("put"));
    let before = fake
        .log()
        .iter()
        .filter(|l| l.route == Some(Route::Multipart))
        .count();
    fake.inject(Route::Multipart, Fault::Forbidden403, 1);
    let e = b
        .put_new("x/forbidden", b"no".to_vec())
        .expect_err("403 is final");
    let msg = e.to_string();
    assert!(
        msg.contains("x/forbidden")
            && msg.contains("403")
            && msg.contains("insufficientPermissions"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), store::exit::REMOTE);
    let after = fake
        .log()
        .iter()
        .filter(|l| l.route == Some(Route::Multipart))
        .count();
    assert_eq!(after - before, 1, "a 403 is not retried");
    assert_eq!(b.head("x/forbidden").expect("head"), None);
    assert!(fake.files_at("My Drive/refusals/x/forbidden").is_empty());
    // A large upload refused mid-way leaves no file either.
    fake.inject(Route::Chunk, Fault::Forbidden403, 1);
    assert!(b.put_new("x/big", pseudo_random(600_000, 3)).is_err());
    assert_eq!(b.head("x/big").expect("head"), None);

    // Through the CLI: exit 12, the key and status named, no secret shown.
    let ws = Ws::new();
    ws.write("f.bin", &pseudo_random(50_000, 4));
    ws.ok(&["add", "-q", "f.bin"]);
    let creds_s = creds.display().to_string();
    let token_url = fake.token_url();
    ws.ok(&[
        "remote",
        "add",
        "origin",
        "gdrive://cli",
        "--api-url",
        &fake.base,
        "--token-url",
        &token_url,
        "--credentials-file",
        &creds_s,
    ]);
    fake.inject(Route::Multipart, Fault::Forbidden403, 1);
    let out = ws.run(&["push"]);
    assert_eq!(out.status.code(), Some(store::exit::REMOTE));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gdrive://cli") && err.contains("store-remote.json") && err.contains("403"),
        "{err}"
    );
    let mut secrets = vec![
        fake::CLIENT_SECRET.to_string(),
        fake::REFRESH_TOKEN.to_string(),
    ];
    secrets.extend(fake.issued_tokens());
    for s in &secrets {
        assert!(!err.contains(s.as_str()), "{err}");
    }
    // A revoked refresh token: the token endpoint's refusal is named, the token is not.
    let (_d2, revoked) = creds_file(&FakeDrive::user_credentials("1//revoked-rEfresh-token"));
    let revoked_s = revoked.display().to_string();
    ws.ok(&[
        "remote",
        "add",
        "revoked",
        "gdrive://cli",
        "--api-url",
        &fake.base,
        "--token-url",
        &token_url,
        "--credentials-file",
        &revoked_s,
    ]);
    let out = ws.run(&["push", "revoked"]);
    assert_eq!(out.status.code(), Some(store::exit::REMOTE));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(
        !err.contains("rEfresh") && !err.contains(fake::CLIENT_SECRET),
        "{err}"
    );
    // A malformed credentials file is described by field, never quoted.
    let (_d3, broken) = creds_file(
        r#"{"type": "authorized_user", "client_id": 7, "client_secret": "sekrit-value-xyz"}"#,
    );
    let e = GdriveBackend::open(&spec(&fake, "gdrive://cli", &broken))
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("client_id") && !e.to_string().contains("sekrit"),
        "{e}"
    );
    // A folder id that does not exist is a named 404.
    let bad = open(&fake, "gdrive://id:doesNotExist123", &creds);
    let e = bad.put_new("k", b"v".to_vec()).expect_err("404");
    assert!(e.to_string().contains("404"), "{e}");
}

#[test]
fn gdrive_urls_and_options_are_checked() {
    let ws = Ws::new();
    for url in [
        "gdrive://",
        "gdrive://a//b",
        "gdrive://a/../b",
        "gdrive://id:",
        "gdrive://id:bad!id",
        "gdrive://user:pw@folder",
    ] {
        let out = ws.run(&["remote", "add", "o", url]);
        assert_eq!(out.status.code(), Some(store::exit::USAGE), "{url}");
    }
    let out = ws.run(&["remote", "add", "o", "gdrive://x", "--api-url", "ftp://h"]);
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
    ws.ok(&["remote", "add", "o", "gdrive://My Store/sub"]);
    ws.ok(&["remote", "add", "p", "gdrive://id:0AbC-d_9/x"]);
    // No credentials anywhere: named at first use.
    let out = ws
        .cmd(&["push", "o"])
        .env_remove("STORE_GDRIVE_CREDENTIALS")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .output()
        .expect("push");
    assert_eq!(out.status.code(), Some(store::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STORE_GDRIVE_CREDENTIALS"));
}

/// A service account signs a JWT (RS256) for its token; it can store into a shared drive, and
/// is refused with a clear, unretried 403 in My Drive, where it has no quota.
#[test]
fn gdrive_service_account() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let fake = FakeDrive::start();
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).expect("pkcs8");
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let email = "store-sa@project.iam.gserviceaccount.com";
    fake.add_service_account(email, key.public_key().as_ref());
    let (_d, creds) = creds_file(
        &serde_json::json!({
            "type": "service_account",
            "client_email": email,
            "private_key_id": "abc",
            "private_key": pem,
            // The token endpoint comes from the file here (no token_url option).
            "token_uri": fake.token_url(),
        })
        .to_string(),
    );
    let sa_spec = |url: &str| {
        let mut s = spec(&fake, url, &creds);
        s.options.remove("token_url");
        s
    };
    let shared = fake.shared_folder("sa-team");
    let b =
        GdriveBackend::open_with(&sa_spec(&format!("gdrive://id:{shared}")), fast()).expect("open");
    assert!(b.put_new("p/one", pseudo_random(200_000, 1)).expect("put"));
    assert_eq!(
        b.get("p/one").expect("get").expect("present"),
        pseudo_random(200_000, 1)
    );
    assert_eq!(b.list("p/").expect("list").len(), 1);
    assert_eq!(fake.grants(), 1);
    let m = GdriveBackend::open_with(&sa_spec("gdrive://sa-mydrive"), fast()).expect("open");
    let e = m.put_new("p/one", b"x".to_vec()).expect_err("no quota");
    assert!(
        e.to_string().contains("storageQuotaExceeded") && e.to_string().contains("p/one"),
        "{e}"
    );
    // The private key is not in the error either.
    assert!(!e.to_string().contains("PRIVATE KEY"));
}

/// Against real Google Drive, only when credentials are given (never in CI otherwise).
/// `STORE_TEST_GDRIVE_CREDENTIALS` names an authorized_user or service_account file;
/// `STORE_TEST_GDRIVE_FOLDER` optionally names where to work (`id:FOLDER_ID`, needed for a
/// service account: a folder in a shared drive). The test folder is deleted afterwards.
#[test]
fn gdrive_live() {
    let Ok(creds) = std::env::var("STORE_TEST_GDRIVE_CREDENTIALS") else {
        crate::skips::skip(
            "live Google Drive",
            "needs STORE_TEST_GDRIVE_CREDENTIALS (real Drive credentials), so it runs nowhere \
             without them, CI included; the Drive backend is tested against a fake of its API",
            true,
        );
        return;
    };
    let unique = format!(
        "store-live-test-{}-{}",
        std::process::id(),
        store::util::now_ns()
    );
    let url = match std::env::var("STORE_TEST_GDRIVE_FOLDER") {
        Ok(f) if !f.is_empty() => format!("gdrive://{f}/{unique}"),
        _ => format!("gdrive://{unique}"),
    };
    let mut options = BTreeMap::new();
    options.insert("credentials_file".to_string(), creds.clone());
    let spec = RemoteSpec {
        url: url.clone(),
        options,
    };
    let b = GdriveBackend::open(&spec).expect("open live");
    conformance(&b, Racing::OneWinner);
    let big = pseudo_random(6 << 20, 21);
    assert!(b.put_new("big/value", big.clone()).expect("resumable put"));
    assert_eq!(
        b.get_range("big/value", 5_000_000..5_100_000)
            .expect("range"),
        &big[5_000_000..5_100_000]
    );
    b.destroy().expect("clean up");
    let (_a, _b) = push_clone_checkout(&format!("{url}-e2e"), &["--credentials-file", &creds]);
    let mut e2e = spec.clone();
    e2e.url = format!("{url}-e2e");
    GdriveBackend::open(&e2e)
        .expect("open")
        .destroy()
        .expect("clean up");
}

/// A resumable upload killed mid-way (here: its process gives up after a dropped chunk)
/// continues from its session in the next process that uploads the same value: no new
/// session, and only the bytes the server lacks are sent.
#[test]
fn gdrive_a_killed_resumable_upload_continues_from_its_session() {
    let fake = FakeDrive::start();
    let (_d, creds) = user_creds();
    let sessions = tempfile::tempdir().expect("tmp");
    let spec = spec(&fake, "gdrive://resume", &creds);
    let big = pseudo_random(1_100_000, 21); // resumable: 5 chunks of 256 KiB
    let key = "packs/ab/abcdef.pack";
    let first = GdriveBackend::open_with(
        &spec,
        GdriveOptions {
            sessions_dir: Some(sessions.path().to_path_buf()),
            max_attempts: 1,
            ..fast()
        },
    )
    .expect("open");
    // The first chunk's connection drops half-way (the server keeps what arrived), and this
    // process gives up at once: as if it had been killed.
    fake.inject(Route::Chunk, Fault::Drop, 1);
    assert!(first.put_new(key, big.clone()).is_err());
    drop(first);
    let saved: Vec<_> = std::fs::read_dir(sessions.path())
        .expect("sessions")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&saved[0])
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "a session URL is a capability: owner only");
    let sent_before = fake.chunks().len();

    let second = GdriveBackend::open_with(
        &spec,
        GdriveOptions {
            sessions_dir: Some(sessions.path().to_path_buf()),
            ..fast()
        },
    )
    .expect("open");
    assert!(second.put_new(key, big.clone()).expect("upload"));
    assert_eq!(second.get(key).expect("get").expect("there"), big);
    let starts = fake
        .log()
        .iter()
        .filter(|l| l.route == Some(Route::ResumableStart))
        .count();
    assert_eq!(starts, 1, "the second process started a session of its own");
    let resumed = &fake.chunks()[sent_before..];
    let from = resumed.first().expect("chunks sent").0;
    assert!(from > 0, "continued from zero: {resumed:?}");
    let sent: u64 = resumed.iter().map(|c| c.1).sum();
    assert_eq!(sent, big.len() as u64 - from, "{resumed:?}");
    // Done: the session is forgotten; one file, no duplicate.
    assert_eq!(std::fs::read_dir(sessions.path()).expect("dir").count(), 0);
    assert_no_duplicates(&fake);
}
