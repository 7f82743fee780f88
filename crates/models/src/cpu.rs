//! Which CPU the process runs on, and which matmul kernel each weight format uses on it.
//!
//! The features are detected once per process ([`features`]); each weight format then picks one
//! kernel path for the whole process ([`q8_path`], [`f16_path`]). One path per process matters
//! for exactness: the 8-bit paths give bit-identical results anyway (integer block sums, the same
//! order of scaling), but the f16 paths accumulate in f32 lanes of different widths, so mixing
//! them by the number of token columns would make a position's logits depend on its batch.
//!
//! `SPECCASCADE_KERNEL=portable|avx2|avxvnni|avx512vnni|amx|auto` overrides the choice (for comparisons and
//! for CPUs whose detection is wrong); a path the CPU lacks falls back to the best one it has,
//! with a warning. The choice is logged once to stderr when `SPECCASCADE_LOG` contains `kernels`
//! (or is `all`/`debug`), or `RUST_LOG` is `debug`/`trace` or names `kernels`; [`describe`]
//! gives it as JSON for `--json` outputs and [`summary`] as one line for hardware tags.

use std::sync::OnceLock;

/// The instruction-set extensions the kernels care about (detected at run time).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CpuFeatures {
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512vnni: bool,
    pub avx512bf16: bool,
    /// AVX-VNNI (VEX, 256-bit `vpdpbusd`).
    pub avxvnni: bool,
    /// AMX-INT8 tiles as the CPU reports them (`amx_int8` and `amx_tile` in `/proc/cpuinfo`).
    pub amx_int8: bool,
    /// AMX-INT8 usable by this process: the CPU has it and Linux granted the tile data state
    /// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); a hypervisor can hide the first,
    /// a kernel before 5.16 refuses the second.
    pub amx_usable: bool,
    /// AVX512-FP16: reported, no kernel uses it yet.
    pub avx512fp16: bool,
}

impl CpuFeatures {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let flags = cpuinfo_field("flags").unwrap_or_default();
            let has_flag = |f: &str| flags.split_whitespace().any(|x| x == f);
            let amx_int8 = has_flag("amx_int8") && has_flag("amx_tile");
            Self {
                avx2: std::is_x86_feature_detected!("avx2"),
                fma: std::is_x86_feature_detected!("fma"),
                f16c: std::is_x86_feature_detected!("f16c"),
                avx512f: std::is_x86_feature_detected!("avx512f"),
                avx512bw: std::is_x86_feature_detected!("avx512bw"),
                avx512vl: std::is_x86_feature_detected!("avx512vl"),
                avx512vnni: std::is_x86_feature_detected!("avx512vnni"),
                avx512bf16: std::is_x86_feature_detected!("avx512bf16"),
                avxvnni: std::is_x86_feature_detected!("avxvnni"),
                amx_int8,
                amx_usable: amx_int8 && request_amx_permission(),
                avx512fp16: has_flag("avx512_fp16"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self::default()
    }

    /// Names of the features present, in a fixed order.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("f16c", self.f16c),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512vnni", self.avx512vnni),
            ("avx512bf16", self.avx512bf16),
            ("avxvnni", self.avxvnni),
            ("amx_int8", self.amx_int8),
            ("amx_usable", self.amx_usable),
            ("avx512fp16", self.avx512fp16),
        ];
        all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    /// The 8-bit paths this CPU can run, best first.
    pub fn q8_paths(&self) -> Vec<Q8Path> {
        let mut v = Vec::new();
        let avx512vnni = self.avx512f && self.avx512bw && self.avx512vl && self.avx512vnni && self.f16c && self.fma;
        if avx512vnni && self.amx_usable {
            v.push(Q8Path::Amx);
        }
        if avx512vnni {
            v.push(Q8Path::Avx512Vnni);
        }
        if self.avx2 && self.avxvnni && self.fma && self.f16c {
            v.push(Q8Path::AvxVnni);
        }
        if self.avx2 && self.fma && self.f16c {
            v.push(Q8Path::Avx2);
        }
        v.push(Q8Path::Portable);
        v
    }

