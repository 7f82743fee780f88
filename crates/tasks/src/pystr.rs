//! Python `str` semantics the reference metrics rely on: `str.split()`, `str.isspace()`,
//! `str.isalnum()` and `re`'s Unicode `\w`. Rust's `char::is_whitespace` and
//! `char::is_alphanumeric` differ from Python's at a few code points (U+001C–U+001F are
//! whitespace to Python; combining marks are alphabetic to Rust), which would break parity.

use unicode_general_category::{GeneralCategory as G, get_general_category};

/// Python's `str.isspace()` for one character (Unicode White_Space plus U+001C–U+001F).
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: runs of whitespace separate, no empty pieces.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|t| !t.is_empty())
}

/// Python's `str.rstrip()` with no argument.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `str.strip()` with no argument.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.isalnum()` for one character: a letter (L*) or a number (N*).
pub fn is_alnum(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
    )
}

/// A character of `re`'s `\w` for `str` patterns: alphanumeric or `_`.
pub fn is_word(c: char) -> bool {
    c == '_' || is_alnum(c)
}

/// Python's `str.lower()` (full Unicode case mapping, final sigma included), as Rust's
/// `str::to_lowercase` implements it.
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_python_whitespace() {
        let s = "a\u{1c}b\u{a0}c\u{3000} d\t\n";
        assert_eq!(split_whitespace(s).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(rstrip("x \u{1f}\n"), "x");
    }

    #[test]
    fn alnum_excludes_combining_marks() {
        assert!(is_alnum('é'));
        assert!(is_alnum('中'));
        assert!(is_alnum('²'));
        assert!(!is_alnum('\u{301}'));
        assert!(!is_alnum('\u{93e}'));
        assert!(is_word('_'));
        assert!(!is_word('-'));
    }
}
