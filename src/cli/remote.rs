//! `store remote`: configure remotes; and the non-secret remote options `clone` shares.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use store::remote::RemoteSpec;

use super::output::print_json;
use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add a remote: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// gdrive://folder/path or gdrive://id:FOLDER_ID, or a directory path.
    Add {
        /// Its name.
        name: String,
        /// Its URL.
        url: String,
        #[command(flatten)]
        opts: RemoteOpts,
        /// Make it the default remote.
        #[arg(long)]
        default: bool,
    },
    /// List remotes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set (or with no VALUE, remove) one option of a remote, e.g. `publish true`.
    Set {
        /// Its name.
        name: String,
        /// The option (endpoint, region, allow_http, publish, publish_prefix, …).
        key: String,
        /// Its value.
        value: Option<String>,
    },
    /// Remove a remote (the data on it stays).
    Remove {
        /// Its name.
        name: String,
    },
    /// Delete what no reader will need again from a remote (a dry run unless --yes): packs of
    /// killed pushes and superseded segments older than the grace period, stale partial
    /// uploads; with --keep-last/--older-than, remove runs and reclaim the packs only they need.
    Gc(super::remote_gc::Args),
    /// Bytes and objects a remote holds per workflow and run, shared and unique.
    Du(super::remote_du::Args),
    /// Copy to remote DST what it lacks of remote SRC (packs checked by hash, then one
    /// segment, then run manifests); running it again completes a sync that was stopped.
    Sync(super::remote_sync::Args),
}

/// Non-secret remote options (credentials come from the environment or a credentials file).
#[derive(clap::Args)]
pub struct RemoteOpts {
    /// Endpoint URL of an S3-compatible server.
    #[arg(long)]
    endpoint: Option<String>,
    /// Region.
    #[arg(long)]
    region: Option<String>,
    /// Allow plain HTTP (local servers).
    #[arg(long)]
    allow_http: bool,
    /// Virtual-hosted-style requests (default: path style).
    #[arg(long)]
    virtual_hosted: bool,
    /// A credentials file (its path is stored, never its content): AWS-style keys for S3; a
    /// Google `authorized_user` or `service_account` JSON file for gdrive://.
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// Google Drive API base URL (default https://www.googleapis.com).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// OAuth token endpoint for Google Drive (default https://oauth2.googleapis.com/token).
    #[arg(long, value_name = "URL")]
    token_url: Option<String>,
    /// Let S3, GCS or Azure take credentials from the cloud instance's metadata service
    /// (169.254.169.254 and the like) when none are configured. Off by default: without
    /// credentials the remote fails at once, and no request goes anywhere.
    #[arg(long)]
    instance_metadata: bool,
    /// Each seal also publishes the run as a folder people can browse (see `store publish`).
    #[arg(long)]
    publish: bool,
    /// Where on the remote published runs go (default "published").
    #[arg(long, value_name = "PATH")]
    publish_prefix: Option<String>,
}

impl RemoteOpts {
    /// The remote at `url` with these options, as the store keeps it.
    pub fn spec(self, url: String) -> anyhow::Result<RemoteSpec> {
        let mut options = BTreeMap::new();
        if let Some(v) = self.endpoint {
            options.insert("endpoint".to_string(), v);
        }
        if let Some(v) = self.region {
            options.insert("region".to_string(), v);
        }
        if self.allow_http {
            options.insert("allow_http".to_string(), "true".to_string());
        }
        if self.virtual_hosted {
            options.insert("virtual_hosted".to_string(), "true".to_string());
        }
        if let Some(f) = self.credentials_file {
            let abs = std::path::absolute(&f)?;
            options.insert("credentials_file".to_string(), abs.display().to_string());
        }
        if let Some(v) = self.api_url {
            options.insert("api_url".to_string(), v);
        }
        if let Some(v) = self.token_url {
            options.insert("token_url".to_string(), v);
        }
        if self.instance_metadata {
            options.insert("instance_metadata".to_string(), "true".to_string());
        }
        if self.publish {
            options.insert("publish".to_string(), "true".to_string());
        }
        if let Some(v) = self.publish_prefix {
            options.insert("publish_prefix".to_string(), v);
        }
        // A relative directory remote is kept absolute, so it means the same from anywhere.
        let url = if url.contains("://") {
            url
        } else {
            std::path::absolute(&url)?.display().to_string()
        };
        Ok(RemoteSpec { url, options })
    }
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let cmd = match args.cmd {
        Cmd::Gc(a) => return super::remote_gc::run(a, ctx),
        Cmd::Du(a) => return super::remote_du::run(a, ctx),
        Cmd::Sync(a) => return super::remote_sync::run(a, ctx),
        cmd => cmd,
    };
    let s = ctx.open()?;
    match cmd {
        Cmd::Add {
            name,
            url,
            opts,
            default,
        } => s.remote_add(&name, opts.spec(url)?, default)?,
        Cmd::List { json } => {
            let r = s.remotes()?;
            if json {
                print_json(&r)?;
            } else {
                for (name, spec) in &r.remotes {
                    let mark = if r.default.as_deref() == Some(name) {
                        "*"
                    } else {
                        " "
                    };
                    let opts: Vec<String> = spec
                        .options
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    println!("{mark} {name}\t{}\t{}", spec.url, opts.join(" "));
                }
            }
        }
        Cmd::Set { name, key, value } => s.remote_set_option(&name, &key, value.as_deref())?,
        Cmd::Remove { name } => s.remote_remove(&name)?,
        Cmd::Gc(_) | Cmd::Du(_) | Cmd::Sync(_) => {}
    }
    Ok(store::exit::OK)
}
