//! SQuAD-style exact match and token F1 with the official answer normalization
//! (`evaluate-v2.0.py`: lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse
//! whitespace), best over the gold answers; SQuAD 2.0 no-answer questions (no gold answer that
//! survives normalization) are scored against the empty string.

use std::collections::HashMap;

use crate::pystr;

/// `normalize_answer`: `white_space_fix(remove_articles(remove_punc(lower(s))))`.
pub fn normalize_answer(s: &str) -> String {
    let lowered = pystr::lower(s);
    let no_punc: String = lowered.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let no_articles = remove_articles(&no_punc);
    pystr::split_whitespace(&no_articles).collect::<Vec<_>>().join(" ")
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)` with Python's Unicode `\w`: a maximal run of word
/// characters that is exactly `a`, `an` or `the` becomes one space.
fn remove_articles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if pystr::is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn tokens(s: &str) -> Vec<String> {
    pystr::split_whitespace(&normalize_answer(s)).map(str::to_string).collect()
}

/// `compute_exact`: 1.0 if the normalized strings are equal.
pub fn exact(gold: &str, pred: &str) -> f64 {
    if normalize_answer(gold) == normalize_answer(pred) { 1.0 } else { 0.0 }
}

/// `compute_f1`: bag-of-tokens F1 of the normalized strings (1.0 if both are empty).
pub fn f1(gold: &str, pred: &str) -> f64 {
    let g = tokens(gold);
    let p = tokens(pred);
    if g.is_empty() || p.is_empty() {
        return if g == p { 1.0 } else { 0.0 };
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &g {
        *counts.entry(t).or_insert(0) += 1;
    }
    let mut same = 0i64;
    for t in &p {
        if let Some(c) = counts.get_mut(t.as_str())
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// The gold answers as `get_raw_scores` uses them: those that normalize to something; if none
/// does, the question is unanswerable and the only gold answer is `""`.
fn golds(answers: &[String]) -> Vec<&str> {
    let g: Vec<&str> = answers.iter().map(String::as_str).filter(|a| !normalize_answer(a).is_empty()).collect();
    if g.is_empty() { vec![""] } else { g }
}

/// Best exact match over the gold answers (0 or 1).
pub fn best_exact(answers: &[String], pred: &str) -> f64 {
    golds(answers).into_iter().map(|a| exact(a, pred)).fold(0.0, f64::max)
}

/// Best F1 over the gold answers (0–1).
pub fn best_f1(answers: &[String], pred: &str) -> f64 {
    golds(answers).into_iter().map(|a| f1(a, pred)).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize_answer("The  Eiffel-Tower!"), "eiffeltower");
        assert_eq!(normalize_answer("an apple, a pear"), "apple pear");
        assert_eq!(normalize_answer("theater"), "theater");
    }

    #[test]
    fn f1_and_no_answer() {
        assert!((f1("the cat sat", "cat sat down") - 0.8).abs() < 1e-12);
        assert_eq!(best_exact(&[], ""), 1.0);
        assert_eq!(best_exact(&["the".into()], "something"), 0.0);
        assert_eq!(best_f1(&["Paris".into(), "City of Paris".into()], "paris"), 1.0);
    }
}
