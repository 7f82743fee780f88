//! GSM8K answer extraction and exact match as lm-evaluation-harness (v0.4) scores its `gsm8k`
//! task: the `strict-match` filter (`#### N`), the `flexible-extract` filter (the last number-like
//! span), and `exact_match` with `ignore_case` and `regexes_to_ignore = [",", "\$", "(?s).*#### ",
//! "\.$"]` applied to both the extracted answer and the gold answer.

use std::sync::LazyLock;

use regex::Regex;

/// What the filters return when nothing matches.
pub const INVALID: &str = "[invalid]";

static STRICT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#### (\-?[0-9\.\,]+)").unwrap());
static STRICT_COT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"The answer is (\-?[0-9\.\,]+).").unwrap());
static FLEXIBLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").unwrap());

/// An answer-extraction filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extraction {
    /// `#### (\-?[0-9\.\,]+)`, first match (`gsm8k.yaml` strict-match).
    Strict,
    /// `The answer is (\-?[0-9\.\,]+).`, first match (`gsm8k-cot.yaml` strict-match).
    StrictCot,
    /// `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match (flexible-extract).
    Flexible,
}

/// lm-eval's `RegexFilter` + `take_first`: the selected match's first non-empty group, stripped,
/// or `[invalid]`.
pub fn extract(response: &str, how: Extraction) -> String {
    let (re, last) = match how {
        Extraction::Strict => (&*STRICT, false),
        Extraction::StrictCot => (&*STRICT_COT, false),
        Extraction::Flexible => (&*FLEXIBLE, true),
    };
    let caps = if last { re.captures_iter(response).last() } else { re.captures(response) };
    let Some(caps) = caps else { return INVALID.to_string() };
    // `findall` yields the one group for single-group patterns, a tuple otherwise; of a tuple the
    // first non-empty element is kept.
    match (1..caps.len()).filter_map(|i| caps.get(i)).map(|m| m.as_str()).find(|s| !s.is_empty()) {
        Some(s) => crate::pystr::strip(s).to_string(),
        None => INVALID.to_string(),
    }
}

/// The `regexes_to_ignore` of the gsm8k task, applied in order, then `lower()`.
pub fn normalize(s: &str) -> String {
    let s = s.replace([',', '$'], "");
    // `(?s).*#### `: greedy from the start, so everything through the last "#### " goes.
    let s = match s.rfind("#### ") {
        Some(i) => s[i + 5..].to_string(),
        None => s,
    };
    // `\.$`: a "." at the very end, or just before a final "\n" (Python's `$`).
    let s = if let Some(head) = s.strip_suffix('.') {
        head.to_string()
    } else if let Some(head) = s.strip_suffix(".\n") {
        format!("{head}\n")
    } else {
        s
    };
    s.to_lowercase()
}

/// Exact match (0 or 1) of an extracted answer against the gold answer (a full GSM8K solution
/// ending in `#### N`, or just the number).
pub fn exact_match(extracted: &str, gold: &str) -> f64 {
    if normalize(extracted) == normalize(gold) { 1.0 } else { 0.0 }
}

/// The gold number of a GSM8K solution: the text after the last `####`, trimmed.
pub fn gold_answer(solution: &str) -> &str {
    match solution.rfind("####") {
        Some(i) => crate::pystr::strip(&solution[i + 4..]),
        None => crate::pystr::strip(solution),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_flexible() {
        let r = "She has 3 + 4 = 7 apples.\n#### 7\n\nQuestion: 12";
        assert_eq!(extract(r, Extraction::Strict), "7");
        assert_eq!(extract(r, Extraction::Flexible), "12");
        assert_eq!(extract("no number", Extraction::Strict), INVALID);
        assert_eq!(extract("The answer is $1,234.", Extraction::Flexible), "$1,234.");
        assert_eq!(extract("So the answer is 1,000. The answer is 1,000.", Extraction::StrictCot), "1,000");
        assert_eq!(exact_match("$1,234.", "Total is 1234.\n#### 1,234"), 1.0);
        assert_eq!(exact_match(INVALID, "#### 5"), 0.0);
        assert_eq!(gold_answer("a\n#### 72"), "72");
    }
}
