//! The Porter stemmer exactly as NLTK's `PorterStemmer()` (mode `NLTK_EXTENSIONS`, the default)
//! computes it, which is what `rouge-score`'s tokenizer calls with `use_stemmer=True`.
//!
//! Every rule list is applied the way NLTK's `_apply_rule_list` does it: the *first* rule whose
//! suffix matches decides, and if its condition fails the word is returned unchanged (later
//! rules are not tried). The NLTK departures from the 1980 paper are all here: the irregular
//! forms pool, `ies`/`ied` on four-letter words, the two-letter `*o` condition, `y → i` only after
//! a consonant, the `alli` recursion, `bli → ble`, `fulli`, `logi`, and the `ll` rule measuring
//! the word less one letter.

/// A word under stemming: characters, so that indexing matches Python's `str` indexing.
type Word = Vec<char>;

const IRREGULAR: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

/// Stems one word as `nltk.stem.porter.PorterStemmer().stem(word)` does.
pub fn stem(word: &str) -> String {
    // NLTK looks the *original* word up in the pool but returns the pool entry for the lowered one.
    let lowered = word.to_lowercase();
    if let Some((_, root)) = IRREGULAR.iter().find(|(form, _)| *form == word) {
        return (*root).to_string();
    }
    if word.chars().count() <= 2 {
        return lowered;
    }
    let mut w: Word = lowered.chars().collect();
    w = step1a(w);
    w = step1b(w);
    w = step1c(w);
    w = step2(w);
    w = step3(w);
    w = step4(w);
    w = step5a(w);
    w = step5b(w);
    w.into_iter().collect()
}

fn is_vowel_letter(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

fn is_consonant(w: &[char], i: usize) -> bool {
    if is_vowel_letter(w[i]) {
        return false;
    }
    if w[i] == 'y' {
        return if i == 0 { true } else { !is_consonant(w, i - 1) };
    }
    true
}

/// The number of `vc` pairs in the word's consonant/vowel pattern.
fn measure(stem: &[char]) -> usize {
    let mut m = 0;
    for i in 1..stem.len() {
        if !is_consonant(stem, i - 1) && is_consonant(stem, i) {
            m += 1;
        }
    }
    m
}

fn contains_vowel(stem: &[char]) -> bool {
    (0..stem.len()).any(|i| !is_consonant(stem, i))
}

fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    w.len() >= s.len() && w[w.len() - s.len()..] == s[..]
}

/// `word` without its last `n` characters.
fn cut(w: &[char], n: usize) -> Word {
    w[..w.len() - n].to_vec()
}

fn join(stem: Word, tail: &str) -> Word {
    let mut out = stem;
    out.extend(tail.chars());
    out
}

/// A rule's condition, evaluated on the stem left after removing the suffix.
type Cond<'a> = &'a dyn Fn(&[char]) -> bool;

/// NLTK's `_apply_rule_list` for plain suffix rules: the first matching suffix decides.
fn apply_rules(w: Word, rules: &[(&str, &str, Cond)]) -> Word {
    for (suffix, replacement, cond) in rules {
        if ends_with(&w, suffix) {
            let stem = cut(&w, suffix.chars().count());
            return if cond(&stem) { join(stem, replacement) } else { w };
        }
    }
    w
}

