//! What the rest of the machine is doing: foreign CPU time and peak memory (Linux `/proc`).
//!
//! Foreign CPU time over an interval = (busy jiffies of all CPUs from `/proc/stat`, steal
//! included) − (this process's user + system jiffies from `/proc/self/stat`), in seconds
//! (USER_HZ = 100 on every Linux architecture we run on). A record is flagged as timed under
//! foreign load when other processes used more than [`FOREIGN_LOAD_CORES`] cores on average and
//! at least [`FOREIGN_LOAD_MIN_S`] CPU seconds during it: on the 2-core machines of this project
//! a concurrent build was seen to slow inference 2–10×.
//!
//! Peak memory: `VmHWM` of `/proc/self/status`, reset before each record by writing `5` to
//! `/proc/self/clear_refs`, so it is the record's own peak (where the reset is not permitted it
//! is the process's peak so far). On systems without `/proc` every figure reads as 0.

use std::time::Instant;

const USER_HZ: f64 = 100.0;
/// Average number of cores used by other processes above which a timing is flagged.
pub const FOREIGN_LOAD_CORES: f64 = 0.25;
/// Minimum foreign CPU seconds for a flag (ignores tick noise on very short records).
pub const FOREIGN_LOAD_MIN_S: f64 = 0.02;

/// A snapshot at the start of a timed section.
pub struct Probe {
    start: Instant,
    busy: Option<u64>,
    own: Option<u64>,
}

/// What happened between [`Probe::start`] and [`Probe::finish`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub wall_s: f64,
    pub own_cpu_s: f64,
    pub foreign_cpu_s: f64,
    pub foreign_load: bool,
    pub peak_rss_bytes: u64,
}

impl Probe {
    pub fn start() -> Probe {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Probe { busy: busy_jiffies(), own: own_jiffies(), start: Instant::now() }
    }

    pub fn finish(self) -> Measured {
        let wall_s = self.start.elapsed().as_secs_f64();
        let (busy, own) = (busy_jiffies(), own_jiffies());
        let own_cpu_s = match (self.own, own) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / USER_HZ,
            _ => 0.0,
        };
        let foreign_cpu_s = match (self.busy, busy) {
            (Some(a), Some(b)) => (b.saturating_sub(a) as f64 / USER_HZ - own_cpu_s).max(0.0),
            _ => 0.0,
        };
        Measured {
            wall_s,
            own_cpu_s,
            foreign_cpu_s,
            foreign_load: is_foreign_load(foreign_cpu_s, wall_s),
            peak_rss_bytes: peak_rss_bytes(),
        }
    }
}

/// The flagging rule (see the module doc).
pub fn is_foreign_load(foreign_cpu_s: f64, wall_s: f64) -> bool {
    wall_s > 0.0 && foreign_cpu_s >= FOREIGN_LOAD_MIN_S && foreign_cpu_s / wall_s > FOREIGN_LOAD_CORES
}

/// Busy jiffies of all CPUs: user + nice + system + irq + softirq + steal (guest time is already
/// inside user and nice).
fn busy_jiffies() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat(&s)
}

fn parse_proc_stat(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    Some(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
}

/// This process's user + system jiffies (fields 14 and 15 of /proc/self/stat).
fn own_jiffies() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_self_stat(&s)
}

fn parse_self_stat(s: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces: fields restart after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14 → index 11, stime → 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// VmHWM in bytes (0 if unknown).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_vm_hwm(&s))
        .unwrap_or(0)
}