    /// The f16 paths this CPU can run, best first.
    pub fn f16_paths(&self) -> Vec<F16Path> {
        let mut v = Vec::new();
        if self.avx2 && self.fma && self.f16c {
            v.push(F16Path::Avx2);
        }
        v.push(F16Path::Portable);
        v
    }
}

/// The kernel family the 8-bit matmul ([`crate::transformer::q8::Q8Matrix`]) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Q8Path {
    /// Plain Rust, any CPU; the reference the others equal bit for bit.
    Portable,
    /// AVX2 `maddubs` + `madd` over rows interleaved by four.
    Avx2,
    /// AVX-VNNI `vpdpbusd` (ymm, VEX) over rows interleaved by eight, four bytes at a time.
    AvxVnni,
    /// AVX-512 VNNI `vpdpbusd` (zmm) over rows interleaved by sixteen, four bytes at a time.
    Avx512Vnni,
    /// AMX-INT8 `tdpbsud` tiles (16 tokens × 16 rows per block) on the AVX-512 VNNI layout, for
    /// [`crate::transformer::q8::AMX_MIN_COLS`] or more token columns; fewer run the AVX-512 VNNI kernel.
    Amx,
}

/// The kernel family the f16 matmul ([`crate::transformer::f16::F16Matrix`]) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum F16Path {
    /// Plain Rust, any CPU (sequential f32 sums).
    Portable,
    /// F16C + FMA, 8-lane f32 accumulators.
    Avx2,
}

impl Q8Path {
    /// Every 8-bit path, in the order the tests and messages list them.
    pub const ALL: [Q8Path; 5] = [Q8Path::Portable, Q8Path::Avx2, Q8Path::AvxVnni, Q8Path::Avx512Vnni, Q8Path::Amx];

    pub fn name(self) -> &'static str {
        match self {
            Q8Path::Portable => "portable",
            Q8Path::Avx2 => "avx2",
            Q8Path::AvxVnni => "avxvnni",
            Q8Path::Avx512Vnni => "avx512vnni",
            Q8Path::Amx => "amx",
        }
    }
}

impl F16Path {
    pub fn name(self) -> &'static str {
        match self {
            F16Path::Portable => "portable",
            F16Path::Avx2 => "avx2",
        }
    }
}

/// The features of the CPU this process runs on (detected on first use).
pub fn features() -> &'static CpuFeatures {
    static F: OnceLock<CpuFeatures> = OnceLock::new();
    F.get_or_init(CpuFeatures::detect)
}

/// The `SPECCASCADE_KERNEL` override as read once: `Ok(None)` for unset or `auto`.
fn requested() -> &'static Result<Option<String>, String> {
    static R: OnceLock<Result<Option<String>, String>> = OnceLock::new();
    R.get_or_init(|| match std::env::var("SPECCASCADE_KERNEL") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim() {
            "" | "auto" => Ok(None),
            s if Q8Path::ALL.iter().any(|p| p.name() == s) => Ok(Some(s.to_string())),
            other => Err(format!(
                "SPECCASCADE_KERNEL='{other}' is not a kernel path (expected {} or auto); using auto",
                Q8Path::ALL.map(Q8Path::name).join(", ")
            )),
        },
    })
}

struct Choice {
    q8: Q8Path,
    f16: F16Path,
    warnings: Vec<String>,
}

fn choice() -> &'static Choice {
    static C: OnceLock<Choice> = OnceLock::new();
    C.get_or_init(|| {
        let f = features();
        let (q8s, f16s) = (f.q8_paths(), f.f16_paths());
        let mut c = Choice { q8: q8s[0], f16: f16s[0], warnings: Vec::new() };
        match requested() {
            Err(e) => c.warnings.push(e.clone()),
            Ok(None) => {}
            Ok(Some(want)) => {
                // The 8-bit path as asked; the f16 path is the widest one not above it.
                match q8s.iter().find(|p| p.name() == want) {
                    Some(p) => c.q8 = *p,
                    None => c.warnings.push(format!(
                        "SPECCASCADE_KERNEL={want}: this CPU lacks the features; the 8-bit kernel uses {}",
                        c.q8.name()
                    )),
                }
                if want == "portable" {
                    c.f16 = F16Path::Portable;
                }
            }
        }
        for w in &c.warnings {
            eprintln!("speccascade: warning: {w}");
        }
        if logging_asked() {
            eprintln!("speccascade: kernels: {}", summary_of(&c));
        }
        c
    })
}

