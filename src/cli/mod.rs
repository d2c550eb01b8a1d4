//! The command line layer: one module per command, each holding its clap arguments and a
//! `run(args, &Ctx)` that turns them into calls on [`store::Store`] and prints the result
//! (human text or `--json`, through [`output`]). The exit status is what `run` returns, or
//! the exit code of the [`store::Error`] behind an error. Parsing and dispatch stay in
//! `main.rs`; nothing here holds state beyond one command.

use std::path::{Path, PathBuf};

use store::Store;

pub mod add;
pub mod augment;
pub mod cat;
pub mod checkout;
pub mod clone;
pub mod config;
pub mod dag;
pub mod diff;
pub mod env;
pub mod gc;
pub mod init;
pub mod lineage;
pub mod log;
pub mod ls;
pub mod metadata;
pub mod mlflow;
pub mod output;
pub mod publish;
pub mod pull;
pub mod push;
pub mod reindex;
pub mod remote;
pub mod remote_du;
pub mod remote_gc;
pub mod remote_sync;
pub mod report;
pub mod rerun;
pub mod run;
pub mod runs;
pub mod seal;
pub mod show;
pub mod site;
pub mod stats;
pub mod status;
pub mod sync;
pub mod track;
pub mod verify;

/// The end of `store --help`: what each exit status means (the codes of [`store::exit`]).
pub const EXIT_CODES: &str = "\
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
 10  partial: some inputs were skipped (special files), or a pull/clone passed over damage
     on its remote (each damaged key and each run not adopted is named)
 11  the run is sealed (recording refused)
 12  a remote failed (unreachable, refused, or an object missing there)";

/// What every command shares: the global options.
pub struct Ctx {
    /// `--store DIR`, if given (else `$STORE_DIR`, else the nearest .store upwards).
    pub store: Option<PathBuf>,
    /// `--quiet`: no progress bars or informational messages.
    pub quiet: bool,
}

impl Ctx {
    /// Progress bars are shown unless `--quiet`.
    pub fn progress(&self) -> bool {
        !self.quiet
    }

    /// The store of `--store`, else the one found from the current directory.
    pub fn open(&self) -> anyhow::Result<Store> {
        let s = Store::open(&self.store_dir()?)?;
        // A clone fetches the objects a command needs and lacks from its default remote.
        store::remote::fetch_on_demand(&s);
        Ok(s)
    }

    /// Like `open`, but a damaged index does not stop it (for `verify` and `reindex`).
    pub fn open_for_repair(&self) -> anyhow::Result<Store> {
        let s = Store::open_for_repair(&self.store_dir()?)?;
        store::remote::fetch_on_demand(&s);
        Ok(s)
    }

    fn store_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.store {
            Some(d) => d.clone(),
            None => Store::discover(Path::new("."))?,
        })
    }
}
