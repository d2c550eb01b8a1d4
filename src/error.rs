//! The library's one error type. Every variant carries the path, hash or object it is about,
//! and maps to a documented process exit code ([`Error::exit_code`]).

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `.store` directory was found from `start` upwards.
    #[error("not inside a store: no .store directory in {start} or any parent (run `store init`)")]
    NotAStore {
        /// Where the search started.
        start: PathBuf,
    },
    /// `store init` on a directory that already holds a store.
    #[error("a store already exists at {0}")]
    AlreadyExists(PathBuf),
    /// A path given by the user does not exist.
    #[error("{0}: no such file or directory")]
    PathNotFound(PathBuf),
    /// A path could not be read or written for lack of permission.
    #[error("{0}: permission denied")]
    PermissionDenied(PathBuf),
    /// A path inside the store's own directory was given to `add`.
    #[error("{0}: is inside the store directory and cannot be added")]
    InsideStore(PathBuf),
    /// The disk (or quota) is full; nothing partial became visible.
    #[error("{path}: no space left on device (nothing was committed)")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Any other I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A string that is not a valid (prefix of a) hash.
    #[error("{0:?} is not a hash (expected hex digits)")]
    BadHash(String),
    /// A hash prefix that matches more than one object.
    #[error("hash prefix {0} is ambiguous")]
    AmbiguousHash(String),
    /// An object that the index does not know.
    #[error("object {0} not found in the store")]
    ObjectNotFound(String),
    /// Stored data failed a check: bad magic, bad checksum, truncated, wrong hash.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// The pack file, object or index involved.
        what: String,
        /// What exactly is wrong.
        detail: String,
    },
    /// The store or a pack was written by a newer version of this program.
    #[error("{what} has format version {found}, newer than the {supported} this program supports; upgrade store")]
    NewerFormat {
        /// The file involved.
        what: String,
        /// The version found.
        found: u32,
        /// The newest version supported.
        supported: u32,
    },
    /// An error from the SQLite index.
    #[error("index {context}: {detail}")]
    Index {
        /// What the index was doing.
        context: String,
        /// The SQLite message.
        detail: String,
    },
    /// The store is locked by a conflicting operation (e.g. `gc` while adds run).
    #[error("the store is busy: {0}")]
    Busy(String),
    /// Recording into a run that is already sealed.
    #[error("run {0} is sealed: its snapshot is immutable, record into a new run")]
    RunSealed(String),
    /// A run ID (prefix) that matches no run or more than one.
    #[error("{0}")]
    RunNotFound(String),
    /// A manifest path that would escape the checkout directory.
    #[error("refusing unsafe path {0:?} in run manifest (absolute or contains ..)")]
    UnsafePath(String),
    /// A checkout would write through a symbolic link below its target directory (one that
    /// was there before, or one restored earlier in the same checkout): never followed.
    #[error("refusing to write through symbolic link {0} (a checkout never follows a link below its target directory)")]
    SymlinkInPath(PathBuf),
    /// A file exists at a checkout destination with other content.
    #[error("{0} exists with different content (use --force to overwrite)")]
    WouldOverwrite(std::path::PathBuf),
    /// A git operation (code or metadata versioning) failed.
    #[error("{0}")]
    Git(String),
    /// A bad argument or configuration value.
    #[error("{0}")]
    Invalid(String),
    /// A job of a workflow run here failed (its exit status and the end of its stderr).
    #[error("job {job} of run {run} failed: {why}")]
    JobFailed {
        /// The run.
        run: String,
        /// The job.
        job: String,
        /// Its exit status and the end of its stderr.
        why: String,
    },
    /// A remote failed or refused a request (the detail never carries a credential).
    #[error("remote {remote}: {detail}")]
    Remote {
        /// The remote's name or URL (without credentials).
        remote: String,
        /// What failed, and on which key.
        detail: String,
    },
    /// A sub-workflow (a Pegasus `pegasusWorkflow` job) whose file is missing, unreadable or
    /// malformed; the exit code is that of `cause`.
    #[error("{}: sub-workflow job {job} (file {file}): {cause}", .parent.display())]
    SubWorkflow {
        /// The workflow file holding the job.
        parent: PathBuf,
        /// The sub-workflow job.
        job: String,
        /// Its `file` (a logical file name).
        file: String,
        /// What went wrong reading or validating the child workflow.
        cause: Box<Error>,
    },
    /// Sub-workflows that include each other.
    #[error("sub-workflows include each other: {}", .0.join(" -> "))]
    SubWorkflowCycle(
        /// Each workflow file with the job that includes the next, back to the first file.
        Vec<String>,
    ),
}

