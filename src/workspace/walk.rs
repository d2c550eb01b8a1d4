//! What `add` walks: the tree of a path as it will be recorded (files, directories, symlinks).
//! Each directory is listed through its open descriptor (`statat`, `readlinkat`: no path
//! lookup per entry) and closed before its subdirectories are walked, in parallel, so at most
//! one directory is open per thread however deep the tree.

use std::ffi::CStr;
use std::fs::Metadata;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::engine::hash::Hash;
use crate::engine::index::StatEntry;
use crate::error::{Error, Result};

/// A walked path.
pub(super) enum Node {
    File {
        /// Its place in [`Walked::files`].
        idx: usize,
        mode: u32,
    },
    Dir {
        mode: u32,
        /// By name, sorted.
        children: Vec<(Vec<u8>, Node)>,
    },
    Symlink {
        mode: u32,
        target: Vec<u8>,
    },
}

/// The files met by a walk, in tree order, with their stat (hash zero, not trusted), and a
/// warning for each special file skipped.
#[derive(Default)]
pub(super) struct Walked {
    pub files: Vec<(PathBuf, StatEntry)>,
    pub warnings: Vec<String>,
}

/// A walked path before its files are numbered.
enum Found {
    File(PathBuf, StatEntry, u32),
    Dir(u32, Vec<(Vec<u8>, Found)>),
    Symlink(u32, Vec<u8>),
}

/// A stat-cache row (hash zero, not trusted) from a `stat` result.
pub(crate) fn stat_entry(st: &rustix::fs::Stat) -> StatEntry {
    let ns = |s: i64, n: i64| s * 1_000_000_000 + n;
    StatEntry {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: ns(st.st_mtime, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime, st.st_ctime_nsec as i64),
        hash: Hash([0; 32]),
        trusted: false,
    }
}

/// Walks a path given on the command line, whose `meta` follows symlinks; the store
/// directory (`store_id`: device and inode) is left out. `None` for a skipped special file.
pub(super) fn walk(
    abs: &Path,
    meta: &Metadata,
    store_id: (u64, u64),
    out: &mut Walked,
) -> Result<Option<Node>> {
    let ft = meta.file_type();
    let found = if ft.is_file() {
        let stat = super::add::stat_of(meta, Hash([0; 32]), false);
        Found::File(abs.to_path_buf(), stat, meta.mode())
    } else if ft.is_dir() {
        if (meta.dev(), meta.ino()) == store_id {
            return Ok(None);
        }
        list(abs, meta.mode(), store_id, &mut out.warnings)?
    } else {
        let what = if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "device"
        } else {
            "special file"
        };
        out.warnings
            .push(format!("{}: skipped ({what})", abs.display()));
        return Ok(None);
    };
    Ok(Some(number(found, &mut out.files)))
}

/// Calls `f` with the open descriptor of directory `dir` and, for each of its entries (not
/// `.` and `..`), its name, path and `lstat` (through the descriptor: `statat` resolves one
/// name, not the whole path). The directory is closed on return, so a caller that descends
/// afterwards keeps at most one directory open per thread, however deep the tree.
pub(crate) fn each_entry(
    dir: &Path,
    mut f: impl FnMut(&OwnedFd, &CStr, PathBuf, &rustix::fs::Stat) -> Result<()>,
) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: rustix::io::Errno| Error::io(&p, e.into())
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io(dir))?;
    let mut entries = rustix::fs::Dir::read_from(&fd).map_err(io(dir))?;
    while let Some(ent) = entries.read() {
        let ent = ent.map_err(io(dir))?;
        let name = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let p = dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let st = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io(&p))?;
        f(&fd, name, p, &st)?;
    }
    Ok(())
}

/// Lists directory `dir` (of `mode`), then walks its subdirectories in parallel.
fn list(dir: &Path, mode: u32, store_id: (u64, u64), warnings: &mut Vec<String>) -> Result<Found> {
    let mut children = Vec::new();
    let mut subdirs = Vec::new();
    each_entry(dir, |fd, name, p, st| {
        let bytes = name.to_bytes().to_vec();
        let mode = st.st_mode;
        let what = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                children.push((bytes, Found::File(p, stat_entry(st), mode)));
                return Ok(());
            }
            FileType::Directory => {
                if (st.st_dev, st.st_ino) != store_id {
                    subdirs.push((bytes, p, mode));
                }
                return Ok(());
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(fd, name, Vec::new())
                    .map_err(|e| Error::io(&p, e.into()))?;
                children.push((bytes, Found::Symlink(mode, target.into_bytes())));
                return Ok(());
            }
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::BlockDevice | FileType::CharacterDevice => "device",
            FileType::Unknown => "special file",
        };
        warnings.push(format!("{}: skipped ({what})", p.display()));
        Ok(())
    })?;
    let below: Vec<(Vec<u8>, Found, Vec<String>)> = subdirs
        .into_par_iter()
        .map(|(name, p, mode)| {
            let mut w = Vec::new();
            let found = list(&p, mode, store_id, &mut w)?;
            Ok((name, found, w))
        })
        .collect::<Result<_>>()?;
    for (name, found, w) in below {
        children.push((name, found));
        warnings.extend(w);
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Found::Dir(mode, children))
}

/// Numbers the files of `found` in tree order, moving them into `files`.
fn number(found: Found, files: &mut Vec<(PathBuf, StatEntry)>) -> Node {
    match found {
        Found::File(path, stat, mode) => {
            files.push((path, stat));
            Node::File {
                idx: files.len() - 1,
                mode,
            }
        }
        Found::Dir(mode, found) => {
            // Not `collect()`: collected in place, the nodes would keep the larger
            // allocation of the found entries (a third of add's peak heap on a 32k-file tree).
            let mut children = Vec::with_capacity(found.len());
            for (name, f) in found {
                children.push((name, number(f, files)));
            }
            Node::Dir { mode, children }
        }
        Found::Symlink(mode, target) => Node::Symlink { mode, target },
    }
}