fn parse_vm_hwm(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A fixed workload, timed, that tells whether the machine's speed moved between two moments.
///
/// On the virtual machines of this project the same calls were measured 2.0 s in one minute and
/// 2.4 s a few minutes later with no other process running (contention from other tenants, which
/// `/proc/stat` does not show as steal). A latency validation compares a record run now with
/// prices measured earlier, so it times this probe during the sweep and before each direct run,
/// and flags direct runs whose probe moved more than [`SPEED_DRIFT_LIMIT`] from the sweep's
/// median. The workload streams [`SpeedProbe::BYTES`] (larger than the last-level caches we
/// have seen) on every core, summing it in vector registers: the memory bandwidth that decoding
/// is bound by.
pub struct SpeedProbe {
    words: Vec<u64>,
}

/// Largest relative change of the probe's time from the sweep's median before a direct run is
/// flagged (10 %: twice the median-error bar of the validation).
pub const SPEED_DRIFT_LIMIT: f64 = 0.10;

impl SpeedProbe {
    /// The buffer streamed per pass (held for the run while a validation is asked for).
    pub const BYTES: usize = 128 << 20;

    pub fn new() -> Self {
        Self { words: (0..Self::BYTES / 8).map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect() }
    }

    /// Seconds for two passes over the buffer split across the cores: the best of three tries
    /// (a tick of another process must not read as a slow machine).
    pub fn seconds(&self) -> f64 {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.words.len().div_ceil(threads);
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let sums: u64 = std::thread::scope(|sc| {
                    let hs: Vec<_> = self
                        .words
                        .chunks(chunk)
                        .map(|c| {
                            sc.spawn(move || {
                                let mut acc = 0u64;
                                for _ in 0..2 {
                                    for &w in c {
                                        acc = acc.wrapping_add(w ^ (w >> 7));
                                    }
                                }
                                acc
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap_or(0)).fold(0, u64::wrapping_add)
                });
                std::hint::black_box(sums);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    }
}

impl Default for SpeedProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel paths the binary's model provider chose (e.g. `q8=avx512vnni f16=avx2`), set once
/// at start-up; `hardware: auto` tags carry them, since they change the timings.
static KERNELS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Record the kernel paths for [`hardware_tag`] (the first call wins).
pub fn set_kernel_paths(paths: String) {
    let _ = KERNELS.set(paths);
}

/// A hardware tag for `hardware: auto`: CPU model, logical core count and, where the binary set
/// them, the kernel paths (`AMD EPYC x2 [q8=avx512vnni f16=avx2]`).
pub fn hardware_tag() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match KERNELS.get() {
        Some(k) => format!("{model} x{cores} [{k}]"),
        None => format!("{model} x{cores}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let stat = "cpu  100 5 50 1000 7 3 2 10 0 0\ncpu0 50 2 25 500 3 1 1 5 0 0\n";
        assert_eq!(parse_proc_stat(stat), Some(100 + 5 + 50 + 3 + 2 + 10));
        let me = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 0 0 20 0 1 0";
        assert_eq!(parse_self_stat(me), Some(333));
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t  2048 kB\n"), Some(2 * 1024 * 1024));
    }

    #[test]
    fn flags_only_real_load() {
        assert!(!is_foreign_load(0.01, 0.02)); // below the absolute floor
        assert!(!is_foreign_load(0.1, 1.0)); // 0.1 cores on average
        assert!(is_foreign_load(0.5, 1.0));
    }

    #[test]
    fn our_own_cpu_time_is_counted_as_own() {
        if own_jiffies().is_none() {
            return; // no /proc here
        }
        // Spin until this process has used 0.3 CPU-s more (however loaded the machine is).
        let p = Probe::start();
        let start = own_jiffies().unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while own_jiffies().unwrap() < start + 30 && t.elapsed().as_secs_f64() < 30.0 {
            for _ in 0..10_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let m = p.finish();
        assert!(m.own_cpu_s >= 0.3, "own cpu {}", m.own_cpu_s);
        // One spinning thread cannot use more CPU than wall time (plus a tick of rounding).
        assert!(m.own_cpu_s <= m.wall_s + 0.02 + 0.01 * std::thread::available_parallelism().unwrap().get() as f64, "{m:?}");
        assert!(m.peak_rss_bytes > 0);
    }
}
