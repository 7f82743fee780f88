//! Corpus BLEU exactly as sacreBLEU 2.x computes it with its defaults: `13a` tokenization,
//! mixed case, `exp` smoothing, 4-gram order, no effective order, the closest reference length
//! (shorter on ties) for the brevity penalty, and its reproducibility signature.

use std::collections::HashMap;

use crate::pystr;

const MAX_ORDER: usize = 4;

/// The version of sacreBLEU whose numbers and signature this module reproduces.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// A corpus BLEU score with its sufficient statistics, as sacreBLEU's `BLEUScore`.
#[derive(Clone, Debug, PartialEq)]
pub struct BleuScore {
    /// BLEU on the 0–100 scale sacreBLEU prints.
    pub score: f64,
    pub counts: [u64; MAX_ORDER],
    pub totals: [u64; MAX_ORDER],
    /// n-gram precisions (0–100) after smoothing.
    pub precisions: [f64; MAX_ORDER],
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
    /// e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
    pub signature: String,
}

/// sacreBLEU's `13a` tokenizer (mteval-v13a): the same token string `Tokenizer13a()(line)` returns.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    let padded: Vec<char> = format!(" {line} ").chars().collect();
    // TokenizerRegexp: four `re.sub` passes, each a two-character pattern scanned left to right
    // without overlap, exactly as Python's `re.sub` finds its matches.
    let s = sub_each(&padded, is_13a_punct);
    let s = sub_pair(&s, |a, b| !a.is_ascii_digit() && matches!(b, '.' | ','), |a, b| vec![a, ' ', b, ' ']);
    let s = sub_pair(&s, |a, b| matches!(a, '.' | ',') && !b.is_ascii_digit(), |a, b| vec![' ', a, ' ', b]);
    let s = sub_pair(&s, |a, b| a.is_ascii_digit() && b == '-', |a, b| vec![a, ' ', b, ' ']);
    let s: String = s.into_iter().collect();
    pystr::split_whitespace(&s).collect::<Vec<_>>().join(" ")
}

/// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
fn is_13a_punct(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// `re.sub(r'([class])', r' \1 ', s)`.
fn sub_each(s: &[char], class: impl Fn(char) -> bool) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for &c in s {
        if class(c) {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

/// `re.sub` with a pattern of two single-character classes: leftmost, non-overlapping matches.
fn sub_pair(s: &[char], matches: impl Fn(char, char) -> bool, repl: impl Fn(char, char) -> Vec<char>) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 2);
    let mut i = 0;
    while i < s.len() {
        if i + 1 < s.len() && matches(s[i], s[i + 1]) {
            out.extend(repl(s[i], s[i + 1]));
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// `BLEU._preprocess_segment`: `rstrip` then tokenize (no lowercasing by default).
fn preprocess(segment: &str) -> String {
    tokenize_13a(pystr::rstrip(segment))
}

/// Counts of every n-gram (n = 1..=4) of `tokens`, keyed by the token slice itself.
fn ngram_counts<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], u64> {
    let mut counts = HashMap::with_capacity(tokens.len() * MAX_ORDER);
    for n in 1..=MAX_ORDER {
        if tokens.len() >= n {
            for w in tokens.windows(n) {
                *counts.entry(w).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// `_get_closest_ref_len`: the reference length closest to the hypothesis, the shorter on ties.
fn closest_ref_len(hyp_len: u64, ref_lens: &[u64]) -> u64 {
    let mut best: Option<(u64, u64)> = None;
    for &r in ref_lens {
        let diff = hyp_len.abs_diff(r);
        best = match best {
            None => Some((diff, r)),
            Some((d, l)) if diff < d || (diff == d && r < l) => Some((diff, r)),
            keep => keep,
        };
    }
    best.map_or(0, |(_, l)| l)
}

/// Segment statistics `[hyp_len, ref_len, correct₁..₄, total₁..₄]`.
fn segment_stats(hyp: &str, refs: &[String]) -> [u64; 2 + 2 * MAX_ORDER] {
    let ref_texts: Vec<String> = refs.iter().map(|r| preprocess(r)).collect();
    let ref_tokens: Vec<Vec<&str>> = ref_texts.iter().map(|t| pystr::split_whitespace(t).collect()).collect();
    let mut ref_max: HashMap<&[&str], u64> = HashMap::new();
    let mut ref_lens = Vec::with_capacity(refs.len());
    for toks in &ref_tokens {
        ref_lens.push(toks.len() as u64);
        for (g, c) in ngram_counts(toks) {
            let e = ref_max.entry(g).or_insert(0);
            *e = (*e).max(c);
        }
    }
    let tok = preprocess(hyp);
    let toks: Vec<&str> = pystr::split_whitespace(&tok).collect();
    let mut stats = [0u64; 2 + 2 * MAX_ORDER];
    stats[0] = toks.len() as u64;
    stats[1] = closest_ref_len(stats[0], &ref_lens);
    for (g, c) in ngram_counts(&toks) {
        let n = g.len() - 1;
        stats[2 + MAX_ORDER + n] += c;
        if let Some(&rc) = ref_max.get(g) {
            stats[2 + n] += c.min(rc);
        }
    }
    stats
}

/// `my_log`: log with log(0) floored to −9 999 999 999.
fn my_log(x: f64) -> f64 {
    if x == 0.0 { -9_999_999_999.0 } else { x.ln() }
}

/// sacreBLEU `BLEU().corpus_score(hypotheses, references)` where `references[i]` holds every
/// reference of segment `i` (a varying count gives `nrefs:var`, as sacreBLEU does).
pub fn corpus_bleu(hypotheses: &[String], references: &[Vec<String>]) -> BleuScore {
    assert_eq!(hypotheses.len(), references.len(), "one reference list per hypothesis");
    let mut sum = [0u64; 2 + 2 * MAX_ORDER];
    for (h, r) in hypotheses.iter().zip(references) {
        for (s, v) in sum.iter_mut().zip(segment_stats(h, r)) {
            *s += v;
        }
    }
    let nrefs = {
        let mut ns: Vec<usize> = references.iter().map(Vec::len).collect();
        ns.sort_unstable();
        ns.dedup();
        if ns.len() == 1 { ns[0].to_string() } else { "var".to_string() }
    };
    from_stats(&sum, false, &format!("nrefs:{nrefs}|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}"))
}

/// BLEU's sufficient statistics of one segment or a sum of segments: corpus BLEU over any subset
/// of examples is the score of the sum of their statistics (what a harness that scores examples
/// one at a time stores, then aggregates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BleuStats {
    pub sys_len: u64,
    pub ref_len: u64,
    pub counts: [u64; MAX_ORDER],
    pub totals: [u64; MAX_ORDER],
}

impl BleuStats {
    /// The statistics of one hypothesis against its references.
    pub fn segment(hypothesis: &str, references: &[String]) -> Self {
        Self::from_array(&segment_stats(hypothesis, references))
    }

    fn from_array(a: &[u64; 2 + 2 * MAX_ORDER]) -> Self {
        let mut s = BleuStats { sys_len: a[0], ref_len: a[1], ..Default::default() };
        s.counts.copy_from_slice(&a[2..2 + MAX_ORDER]);
        s.totals.copy_from_slice(&a[2 + MAX_ORDER..]);
        s
    }

    fn to_array(self) -> [u64; 2 + 2 * MAX_ORDER] {
        let mut a = [0u64; 2 + 2 * MAX_ORDER];
        a[0] = self.sys_len;
        a[1] = self.ref_len;
        a[2..2 + MAX_ORDER].copy_from_slice(&self.counts);
        a[2 + MAX_ORDER..].copy_from_slice(&self.totals);
        a
    }

    /// The statistics as one flat vector: `[sys_len, ref_len, counts…, totals…]`.
    pub fn to_vec(self) -> Vec<u64> {
        self.to_array().to_vec()
    }

    /// The inverse of [`BleuStats::to_vec`] (`None` for a vector of the wrong length).
    pub fn from_vec(v: &[u64]) -> Option<Self> {
        let a: &[u64; 2 + 2 * MAX_ORDER] = v.try_into().ok()?;
        Some(Self::from_array(a))
    }

    /// Read the statistics a [`crate::MetricResult`]'s `extra` carries (`sys_len`, `ref_len`,
    /// `counts`, `totals`).
    pub fn from_extra(extra: &serde_json::Value) -> Option<Self> {
        let list = |k: &str| -> Option<[u64; MAX_ORDER]> {
            let v: Vec<u64> = extra.get(k)?.as_array()?.iter().map(|x| x.as_u64()).collect::<Option<_>>()?;
            v.try_into().ok()
        };
        Some(BleuStats {
            sys_len: extra.get("sys_len")?.as_u64()?,
            ref_len: extra.get("ref_len")?.as_u64()?,
            counts: list("counts")?,
            totals: list("totals")?,
        })
    }

    /// Corpus BLEU of these (summed) statistics; `nrefs` is the signature's reference count
    /// (`"1"`, `"4"`, or `"var"`).
    pub fn corpus_score(&self, nrefs: &str) -> BleuScore {
        from_stats(&self.to_array(), false, &format!("nrefs:{nrefs}|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}"))
    }
}

impl std::ops::Add for BleuStats {
    type Output = BleuStats;
    fn add(self, o: BleuStats) -> BleuStats {
        let mut s = self;
        s.sys_len += o.sys_len;
        s.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            s.counts[n] += o.counts[n];
            s.totals[n] += o.totals[n];
        }
        s
    }
}

/// sacreBLEU `BLEU(effective_order=True).sentence_score(hypothesis, references)`: the
/// sentence-level BLEU sacreBLEU recommends (orders with no n-grams are left out).
pub fn sentence_bleu(hypothesis: &str, references: &[String]) -> BleuScore {
    let stats = segment_stats(hypothesis, references);
    let sig = format!("nrefs:{}|case:mixed|eff:yes|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}", references.len());
    from_stats(&stats, true, &sig)
}

/// `BLEU.compute_bleu` with `exp` smoothing.
fn from_stats(sum: &[u64; 2 + 2 * MAX_ORDER], effective_order: bool, signature: &str) -> BleuScore {
    let (sys_len, ref_len) = (sum[0], sum[1]);
    let mut counts = [0u64; MAX_ORDER];
    let mut totals = [0u64; MAX_ORDER];
    counts.copy_from_slice(&sum[2..2 + MAX_ORDER]);
    totals.copy_from_slice(&sum[2 + MAX_ORDER..]);

    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 };
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut score = 0.0;
    if counts.iter().any(|&c| c > 0) {
        let mut smooth = 1.0f64;
        let mut eff_order = MAX_ORDER;
        for n in 0..MAX_ORDER {
            if totals[n] == 0 {
                break;
            }
            if effective_order {
                eff_order = n + 1;
            }
            if counts[n] == 0 {
                smooth *= 2.0;
                precisions[n] = 100.0 / (smooth * totals[n] as f64);
            } else {
                precisions[n] = 100.0 * counts[n] as f64 / totals[n] as f64;
            }
        }
        let mut log_sum = 0.0;
        for &p in &precisions[..eff_order] {
            log_sum += my_log(p);
        }
        score = bp * (log_sum / eff_order as f64).exp();
    }
    BleuScore { score, counts, totals, precisions, bp, sys_len, ref_len, signature: signature.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a_cases() {
        assert_eq!(tokenize_13a("Hello, world! It's 3.14-ish."), "Hello , world ! It's 3.14 - ish .");
        assert_eq!(tokenize_13a("a..b"), "a . . b");
        assert_eq!(tokenize_13a("&quot;x&amp;y&quot;"), "\" x & y \"");
        assert_eq!(tokenize_13a(""), "");
    }

    #[test]
    fn summed_segment_stats_give_corpus_bleu() {
        let h: Vec<String> = ["the cat sat on the mat", "a dog ran", "hello world !"].iter().map(|s| s.to_string()).collect();
        let r: Vec<Vec<String>> = [["the cat sat on a mat"], ["the dog ran away"], ["hello , world !"]].iter().map(|x| vec![x[0].to_string()]).collect();
        let sum = h.iter().zip(&r).map(|(h, r)| BleuStats::segment(h, r)).fold(BleuStats::default(), |a, b| a + b);
        let direct = corpus_bleu(&h, &r);
        assert_eq!(sum.corpus_score("1"), direct);
        assert!(direct.score > 0.0 && direct.score < 100.0);
    }

    #[test]
    fn perfect_match_is_100() {
        let h = vec!["the cat sat on the mat".to_string()];
        let r = vec![vec!["the cat sat on the mat".to_string()]];
        let s = corpus_bleu(&h, &r);
        assert!((s.score - 100.0).abs() < 1e-9);
        assert_eq!(s.signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
    }
}
