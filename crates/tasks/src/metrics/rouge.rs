//! ROUGE-N, ROUGE-L and ROUGE-Lsum exactly as Google's `rouge-score` 0.1.2 computes them
//! (`RougeScorer(types, use_stemmer)` with the default tokenizer), including `score_multi`'s
//! best-F-measure choice among several references.

use std::collections::HashMap;

use super::porter;

/// Which ROUGE variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RougeType {
    /// n-gram overlap (`rouge1`, `rouge2`, … `rouge9`).
    N(usize),
    /// Longest common subsequence over the whole text (`rougeL`).
    L,
    /// Summary-level LCS over newline-separated sentences (`rougeLsum`).
    Lsum,
}

/// Precision, recall and F-measure, as `rouge_score.scoring.Score`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        RougeScore { precision, recall, fmeasure }
    }
}

/// `rouge_score.tokenize.tokenize`: lowercase, keep runs of `[a-z0-9]`, stem words longer
/// than three characters when asked.
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let lowered = text.to_lowercase();
    lowered
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| if stem && t.len() > 3 { cached_stem(t) } else { t.to_string() })
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        .collect()
}

thread_local! {
    /// Stems already computed on this thread (text repeats words; stemming allocates).
    static STEMS: std::cell::RefCell<HashMap<String, String>> = std::cell::RefCell::new(HashMap::new());
}

fn cached_stem(word: &str) -> String {
    STEMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(s) = cache.get(word) {
            return s.clone();
        }
        if cache.len() > 200_000 {
            cache.clear();
        }
        let s = porter::stem(word);
        cache.insert(word.to_string(), s.clone());
        s
    })
}

/// `RougeScorer([kind], use_stemmer=stem).score(target, prediction)[kind]`.
pub fn score(kind: RougeType, target: &str, prediction: &str, stem: bool) -> RougeScore {
    match kind {
        RougeType::N(n) => {
            let t = tokenize(target, stem);
            let p = tokenize(prediction, stem);
            score_ngrams(&ngrams(&t, n), &ngrams(&p, n))
        }
        RougeType::L => score_lcs(&tokenize(target, stem), &tokenize(prediction, stem)),
        RougeType::Lsum => {
            let sents = |text: &str| -> Vec<Vec<String>> {
                text.split('\n').filter(|s| !s.is_empty()).map(|s| tokenize(s, stem)).collect()
            };
            summary_level_lcs(&sents(target), &sents(prediction))
        }
    }
}

/// `RougeScorer.score_multi(targets, prediction)`: the score against the reference with the
/// highest F-measure (the first one on ties, as `np.argmax`). No reference scores zero.
pub fn score_multi(kind: RougeType, targets: &[String], prediction: &str, stem: bool) -> RougeScore {
    let mut best: Option<RougeScore> = None;
    for t in targets {
        let s = score(kind, t, prediction, stem);
        if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
            best = Some(s);
        }
    }
    best.unwrap_or_default()
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if n > 0 && tokens.len() >= n {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

fn score_ngrams(target: &HashMap<&[String], usize>, prediction: &HashMap<&[String], usize>) -> RougeScore {
    let overlap: usize = target.iter().map(|(g, &c)| c.min(prediction.get(g).copied().unwrap_or(0))).sum();
    let t: usize = target.values().sum();
    let p: usize = prediction.values().sum();
    RougeScore::new(overlap as f64 / p.max(1) as f64, overlap as f64 / t.max(1) as f64)
}

/// The LCS length table, `(rows + 1) × (cols + 1)`, row-major.
struct LcsTable {
    cols: usize,
    cells: Vec<u32>,
}

impl LcsTable {
    fn new(r: &[String], c: &[String]) -> Self {
        let cols = c.len() + 1;
        let mut cells = vec![0u32; (r.len() + 1) * cols];
        for i in 1..=r.len() {
            for j in 1..=c.len() {
                cells[i * cols + j] = if r[i - 1] == c[j - 1] {
                    cells[(i - 1) * cols + j - 1] + 1
                } else {
                    cells[(i - 1) * cols + j].max(cells[i * cols + j - 1])
                };
            }
        }
        LcsTable { cols, cells }
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * self.cols + j]
    }
}

fn score_lcs(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = LcsTable::new(target, prediction).at(target.len(), prediction.len()) as f64;
    RougeScore::new(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// `_backtrack_norec`: the indices into `r` of one LCS, with rouge-score's tie-breaking.
fn lcs_indices(r: &[String], c: &[String]) -> Vec<usize> {
    let t = LcsTable::new(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t.at(i, j - 1) > t.at(i - 1, j) {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// `_summary_level_lcs` (ROUGE paper §3.2): union LCS of each reference sentence against all
/// candidate sentences, hits clipped by token counts on both sides.
fn summary_level_lcs(refs: &[Vec<String>], cands: &[Vec<String>]) -> RougeScore {
    if refs.is_empty() || cands.is_empty() {
        return RougeScore::default();
    }
    let m: usize = refs.iter().map(Vec::len).sum();
    let n: usize = cands.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut count_r: HashMap<&str, i64> = HashMap::new();
    let mut count_c: HashMap<&str, i64> = HashMap::new();
    for tok in refs.iter().flatten() {
        *count_r.entry(tok).or_insert(0) += 1;
    }
    for tok in cands.iter().flatten() {
        *count_c.entry(tok).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for r in refs {
        let mut union: Vec<usize> = cands.iter().flat_map(|c| lcs_indices(r, c)).collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let tok = r[i].as_str();
            let (cc, cr) = (count_c.get(tok).copied().unwrap_or(0), count_r.get(tok).copied().unwrap_or(0));
            if cc > 0 && cr > 0 {
                hits += 1;
                *count_c.get_mut(tok).unwrap() -= 1;
                *count_r.get_mut(tok).unwrap() -= 1;
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_example() {
        // rouge-score README: rouge1 / rougeL of these two sentences, no stemmer.
        let s1 = score(RougeType::N(1), "The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log.", false);
        assert!((s1.precision - 0.75).abs() < 1e-12 && (s1.recall - 0.6666666666666666).abs() < 1e-12);
        let sl = score(RougeType::L, "The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log.", false);
        assert!((sl.fmeasure - 0.5882352941176471).abs() < 1e-12);
    }

    #[test]
    fn tokenizer_drops_non_ascii_and_stems_long_words() {
        assert_eq!(tokenize("Café RUNNING, naïve-run 42!", true), ["caf", "run", "na", "ve", "run", "42"]);
        assert!(tokenize("", true).is_empty());
    }
}
