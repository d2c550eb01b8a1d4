//! S3 and S3-compatible stores, Google Cloud Storage and Azure Blob Storage, through
//! `object_store` (the only module that uses it). Credentials come from the standard
//! environment variables of each service (`AWS_*`, `GOOGLE_*`, `AZURE_*`) or, for S3, from a
//! credentials file named in the remote's options; they are never stored by `store`.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path as OsPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{remote_error, Backend, Listed, RemoteSpec};
use crate::error::{Error, Result};

/// Whether the S3 client has credentials of its own, so that object_store would not fall back
/// to the instance metadata service (the order of its `build`).
fn has_s3_credentials(b: &object_store::aws::AmazonS3Builder) -> bool {
    use object_store::aws::AmazonS3ConfigKey as K;
    let set = |k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
    set(K::AccessKeyId)
        || set(K::SecretAccessKey)
        || set(K::SkipSignature) && b.get_config_value(&K::SkipSignature).as_deref() == Some("true")
        || set(K::WebIdentityTokenFile) && set(K::RoleArn)
        || set(K::ContainerCredentialsRelativeUri)
        || set(K::ContainerCredentialsFullUri)
}

/// Whether the environment names credentials for GCS or Azure (else object_store would ask
/// the instance metadata service).
fn has_cloud_credentials(scheme: &str) -> bool {
    let vars: &[&str] = if scheme == "gs" {
        &[
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_SKIP_SIGNATURE",
        ]
    } else {
        &[
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_TOKEN",
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_STORAGE_USE_EMULATOR",
            "AZURE_SKIP_SIGNATURE",
        ]
    };
    vars.iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// A remote in an object store.
pub struct ObjectStoreBackend {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// Templates of the https pages of a key (`{key}` is replaced by the full key, escaped).
    web: Vec<String>,
    requests: AtomicU64,
}

impl ObjectStoreBackend {
    /// Builds the client for `spec` (no request is made).
    pub fn open(spec: &RemoteSpec) -> Result<ObjectStoreBackend> {
        let url = spec.url.clone();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::Invalid(format!("{url}: not a URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Invalid(format!(
                "{url}: no bucket or container named"
            )));
        }
        let bucket_url = format!("{scheme}://{bucket}");
        let err = |e: object_store::Error| remote_error(&url, "", e);
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(&bucket_url);
                if let Some(e) = spec.options.get("endpoint") {
                    b = b.with_endpoint(e);
                }
                if let Some(r) = spec.options.get("region") {
                    b = b.with_region(r);
                }
                if spec.flag("allow_http") {
                    b = b.with_allow_http(true);
                }
                if spec.flag("virtual_hosted") {
                    b = b.with_virtual_hosted_style_request(true);
                }
                if let Some(f) = spec.options.get("credentials_file") {
                    let creds = read_credentials(std::path::Path::new(f))?;
                    if let Some(v) = creds.key_id {
                        b = b.with_access_key_id(v);
                    }
                    if let Some(v) = creds.secret {
                        b = b.with_secret_access_key(v);
                    }
                    if let Some(v) = creds.token {
                        b = b.with_token(v);
                    }
                }
                if !spec.flag("instance_metadata") && !has_s3_credentials(&b) {
                    return Err(Error::Remote {
                        remote: url.clone(),
                        detail: "no S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                                 a credentials file, web identity or container credentials); the \
                                 instance metadata service is not asked unless the remote is \
                                 added with --instance-metadata"
                            .into(),
                    });
                }
                Arc::new(b.build().map_err(err)?)
            }
            "gs" | "az" | "azure" | "abfs" | "abfss"
                if !spec.flag("instance_metadata") && !has_cloud_credentials(scheme) =>
            {
                return Err(Error::Remote {
                    remote: url.clone(),
                    detail: format!(
                        "no credentials in the environment ({}); the instance metadata service \
                         is not asked unless the remote is added with --instance-metadata",
                        if scheme == "gs" {
                            "GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS, ..."
                        } else {
                            "AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, AZURE_CLIENT_SECRET, ..."
                        }
                    ),
                });
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(&bucket_url)
                    .build()
                    .map_err(err)?,
            ),
            _ => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(&bucket_url)
                    .build()
                    .map_err(err)?,
            ),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("<tokio runtime>", e))?;
        let prefix = prefix.trim_matches('/').to_string();
        let web = web_templates(scheme, bucket, spec);
        Ok(ObjectStoreBackend {
            rt,
            store,
            prefix,
            url,
            web,
            requests: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &str) -> OsPath {
        if self.prefix.is_empty() {
            OsPath::from(key)
        } else {
            OsPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn err(&self, key: &str, e: impl std::fmt::Display) -> Error {
        remote_error(&self.url, key, e)
    }

    fn count(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }
}

impl Backend for ObjectStoreBackend {
    fn put_new(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        self.count(1);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let r = self.rt.block_on(self.store.put_opts(
            &self.path(key),
            PutPayload::from(data),
            opts,
        ));
        match r {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.count(1);
        let r = self.rt.block_on(async {
            let g = self.store.get(&self.path(key)).await?;
            g.bytes().await
        });
        match r {
            Ok(b) => Ok(Some(Vec::from(b))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.count(1);
        let want = range.end - range.start;
        let b = self
            .rt
            .block_on(self.store.get_range(&self.path(key), range))
            .map_err(|e| self.err(key, e))?;
        if b.len() as u64 != want {
            return Err(self.err(key, format!("short read: {} of {want} bytes", b.len())));
        }
        Ok(Vec::from(b))
    }

    fn head(&self, key: &str) -> Result<Option<u64>> {
        self.count(1);
        match self.rt.block_on(self.store.head(&self.path(key))) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_aged(prefix)?
            .into_iter()
            .map(|l| (l.key, l.size))
            .collect())
    }

    fn list_aged(&self, prefix: &str) -> Result<Vec<Listed>> {
        let p = self.path(prefix.trim_end_matches('/'));
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.store.list(Some(&p)).try_collect())
            .map_err(|e| self.err(prefix, e))?;
        // One request per page of 1,000 keys.
        self.count(1 + metas.len() as u64 / 1000);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let now = std::time::SystemTime::now();
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let k = m.location.to_string();
                let written = std::time::SystemTime::from(m.last_modified);
                // The client %-encodes what object stores advise against (`%`, `\\`, `~`, `.`
                // and `..` as whole components…) in the keys it writes; a listing names them
                // as written, so they are decoded back into the keys this program uses.
                k.strip_prefix(&strip).map(|k| Listed {
                    key: percent_decode(k),
                    size: m.size,
                    age: Some(now.duration_since(written).unwrap_or_default()),
                })
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.count(1);
        // DeleteObject removes the whole object at once, and succeeds for an absent key.
        match self.rt.block_on(self.store.delete(&self.path(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn copy(&self, from: &str, to: &str) -> Result<bool> {
        self.count(1);
        match self
            .rt
            .block_on(self.store.copy(&self.path(from), &self.path(to)))
        {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(to, e)),
        }
    }

    fn urls(&self, key: &str) -> Result<Vec<String>> {
        let full = self.path(key).to_string();
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("s3", &self.url));
        let bucket = rest.split('/').next().unwrap_or(rest);
        let mut urls = vec![format!("{scheme}://{bucket}/{full}")];
        let escaped = super::escape_url_path(&full);
        urls.extend(self.web.iter().map(|t| t.replace("{key}", &escaped)));
        Ok(urls)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// The https pages of an object of bucket `bucket` (`{key}` stands for its key): for S3 with an
/// `endpoint`, the path-style URL on it; on AWS the virtual-hosted URL and the console's page;
/// the Cloud Storage console's URL; an Azure account's blob URL (when the account is known).
fn web_templates(scheme: &str, bucket: &str, spec: &RemoteSpec) -> Vec<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match scheme {
        "s3" | "s3a" => match spec.options.get("endpoint") {
            Some(e) if spec.flag("virtual_hosted") => {
                vec![format!("{}/{{key}}", e.trim_end_matches('/'))]
            }
            Some(e) => vec![format!("{}/{bucket}/{{key}}", e.trim_end_matches('/'))],
            None => {
                let region = spec
                    .options
                    .get("region")
                    .cloned()
                    .or_else(|| env("AWS_REGION"))
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into());
                vec![
                    format!("https://{bucket}.s3.{region}.amazonaws.com/{{key}}"),
                    format!("https://s3.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={{key}}"),
                ]
            }
        },
        "gs" => vec![format!("https://storage.cloud.google.com/{bucket}/{{key}}")],
        _ => {
            if env("AZURE_STORAGE_USE_EMULATOR").is_some_and(|v| v == "true") {
                let account =
                    env("AZURE_STORAGE_ACCOUNT_NAME").unwrap_or_else(|| "devstoreaccount1".into());
                let base = env("AZURITE_BLOB_STORAGE_URL")
                    .unwrap_or_else(|| "http://127.0.0.1:10000".into());
                vec![format!(
                    "{}/{account}/{bucket}/{{key}}",
                    base.trim_end_matches('/')
                )]
            } else if let Some(account) = env("AZURE_STORAGE_ACCOUNT_NAME") {
                vec![format!(
                    "https://{account}.blob.core.windows.net/{bucket}/{{key}}"
                )]
            } else {
                Vec::new()
            }
        }
    }
}

struct Credentials {
    key_id: Option<String>,
    secret: Option<String>,
    token: Option<String>,
}

/// Reads an AWS-style credentials file (`aws_access_key_id = …` lines; the
/// first profile that has keys). Its content never leaves this function except into the client.
fn read_credentials(path: &std::path::Path) -> Result<Credentials> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut c = Credentials {
        key_id: None,
        secret: None,
        token: None,
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            // The first profile with keys is the one used.
            if c.key_id.is_some() {
                break;
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => c.key_id = Some(v),
                "aws_secret_access_key" => c.secret = Some(v),
                "aws_session_token" => c.token = Some(v),
                _ => {}
            }
        }
    }
    if c.key_id.is_none() || c.secret.is_none() {
        return Err(Error::Invalid(format!(
            "{}: no aws_access_key_id and aws_secret_access_key found",
            path.display()
        )));
    }
    Ok(c)
}

/// Undoes `object_store`'s %-encoding of a key (`%XX` to the byte; anything else as is).
fn percent_decode(k: &str) -> String {
    if !k.contains('%') {
        return k.to_string();
    }
    let b = k.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn listed_keys_are_decoded_as_the_client_encoded_them() {
        use object_store::path::Path;
        for key in [
            "a/b.pack",
            "v/%2E%2E/x%25y",
            "runs/w%20f/r.json",
            "a/~b/..",
            "é/[x]",
        ] {
            assert_eq!(super::percent_decode(Path::from(key).as_ref()), key);
        }
        assert_eq!(super::percent_decode("a%2"), "a%2");
        assert_eq!(super::percent_decode("a%zz"), "a%zz");
    }
}
