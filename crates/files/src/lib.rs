//! speccascade-files: the one place that decides how speccascade writes and guards files.
//!
//! - [`atomic`]: replace a file atomically — write a temporary file in the same directory,
//!   fsync it, rename it over the target, fsync the directory. A process killed at any moment
//!   leaves either the old file or the new one, never a torn one.
//! - [`lock`]: advisory `flock` locks on a directory (one writer per result store, one fetch per
//!   cache item). The lock dies with its process, so a killed writer never leaves a stale lock;
//!   the holder's pid and command are recorded in the lock file for the refusal message.
//! - [`capped`]: reads with a size limit, so a hostile or endless input (`/dev/zero`, a gzip
//!   bomb) ends in an error naming the file and the limit instead of exhausting memory.

pub mod atomic;
pub mod capped;
pub mod lock;

pub use atomic::{AtomicFile, remove_stale_temps, write_atomic};
pub use capped::{CappedRead, read_capped};
pub use lock::{DirLock, LockError};