fn positive(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn step1a(w: Word) -> Word {
    if ends_with(&w, "ies") && w.len() == 4 {
        return join(cut(&w, 3), "ie");
    }
    let always: Cond = &|_| true;
    apply_rules(w, &[("sses", "ss", always), ("ies", "i", always), ("ss", "ss", always), ("s", "", always)])
}

fn step1b(w: Word) -> Word {
    if ends_with(&w, "ied") {
        return if w.len() == 4 { join(cut(&w, 3), "ie") } else { join(cut(&w, 3), "i") };
    }
    if ends_with(&w, "eed") {
        let stem = cut(&w, 3);
        return if measure(&stem) > 0 { join(stem, "ee") } else { w };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if ends_with(&w, suffix) {
            let stem = cut(&w, suffix.len());
            if contains_vowel(&stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = intermediate else { return w };
    // The rule list of step 1b, in NLTK's order: at/bl/iz, then *d, then (m=1 and *o) -> +e.
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if ends_with(&stem, suffix) {
            return join(cut(&stem, 2), replacement);
        }
    }
    if ends_double_consonant(&stem) {
        let last = stem[stem.len() - 1];
        return if !matches!(last, 'l' | 's' | 'z') {
            let mut out = cut(&stem, 2);
            out.push(last);
            out
        } else {
            stem
        };
    }
    if measure(&stem) == 1 && ends_cvc(&stem) { join(stem, "e") } else { stem }
}

fn step1c(w: Word) -> Word {
    let cond: Cond = &|stem| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rules(w, &[("y", "i", cond)])
}

fn step2(w: Word) -> Word {
    if ends_with(&w, "alli") && positive(&cut(&w, 4)) {
        return step2(join(cut(&w, 4), "al"));
    }
    let p: Cond = &positive;
    let whole = w.clone();
    let logi: Cond = &move |_| positive(&cut(&whole, 3));
    let rules: [(&str, &str, Cond); 22] = [
        ("ational", "ate", p),
        ("tional", "tion", p),
        ("enci", "ence", p),
        ("anci", "ance", p),
        ("izer", "ize", p),
        ("bli", "ble", p),
        ("alli", "al", p),
        ("entli", "ent", p),
        ("eli", "e", p),
        ("ousli", "ous", p),
        ("ization", "ize", p),
        ("ation", "ate", p),
        ("ator", "ate", p),
        ("alism", "al", p),
        ("iveness", "ive", p),
        ("fulness", "ful", p),
        ("ousness", "ous", p),
        ("aliti", "al", p),
        ("iviti", "ive", p),
        ("biliti", "ble", p),
        ("fulli", "ful", p),
        ("logi", "log", logi),
    ];
    apply_rules(w, &rules)
}

fn step3(w: Word) -> Word {
    let p: Cond = &positive;
    apply_rules(
        w,
        &[
            ("icate", "ic", p),
            ("ative", "", p),
            ("alize", "al", p),
            ("iciti", "ic", p),
            ("ical", "ic", p),
            ("ful", "", p),
            ("ness", "", p),
        ],
    )
}

fn step4(w: Word) -> Word {
    let m1: Cond = &|stem| measure(stem) > 1;
    let ion: Cond = &|stem| measure(stem) > 1 && matches!(stem.last(), Some('s' | 't'));
    apply_rules(
        w,
        &[
            ("al", "", m1),
            ("ance", "", m1),
            ("ence", "", m1),
            ("er", "", m1),
            ("ic", "", m1),
            ("able", "", m1),
            ("ible", "", m1),
            ("ant", "", m1),
            ("ement", "", m1),
            ("ment", "", m1),
            ("ent", "", m1),
            ("ion", "", ion),
            ("ou", "", m1),
            ("ism", "", m1),
            ("ate", "", m1),
            ("iti", "", m1),
            ("ous", "", m1),
            ("ive", "", m1),
            ("ize", "", m1),
        ],
    )
}

fn step5a(w: Word) -> Word {
    if ends_with(&w, "e") {
        let stem = cut(&w, 1);
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    w
}

fn step5b(w: Word) -> Word {
    let whole = w.clone();
    let cond: Cond = &move |_| measure(&cut(&whole, 1)) > 1;
    apply_rules(w, &[("ll", "l", cond)])
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn paper_and_nltk_examples() {
        // Pairs from the Porter paper and NLTK's own docstrings/tests.
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("controlling", "control"),
            ("dying", "die"),
            ("skies", "sky"),
            ("analogously", "analog"),
            ("running", "run"),
            ("generously", "gener"),
        ] {
            assert_eq!(stem(w), s, "stem({w})");
        }
    }
}
