//! Allocator tuning for the decoding loop.
//!
//! Every position of a 150 000-token vocabulary allocates a few 600 KB vectors (logit rows,
//! probabilities, residual weights). glibc serves blocks that large with `mmap` and unmaps them on
//! `free`, so every allocation pays ~150 fresh-page faults: measured here, building one distribution
//! took 0.9 ms with the defaults and 0.24 ms once freed blocks stay in the heap. Programs that
//! decode (the `speccascade` binary, the benches) call [`keep_freed_memory`] once at start-up; it is
//! process-wide, so a library never calls it on its own.

/// Serve large blocks from the heap and keep freed memory for reuse (glibc `mallopt`). Returns
/// whether the settings were applied (elsewhere than glibc/Linux it does nothing).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
        unsafe {
            let a = libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
            let b = libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            a == 1 && b == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
