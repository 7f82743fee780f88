//! Shared test helpers: the Python reference runner and a deterministic text generator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The interpreter holding the reference packages: `$SPECCASCADE_PYTHON`, else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("SPECCASCADE_PYTHON").filter(|p| !p.is_empty()).map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// Runs reference script `name` on `job` (written to a temp dir) and parses its JSON output.
/// A missing reference package fails the test with the fix.
pub fn run_reference(name: &str, job: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("job.json");
    std::fs::write(&input, serde_json::to_vec(job).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(script(name))
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): run `.ci/python-env.sh` and set SPECCASCADE_PYTHON to the interpreter it prints", python().display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("ModuleNotFoundError") || stderr.contains("ImportError") {
            panic!(
                "the Python reference for {name} is not installed in {}: run `.ci/python-env.sh` and set \
                 SPECCASCADE_PYTHON to the interpreter it prints (CI installs it).\n{stderr}",
                python().display()
            );
        }
        panic!("reference script {name} failed:\n{stderr}");
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("reference {name} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

pub const ENGLISH: &[&str] = &[
    "the", "a", "an", "The", "cat", "cats", "sat", "on", "mat", "running", "runs", "ran", "generalization", "generalizations",
    "relational", "conditional", "happiness", "happy", "skies", "dying", "lying", "agreed", "feed", "plastered", "motoring",
    "hopping", "falling", "filing", "controlling", "rolled", "analogously", "effective", "adjustable", "replacement",
    "communism", "activate", "bowdlerize", "electrical", "hopeful", "goodness", "formalize", "triplicate", "formative",
    "sensibility", "operator", "feudalism", "decisiveness", "callousness", "digitizer", "conformably", "radically",
    "differently", "vilely", "valency", "hesitancy", "government", "announced", "measures", "reduce", "energy",
    "consumption", "council", "bridge", "closed", "engineers", "found", "cracks", "supports", "repairs", "weeks",
    "news", "innings", "proceed", "exceed", "succeed", "sky", "ties", "ponies", "caresses", "troubles", "oaten",
    "ivy", "trees", "syzygy", "toy", "yellow", "by", "mayor", "players", "quickly", "quick", "brown", "fox", "jumps",
    "over", "lazy", "dog", "Germany", "Berlin", "percent", "study", "studies", "studying", "studied", "cries", "died",
    "tied", "tying", "hoping", "hopes", "crying", "enjoyment", "logical", "biology", "apology", "fully", "hopefully",
];

pub const UNICODE: &[&str] = &[
    "café", "naïve", "Straße", "über", "Müller", "日本語", "中文字", "Ελλάδα", "ΣΟΦΟΣ", "emoji😀", "😀", "İstanbul", "\u{212A}elvin",
    "ǅemal", "ﬁne", "e\u{301}te", "١٢٣", "x²", "\u{a0}", "\u{3000}", "\u{2028}", "\u{1c}", "\u{85}", "Ⅻ", "क्षत्रिय", "ß", "ﬀ",
    "Ω", "naïveté", "façade", "déjà-vu", "\u{200b}", "\u{feff}", "àéîõü", "ΑΒΓ", "привет", "мир", "שלום", "مرحبا",
];

pub const NUMBERS: &[&str] = &[
    "3.14", "1,000", "-5", "42", "$12.50", "10%", "2-3", "1.", ",5", "0.5", "12,345,678", "-0.25", "7", "1990s", "3rd", "$", "-",
    "2024-01-01", "1.2.3", "#### 72", "####", "#### -3", "####  5",
];

pub const PUNCT: &[&str] = &[
    "...", "!!!", "?!", "--", "&amp;", "&quot;", "&lt;", "&gt;", "<skipped>", "'s", "(", ")", "\"", "``", "''", "—", "…", ",,", ".",
    ",", ";", ":", "/", "\\", "[", "]", "{", "}", "@", "#", "^", "_", "~", "`", "|", "+", "=", "*", "&", "%", "!", "?", "-\n",
];

pub const SEPS: &[&str] = &[" ", " ", " ", " ", "  ", "\t", "\n", "", " \n ", "\u{a0}", "-"];

pub fn token(rng: &mut Rng) -> String {
    let r = rng.below(100);
    let t = if r < 62 {
        rng.pick(ENGLISH)
    } else if r < 76 {
        rng.pick(UNICODE)
    } else if r < 88 {
        rng.pick(NUMBERS)
    } else {
        rng.pick(PUNCT)
    };
    t.to_string()
}

/// A text of `n` tokens with varied separators.
pub fn text(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            let sep: &&str = rng.pick(SEPS);
            s.push_str(sep);
        }
        s.push_str(&token(rng));
    }
    s
}

/// A text length: usually short, sometimes empty or very long.
pub fn length(rng: &mut Rng, long: usize) -> usize {
    match rng.below(20) {
        0 => 0,
        1 => 1,
        2 => long,
        _ => 3 + rng.below(30),
    }
}

/// A variant of `base`: words dropped, duplicated, swapped or replaced, so overlap is partial.
pub fn mutate(rng: &mut Rng, base: &str) -> String {
    let words: Vec<&str> = base.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    for w in words {
        match rng.below(10) {
            0 => {}
            1 => {
                out.push(w.to_string());
                out.push(w.to_string());
            }
            2 => out.push(token(rng)),
            3 => out.push(w.to_uppercase()),
            _ => out.push(w.to_string()),
        }
    }
    if out.len() > 2 && rng.chance(0.3) {
        let i = rng.below(out.len() - 1);
        out.swap(i, i + 1);
    }
    out.join(*rng.pick(&[" ", " ", "\n", "  "]))
}

/// Asserts |a - b| ≤ 1e-6 with context.
pub fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-6, "{what}: ours {a} vs reference {b} (diff {})", (a - b).abs());
}
