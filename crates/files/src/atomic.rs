//! Atomic replacement of files: temp name in the same directory → fsync → rename → fsync dir.
//!
//! ```no_run
//! use std::io::Write;
//! let mut f = speccascade_files::AtomicFile::create("out/table.csv".as_ref())?;
//! f.write_all(b"a,b\n1,2\n")?;
//! f.commit()?; // readers now see the whole new file; before this, the whole old one
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The marker in every temporary name (see [`remove_stale_temps`]).
const TEMP_MARK: &str = ".sc-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written under a temporary name; [`AtomicFile::commit`] puts it in place.
/// Dropped without a commit, the temporary file is removed and the target is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Start replacing `target`. The temporary file sits in the target's directory (a rename
    /// is atomic only within one file system) and keeps the target's extension, so writers that
    /// choose a format by extension (image encoders) see the right one.
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a file path", target.display())))?
            .to_string_lossy()
            .into_owned();
        let ext = target.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = target.with_file_name(format!(".{name}{TEMP_MARK}{}-{n}{ext}", std::process::id()));
        let file = File::create(&tmp)?;
        Ok(AtomicFile { target: target.to_path_buf(), tmp, file: Some(file) })
    }

    /// The temporary path, for writers that insist on opening a path themselves. Whatever is at
    /// this path when [`AtomicFile::commit`] runs becomes the target.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until commit")
    }

    /// Flush to disk and rename over the target; then sync the directory so the rename itself
    /// survives a power cut.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("open until commit");
        // fsync works on the inode: it also flushes data a writer put there through its own
        // handle (see `temp_path`). Reopen in case that writer replaced the file.
        drop(file);
        File::open(&self.tmp)?.sync_all()?;
        std::fs::rename(&self.tmp, &self.target)?;
        sync_dir(&self.target);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Replace `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Remove the temporary files a killed writer left in `dir` (names carrying this module's
/// marker). Call it while holding the directory's lock, so no live writer's file goes.
/// Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TEMP_MARK) && e.file_type()?.is_file() {
            std::fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

fn sync_dir(path: &Path) {
    // Best effort: some file systems refuse to fsync a directory; the rename already happened.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        write_atomic(&p, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"half").unwrap();
            assert!(f.temp_path().to_string_lossy().ends_with(".csv"));
        } // dropped: no commit
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file removed");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn stale_temporaries_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        let f = AtomicFile::create(&p).unwrap();
        std::mem::forget(f); // as if killed
        std::fs::write(dir.path().join("keep.png"), b"k").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("keep.png")]);
    }
}
