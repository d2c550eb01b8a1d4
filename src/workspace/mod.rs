//! The workspace: what a user does with files on disk, on top of the [engine](crate::engine).
//!
//! [`add`] walks, chunks and stores paths; [`status`] reports what changed since; [`checkout`] restores files
//! and trees, verified, never following a link below its target (in a clone, writing what it
//! fetches as it arrives: `fetching`); [`maintenance`] holds the
//! whole-store operations `verify`, `gc`, `reindex` and `stats`; [`lock`] keeps `store.lock`, the workspace's tracked versions for git. It may use the engine and
//! the error type, nothing above.

pub mod add;
pub mod checkout;
mod fetching;
pub mod inplace;
pub mod lock;
pub mod maintenance;
pub mod status;
mod walk;
