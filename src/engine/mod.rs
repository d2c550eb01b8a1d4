//! The storage engine: content-addressed objects in immutable packs, and the SQLite index
//! that locates them.
//!
//! It owns hashing ([`hash`]), content-defined chunking ([`chunker`]), the pack file format
//! ([`pack`]), the object encodings ([`manifest`]), the index ([`index`]), the [`Store`]
//! handle (directory layout, configuration, locks, reading objects) and streaming reads of one
//! file ([`reader`]). Everything here is the byte format of `store-format.md`; nothing here
//! knows about workspaces, runs, workflows, remotes or MLflow. It may use only [`crate::error`].
//!
//! [`Store`]: store::Store

pub mod chunker;
pub mod group;
pub mod hash;
pub mod index;
pub mod manifest;
pub mod pack;
pub mod progress;
pub mod reader;
pub mod redact;
pub mod run_object;
pub mod store;
pub mod util;
