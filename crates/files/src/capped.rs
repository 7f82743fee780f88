//! Reads with a size limit: hostile or endless inputs end in an error, not in memory exhaustion.

use std::io::{self, Read};
use std::path::Path;

/// Read the whole of `path`, refusing more than `limit` bytes (checked while reading, so
/// `/dev/zero`, pipes and files that grow are covered, not only what `stat` says). `what` names
/// the kind of input in the error ("data file", "records file").
pub fn read_capped(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let hint = f.metadata().map(|m| m.len()).unwrap_or(0).min(limit);
    let mut out = Vec::with_capacity(hint as usize);
    CappedRead::new(f, limit, what).read_to_end(&mut out)?;
    Ok(out)
}

/// A reader that fails with [`io::ErrorKind::FileTooLarge`] once more than `limit` bytes came
/// through (wrap a decompressor in it to stop a gzip bomb).
pub struct CappedRead<R> {
    inner: R,
    left: u64,
    limit: u64,
    what: String,
}

impl<R: Read> CappedRead<R> {
    pub fn new(inner: R, limit: u64, what: &str) -> Self {
        CappedRead { inner, left: limit, limit, what: what.to_string() }
    }
}

impl<R: Read> Read for CappedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One byte more than allowed decides between "exactly at the limit" and "over".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(too_large(self.limit, &self.what)),
            };
        }
        let n = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got as u64;
        Ok(got)
    }
}

fn too_large(limit: u64, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("more than {} bytes: over the size limit for a {what}", human(limit)))
}

/// `1073741824` → "1 GiB (1073741824)".
fn human(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, s) in UNITS {
        if n >= s && n % s == 0 {
            return format!("{} {u} ({n})", n / s);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_zero_stops_at_the_limit() {
        let e = read_capped(Path::new("/dev/zero"), 1 << 20, "data file").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("1 MiB"), "{e}");
    }

    #[test]
    fn exactly_the_limit_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 1000]).unwrap();
        assert_eq!(read_capped(&p, 1000, "x").unwrap().len(), 1000);
        assert!(read_capped(&p, 999, "x").is_err());
    }
}
