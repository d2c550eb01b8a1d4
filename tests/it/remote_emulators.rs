//! Azure Blob Storage and Google Cloud Storage against real servers on loopback. Azure: Azurite
//! (the Azure Storage emulator, started by `tests/run.sh`; `STORE_TEST_AZURE_ENDPOINT` names it,
//! `STORE_TEST_AZURE_CONTAINER` its container), reached the way a user reaches an emulator
//! (`AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`); under `CI=true` a missing
//! Azurite is a failure. GCS: no server here can stand in for it (see [`GCS_UNTESTED`]), so
//! the GCS tests skip loudly, in CI too, unless `STORE_TEST_GCS_ENDPOINT` and
//! `STORE_TEST_GCS_BUCKET` name a server speaking the GCS XML API (such as fake-gcs-server);
//! it is reached through a service-account file named by `GOOGLE_SERVICE_ACCOUNT` that carries
//! `gcs_base_url` and `disable_oauth`.

use store::remote::RemoteSpec;

use crate::remote::{conformance, push_clone_checkout, Racing};

/// Why the GCS tests do not run here: the one GCS emulator installable here (PyPI's
/// gcp-storage-emulator) does not implement what `object_store`'s GCS client sends.
const GCS_UNTESTED: &str = "no GCS server here: gcp-storage-emulator 2026.7.19 (PyPI) answers \
    object_store's HEAD /BUCKET/OBJECT and DELETE /BUCKET/OBJECT with 501, ignores \
    x-goog-if-generation-match: 0 on PUT (a second create replaces the object), and answers 501 \
    to any bucket name object_store percent-encodes (store%2Dtest); set STORE_TEST_GCS_ENDPOINT \
    and STORE_TEST_GCS_BUCKET to a server with the GCS XML API (e.g. fake-gcs-server)";

/// `(endpoint, container or bucket)` from the environment, or None (skip).
fn server(
    group: &'static str,
    endpoint: &str,
    bucket: &str,
    why: &str,
    even_in_ci: bool,
) -> Option<(String, String)> {
    match (std::env::var(endpoint), std::env::var(bucket)) {
        (Ok(e), Ok(b)) if !e.is_empty() && !b.is_empty() => Some((e, b)),
        _ => {
            crate::skips::skip(group, why, even_in_ci);
            None
        }
    }
}

/// A key prefix no other test (nor an earlier run against the same server) uses.
fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    )
}

/// Points this process, and the store commands it starts, at Azurite. The same values in
/// every test, so setting them from several threads is harmless.
fn azurite() -> Option<String> {
    let (ep, container) = server(
        "Azure",
        "STORE_TEST_AZURE_ENDPOINT",
        "STORE_TEST_AZURE_CONTAINER",
        "no Azure server (STORE_TEST_AZURE_ENDPOINT, STORE_TEST_AZURE_CONTAINER); \
         `bash tests/run.sh` starts Azurite",
        false,
    )?;
    std::env::set_var("AZURE_STORAGE_USE_EMULATOR", "true");
    std::env::set_var("AZURITE_BLOB_STORAGE_URL", &ep);
    Some(container)
}

/// Points this process, and the store commands it starts, at a GCS test server: a
/// service-account file that names the server and turns OAuth off.
fn gcs() -> Option<String> {
    let (ep, bucket) = server(
        "GCS",
        "STORE_TEST_GCS_ENDPOINT",
        "STORE_TEST_GCS_BUCKET",
        GCS_UNTESTED,
        true,
    )?;
    let path = std::env::temp_dir().join(format!("store-test-gcs-{}.json", std::process::id()));
    let account = serde_json::json!({
        "gcs_base_url": ep,
        "disable_oauth": true,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    });
    std::fs::write(&path, account.to_string()).expect("write service account");
    std::env::set_var("GOOGLE_SERVICE_ACCOUNT", &path);
    Some(bucket)
}

fn open(url: String) -> Box<dyn store::remote::Backend> {
    RemoteSpec {
        url,
        options: Default::default(),
    }
    .open()
    .expect("open remote")
}

#[test]
fn azure_backend_conforms() {
    let Some(container) = azurite() else { return };
    let b = open(format!("az://{container}/{}", unique("conf")));
    conformance(&*b, Racing::OneWinner);
}

#[test]
fn azure_remote_push_clone_checkout() {
    let Some(container) = azurite() else { return };
    push_clone_checkout(&format!("az://{container}/{}", unique("e2e")), &[]);
}

#[test]
fn gcs_backend_conforms() {
    let Some(bucket) = gcs() else { return };
    let b = open(format!("gs://{bucket}/{}", unique("conf")));
    conformance(&*b, Racing::OneWinner);
}

#[test]
fn gcs_remote_push_clone_checkout() {
    let Some(bucket) = gcs() else { return };
    push_clone_checkout(&format!("gs://{bucket}/{}", unique("e2e")), &[]);
}