fn logging_asked() -> bool {
    let sc = std::env::var("SPECCASCADE_LOG").unwrap_or_default().to_ascii_lowercase();
    let rl = std::env::var("RUST_LOG").unwrap_or_default().to_ascii_lowercase();
    sc.split(',').any(|s| matches!(s.trim(), "kernels" | "all" | "debug"))
        || rl.split(',').any(|s| {
            let s = s.trim();
            s == "debug" || s == "trace" || s.contains("kernels")
        })
}

/// The 8-bit kernel path of this process.
pub fn q8_path() -> Q8Path {
    choice().q8
}

/// The f16 kernel path of this process.
pub fn f16_path() -> F16Path {
    choice().f16
}

/// Which variant of the 8-bit path runs for `k` token columns (the per-k choice).
pub fn q8_variant(path: Q8Path, k: usize) -> &'static str {
    use crate::transformer::q8::{AMX_COLS, AMX_MIN_COLS, MAX_COLS};
    let passes = k > MAX_COLS;
    match (path, passes) {
        (Q8Path::Portable, _) => "scalar, one output at a time",
        (Q8Path::Avx2, false) => "4 rows x k columns, one pass over the weights",
        (Q8Path::Avx2, true) => "4 rows x 8 columns per pass; a task's weights (<= 128 KiB) re-read from L2",
        (Q8Path::AvxVnni, false) => "8 rows x k columns, one pass over the weights",
        (Q8Path::AvxVnni, true) => "8 rows x 8 columns per pass; a task's weights (<= 128 KiB) re-read from L2",
        (Q8Path::Avx512Vnni, false) => "16 rows x k columns, one pass over the weights",
        (Q8Path::Avx512Vnni, true) => "16 rows x 8 columns per pass; a task's weights (<= 128 KiB) re-read from L2",
        (Q8Path::Amx, _) if k < AMX_MIN_COLS => "AVX-512 VNNI: 16 rows x k columns, one pass over the weights",
        (Q8Path::Amx, _) if k <= AMX_COLS => "AMX tiles: 16 rows x k columns per block, one pass over the weights",
        (Q8Path::Amx, _) => "AMX tiles: 16 rows x 16 columns per block and pass; a task's weights (<= 128 KiB) re-read from L2",
    }
}

/// The per-k variants of `path`, keyed by the ranges of k where each runs.
fn q8_by_k(path: Q8Path) -> serde_json::Value {
    use crate::transformer::q8::{AMX_COLS, AMX_MIN_COLS, MAX_COLS};
    if path == Q8Path::Amx {
        serde_json::json!({
            format!("1-{}", AMX_MIN_COLS - 1): q8_variant(path, 1),
            format!("{AMX_MIN_COLS}-{AMX_COLS}"): q8_variant(path, AMX_MIN_COLS),
            format!("{}+", AMX_COLS + 1): q8_variant(path, AMX_COLS + 1),
        })
    } else {
        serde_json::json!({
            format!("1-{MAX_COLS}"): q8_variant(path, 1),
            format!("{}+", MAX_COLS + 1): q8_variant(path, MAX_COLS + 1),
        })
    }
}

/// Ask Linux for the AMX tile data state (process-wide, once): without it the first tile
/// instruction faults. True where granted (Linux ≥ 5.16 on a CPU with AMX).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_amx_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments; it changes only what the process may use.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_amx_permission() -> bool {
    false
}