/// Exit codes of the `store` binary, one per failure class.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any failure without a more specific code.
    pub const FAILURE: i32 = 1;
    /// Bad command-line usage.
    pub const USAGE: i32 = 2;
    /// Not inside a store, or a store already exists on `init`.
    pub const NO_STORE: i32 = 3;
    /// A path given does not exist, cannot be read, or lies inside `.store/`.
    pub const BAD_PATH: i32 = 4;
    /// Stored data is corrupt (`verify` found damage, a pack failed a check).
    pub const CORRUPT: i32 = 5;
    /// An object or hash was not found, or a prefix was ambiguous.
    pub const NOT_FOUND: i32 = 6;
    /// The store was written by a newer format version.
    pub const NEWER_FORMAT: i32 = 7;
    /// The disk is full.
    pub const DISK_FULL: i32 = 8;
    /// The store is busy (another operation holds the lock).
    pub const BUSY: i32 = 9;
    /// Partial success: some inputs were skipped (special files) or failed.
    pub const PARTIAL: i32 = 10;
    /// Recording into a sealed run.
    pub const SEALED: i32 = 11;
    /// A remote failed (unreachable, refused, or an object missing there).
    pub const REMOTE: i32 = 12;
}

impl Error {
    /// Wraps an I/O error with the path it happened on, classifying the common cases.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.raw_os_error() == Some(libc::EDQUOT)
        {
            return Error::DiskFull { path };
        }
        match source.kind() {
            io::ErrorKind::NotFound => Error::PathNotFound(path),
            io::ErrorKind::PermissionDenied => Error::PermissionDenied(path),
            _ => Error::Io { path, source },
        }
    }

    /// A corruption error about `what`.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotAStore { .. } | Error::AlreadyExists(_) => exit::NO_STORE,
            Error::PathNotFound(_) | Error::PermissionDenied(_) | Error::InsideStore(_) => {
                exit::BAD_PATH
            }
            Error::DiskFull { .. } => exit::DISK_FULL,
            Error::Corrupt { .. } => exit::CORRUPT,
            Error::BadHash(_) | Error::AmbiguousHash(_) | Error::ObjectNotFound(_) => {
                exit::NOT_FOUND
            }
            Error::NewerFormat { .. } => exit::NEWER_FORMAT,
            Error::Busy(_) => exit::BUSY,
            Error::RunSealed(_) => exit::SEALED,
            Error::RunNotFound(_) => exit::NOT_FOUND,
            Error::UnsafePath(_) => exit::CORRUPT,
            Error::WouldOverwrite(_) | Error::SymlinkInPath(_) => exit::BAD_PATH,
            Error::Invalid(_) | Error::SubWorkflowCycle(_) => exit::USAGE,
            Error::SubWorkflow { cause, .. } => cause.exit_code(),
            Error::Io { .. } | Error::Index { .. } | Error::Git(_) | Error::JobFailed { .. } => {
                exit::FAILURE
            }
            Error::Remote { .. } => exit::REMOTE,
        }
    }

    pub(crate) fn index(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Index {
            context: context.into(),
            detail: e.to_string(),
        }
    }
}
