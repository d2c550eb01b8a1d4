//! The `store` command line: a thin layer over [`store::Store`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::{
    exit, util::human_bytes, AddOptions, CheckoutOptions, ChunkParams, InitOptions, LinkMode, Store,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure without a more specific code (I/O, index)
  2  bad usage or argument
  3  not inside a store (or `init` where one exists)
  4  a path does not exist, cannot be read, or lies inside .store/
  5  corrupt data (verify found damage, a pack failed a check)
  6  object or hash not found, or hash prefix ambiguous
  7  the store was written by a newer format version
  8  disk full (nothing was committed)
  9  store busy (gc/reindex while another process writes)
 10  partial: some inputs were skipped (special files)";

/// A content-addressed versioning store for scientific and ML workflows.
#[derive(Parser)]
#[command(name = "store", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The .store directory to use (default: $STORE_DIR, else the nearest .store upwards).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// No progress bars or informational messages.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a store (.store/ in the current directory, or --store DIR).
    Init {
        /// Average chunk size in bytes (power of two; min = avg/4, max = avg*4).
        #[arg(long, value_name = "BYTES")]
        chunk_avg: Option<u32>,
        /// zstd compression level for new objects.
        #[arg(long, value_name = "N")]
        zstd_level: Option<i32>,
    },
    /// Add files and directories (recursively); prints the hash of each top-level path.
    Add {
        /// Paths to add.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Show new, modified and deleted files under tracked paths since their last add.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tracked paths, or the entries of a tree.
    Ls {
        /// A tree hash (or unique prefix) to list instead.
        hash: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every version of every tracked path (or of PATH), newest first.
    Log {
        /// A tracked path.
        path: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the content of a file object to stdout.
    Cat {
        /// File hash or unique prefix.
        hash: String,
    },
    /// Restore a file or tree into a directory, verifying every chunk.
    Checkout {
        /// File or tree hash, or unique prefix.
        hash: String,
        /// Destination directory (created if missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// reflink (default; falls back to copy), hardlink (read-only, opt-in) or copy.
        #[arg(long, default_value = "reflink")]
        link: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every object of every pack; name each damaged pack and object.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove what nothing references (dry run unless --yes). Every version of every added
    /// path is kept unless --keep-last limits it.
    Gc {
        /// Actually remove.
        #[arg(long)]
        yes: bool,
        /// Keep only the newest N versions of each added path.
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Logical and stored sizes, dedup and compression ratios.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index from the pack files.
    Reindex,
}

fn main() -> ExitCode {
    // Like other Unix filters, end quietly when the reader of our output goes away
    // (`store cat HASH | head`).
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("store: error: {e:#}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<store::Error>())
                .map_or(exit::FAILURE, |s| s.exit_code());
            ExitCode::from(code as u8)
        }
    }
}

fn open(cli_store: &Option<PathBuf>) -> anyhow::Result<Store> {
    let dir = match cli_store {
        Some(d) => d.clone(),
        None => Store::discover(Path::new("."))?,
    };
    Ok(Store::open(&dir)?)
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let progress = !cli.quiet;
    match cli.cmd {
        Cmd::Init {
            chunk_avg,
            zstd_level,
        } => {
            let dir = match (&cli.store, std::env::var_os("STORE_DIR")) {
                (Some(d), _) => d.clone(),
                (None, Some(d)) => PathBuf::from(d),
                (None, None) => PathBuf::from(store::STORE_DIR_NAME),
            };
            let chunking = chunk_avg.map(ChunkParams::with_avg).transpose()?;
            let s = Store::init(
                &dir,
                &InitOptions {
                    chunking,
                    zstd_level,
                },
            )?;
            if !cli.quiet {
                println!("initialized empty store in {}", s.dir().display());
            }
        }
        Cmd::Add { paths, json } => {
            let s = open(&cli.store)?;
            let r = s.add(&paths, &AddOptions { progress })?;
            for w in &r.warnings {
                eprintln!("store: warning: {w}");
            }
            if json {
                print_json(&r)?;
            } else {
                let mut out = std::io::stdout().lock();
                for a in &r.added {
                    writeln!(out, "{}  {}", a.hash, a.path.display())?;
                }
                if !cli.quiet {
                    eprintln!(
                        "{} files, {} read, {} new objects ({} stored)",
                        r.files,
                        human_bytes(r.bytes_read),
                        r.new_objects,
                        human_bytes(r.new_bytes)
                    );
                }
            }
            if !r.warnings.is_empty() {
                return Ok(exit::PARTIAL);
            }
        }
        Cmd::Status { json } => {
            let s = open(&cli.store)?;
            let st = s.status()?;
            if json {
                print_json(&st)?;
            } else {
                let mut out = std::io::stdout().lock();
                for e in &st {
                    let tag = match e.change {
                        store::Change::New => "new:      ",
                        store::Change::Modified => "modified: ",
                        store::Change::Deleted => "deleted:  ",
                    };
                    writeln!(out, "{tag}{}", e.path)?;
                }
            }
        }
        Cmd::Ls { hash, json } => {
            let s = open(&cli.store)?;
            match hash {
                None => {
                    let roots = s.roots()?;
                    if json {
                        let v: Vec<_> = roots
                            .iter()
                            .map(|r| serde_json::json!({"path": r.path, "kind": r.kind, "hash": r.hash.to_hex(), "size": r.size, "time_ns": r.time_ns}))
                            .collect();
                        print_json(&v)?;
                    } else {
                        let mut out = std::io::stdout().lock();
                        for r in roots {
                            writeln!(
                                out,
                                "{}  {:<4}  {:>10}  {}",
                                r.hash,
                                r.kind,
                                human_bytes(r.size),
                                r.path
                            )?;
                        }
                    }
                }
                Some(h) => {
                    let h = s.resolve(&h)?;
                    let t = s.tree_manifest(&h)?;
                    let rows: Vec<_> = t
                        .entries
                        .iter()
                        .map(|e| {
                            let (kind, target) = match &e.kind {
                                store::manifest::EntryKind::File(h) => ("file", h.to_hex()),
                                store::manifest::EntryKind::Dir(h) => ("tree", h.to_hex()),
                                store::manifest::EntryKind::Symlink(t) => {
                                    ("link", String::from_utf8_lossy(t).into_owned())
                                }
                            };
                            (
                                String::from_utf8_lossy(&e.name).into_owned(),
                                kind,
                                target,
                                e.size,
                                e.mode,
                            )
                        })
                        .collect();
                    if json {
                        let v: Vec<_> = rows
                            .iter()
                            .map(|(n, k, t, s, m)| serde_json::json!({"name": n, "kind": k, "hash_or_target": t, "size": s, "mode": m}))
                            .collect();
                        print_json(&v)?;
                    } else {
                        let mut out = std::io::stdout().lock();
                        for (n, k, t, s, m) in rows {
                            writeln!(out, "{m:06o} {k:<4} {t}  {:>10}  {n}", human_bytes(s))?;
                        }
                    }
                }
            }
        }
        Cmd::Log { path, json } => {
            let s = open(&cli.store)?;
            let key = match &path {
                Some(p) => Some(std::path::absolute(p)?.to_string_lossy().into_owned()),
                None => None,
            };
            let rows = s.history(key.as_deref())?;
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|r| serde_json::json!({"path": r.path, "kind": r.kind, "hash": r.hash.to_hex(), "size": r.size, "time_ns": r.time_ns}))
                    .collect();
                print_json(&v)?;
            } else {
                let mut out = std::io::stdout().lock();
                for r in rows {
                    let secs = r.time_ns / 1_000_000_000;
                    writeln!(
                        out,
                        "{}  {:<4}  {:>10}  t={secs}  {}",
                        r.hash,
                        r.kind,
                        human_bytes(r.size),
                        r.path
                    )?;
                }
            }
        }
        Cmd::Cat { hash } => {
            let s = open(&cli.store)?;
            let h = s.resolve(&hash)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match s.cat(&h, &mut out) {
                Err(store::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => {
                    r?;
                }
            }
            if let Err(e) = out.flush() {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
        Cmd::Checkout {
            hash,
            to,
            link,
            json,
        } => {
            let s = open(&cli.store)?;
            let h = s.resolve(&hash)?;
            let link: LinkMode = link.parse()?;
            let r = s.checkout(&h, &to, &CheckoutOptions { link, progress })?;
            if json {
                print_json(&r)?;
            } else if !cli.quiet {
                println!(
                    "restored {} files ({}) to {} [{} reflinked, {} hard-linked]",
                    r.files,
                    human_bytes(r.bytes),
                    r.path.display(),
                    r.reflinked,
                    r.hardlinked
                );
            }
        }
        Cmd::Verify { json } => {
            let s = open(&cli.store)?;
            let r = s.verify()?;
            if json {
                print_json(&r)?;
            } else {
                for p in &r.problems {
                    match &p.object {
                        Some(o) => eprintln!("CORRUPT pack {} object {}: {}", p.pack, o, p.detail),
                        None => eprintln!("CORRUPT pack {}: {}", p.pack, p.detail),
                    }
                }
                if !cli.quiet {
                    println!(
                        "checked {} packs, {} objects, {}: {}",
                        r.packs,
                        r.objects,
                        human_bytes(r.bytes),
                        if r.problems.is_empty() {
                            "ok".to_string()
                        } else {
                            format!("{} problems", r.problems.len())
                        }
                    );
                }
            }
            if !r.problems.is_empty() {
                return Ok(exit::CORRUPT);
            }
        }
        Cmd::Gc {
            yes,
            keep_last,
            json,
        } => {
            let s = open(&cli.store)?;
            let r = s.gc(yes, keep_last)?;
            if json {
                print_json(&r)?;
            } else {
                let verb = if yes { "removed" } else { "would remove" };
                println!(
                    "{verb}: {} unreferenced objects ({}), {} packs deleted, {} packs repacked, {} orphan packs, {} stale temporary files, {} cached files, {} old versions",
                    r.dead_objects,
                    human_bytes(r.dead_bytes),
                    r.packs_deleted.len(),
                    r.packs_repacked.len(),
                    r.orphan_packs.len(),
                    r.stale_temp_files.len(),
                    r.cache_files.len(),
                    r.versions_dropped
                );
                for p in &r.kept_unreadable_packs {
                    eprintln!("store: warning: kept unreadable pack {p} (run `store verify`)");
                }
                if !yes
                    && (r.dead_objects > 0
                        || !r.orphan_packs.is_empty()
                        || !r.stale_temp_files.is_empty())
                {
                    println!("run `store gc --yes` to remove them");
                }
            }
        }
        Cmd::Stats { json } => {
            let s = open(&cli.store)?;
            let st = s.stats()?;
            if json {
                print_json(&st)?;
            } else {
                println!("tracked paths:     {}", st.roots);
                println!("logical size:      {}", human_bytes(st.logical_bytes));
                println!("unique data:       {}", human_bytes(st.unique_bytes));
                println!("stored (packs):    {}", human_bytes(st.stored_bytes));
                println!("dedup ratio:       {:.2}x", st.dedup_ratio);
                println!("compression ratio: {:.2}x", st.compression_ratio);
                println!("objects / chunks:  {} / {}", st.objects, st.chunks);
                println!("packs:             {}", st.packs);
            }
        }
        Cmd::Reindex => {
            let s = open(&cli.store)?;
            let r = s.reindex().context("reindex")?;
            for p in &r.problems {
                eprintln!("skipped damaged pack {}: {}", p.pack, p.detail);
            }
            if !cli.quiet {
                println!("reindexed {} packs, {} objects", r.packs, r.objects);
            }
            if !r.problems.is_empty() {
                return Ok(exit::CORRUPT);
            }
        }
    }
    Ok(exit::OK)
}