/// The CPU's model name from `/proc/cpuinfo` (or the architecture where there is none).
pub fn cpu_model() -> String {
    cpuinfo_field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cpuinfo_field(name: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = s.lines().find(|l| l.split(':').next().map(str::trim) == Some(name))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn summary_of(c: &Choice) -> String {
    format!("q8={} f16={} ({})", c.q8.name(), c.f16.name(), features().names().join(","))
}

/// The chosen paths alone, for hardware tags: `q8=avx512vnni f16=avx2`.
pub fn paths() -> String {
    let c = choice();
    format!("q8={} f16={}", c.q8.name(), c.f16.name())
}

/// One line for logs: `q8=avx512vnni f16=avx2 (avx2,fma,…)`.
pub fn summary() -> String {
    summary_of(choice())
}

/// The chosen paths as JSON, for the `"kernels"` field of `--json` outputs.
pub fn describe() -> serde_json::Value {
    let c = choice();
    let f = features();
    serde_json::json!({
        "cpu_model": cpu_model(),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "features": f.names(),
        "override": std::env::var("SPECCASCADE_KERNEL").ok(),
        "warnings": c.warnings,
        "q8": {
            "path": c.q8.name(),
            "by_k": q8_by_k(c.q8),
            "available": f.q8_paths().iter().map(|p| p.name()).collect::<Vec<_>>(),
        },
        "f16": {
            "path": c.f16.name(),
            "by_k": "one path for every k (f32 sums must not depend on the batch)",
            "available": f.f16_paths().iter().map(|p| p.name()).collect::<Vec<_>>(),
        },
        "q4k": if c.q8 == Q8Path::Amx { "avx512vnni (no AMX kernel for 4-bit weights)" } else { c.q8.name() },
        "not_implemented": ["amx_int8 for q4k", "amx_bf16, avx512fp16, avx512bf16 (f16 path)"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AMX comes first only where the process may use the tiles, and never without AVX-512 VNNI
    /// (its float steps and its tails of fewer than nine columns run there).
    #[test]
    fn amx_needs_the_tile_permission_and_avx512_vnni() {
        let all = CpuFeatures {
            avx2: true,
            fma: true,
            f16c: true,
            avx512f: true,
            avx512bw: true,
            avx512vl: true,
            avx512vnni: true,
            avx512bf16: true,
            avxvnni: true,
            amx_int8: true,
            amx_usable: true,
            avx512fp16: true,
        };
        assert_eq!(all.q8_paths(), [Q8Path::Amx, Q8Path::Avx512Vnni, Q8Path::AvxVnni, Q8Path::Avx2, Q8Path::Portable]);
        let denied = CpuFeatures { amx_usable: false, ..all.clone() };
        assert_eq!(denied.q8_paths()[0], Q8Path::Avx512Vnni);
        let no_avx512 = CpuFeatures { avx512vnni: false, ..all.clone() };
        assert_eq!(no_avx512.q8_paths()[0], Q8Path::AvxVnni);
        assert_eq!(q8_by_k(Q8Path::Amx).as_object().map(|o| o.len()), Some(3));
        assert!(q8_variant(Q8Path::Amx, 6).starts_with("AVX-512 VNNI"));
        assert!(q8_variant(Q8Path::Amx, 9).starts_with("AMX"));
        assert!(q8_variant(Q8Path::Amx, 512).starts_with("AMX"));
    }

    #[test]
    fn the_chosen_paths_are_available_and_described() {
        let d = describe();
        println!("kernels: {d}");
        let f = features();
        assert!(f.q8_paths().contains(&q8_path()));
        assert!(f.f16_paths().contains(&f16_path()));
        assert_eq!(*f.q8_paths().last().unwrap(), Q8Path::Portable);
        assert_eq!(d["q8"]["path"], q8_path().name());
        assert_eq!(d["f16"]["path"], f16_path().name());
        assert!(!d["cpu_model"].as_str().unwrap().is_empty());
        assert_eq!(paths(), format!("q8={} f16={}", q8_path().name(), f16_path().name()));
        // The 8-bit path reads the layout its matrices are built in.
        let m = crate::transformer::q8::Q8Matrix::from_f32(3, 32, &[0.5; 96]).unwrap();
        let mut out = [0f32; 3];
        m.matmul(&[1.0; 32], 1, &mut out);
        assert!(out.iter().all(|v| (v - 16.0).abs() < 0.2), "{out:?}");
    }
}
