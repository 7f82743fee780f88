//! Incremental detokenization: token ids in, complete UTF-8 characters out.

use super::{Surface, Tokenizer};
use std::collections::HashMap;

/// GPT-2's byte ↔ printable-character table: bytes that are printable Latin-1 map to themselves,
/// the others to `U+0100 + k` in order. Returns char → byte.
pub(crate) fn byte_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u8> = (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars: Vec<u32> = printable.iter().map(|&b| b as u32).collect();
    let mut n = 0;
    for b in 0..=255u8 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable.into_iter().zip(chars).map(|(b, c)| (char::from_u32(c).expect("valid char"), b)).collect()
}

/// The bytes a vocabulary string stands for.
pub(crate) fn surface_bytes(token: &str, surface: Surface, inverse: &HashMap<char, u8>) -> Vec<u8> {
    match surface {
        Surface::ByteLevel => {
            let mut out = Vec::with_capacity(token.len());
            for c in token.chars() {
                match inverse.get(&c) {
                    Some(&b) => out.push(b),
                    // Not a byte-level character (should not occur): keep its UTF-8.
                    None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            out
        }
        Surface::SentencePiece { .. } => {
            let b = token.as_bytes();
            if b.len() == 6 && token.starts_with("<0x") && token.ends_with('>')
                && let Ok(v) = u8::from_str_radix(&token[3..5], 16) {
                    return vec![v];
                }
            token.replace('\u{2581}', " ").into_bytes()
        }
    }
}

/// Decodes a growing sequence of ids, emitting text only once every byte of a character has
/// arrived: a multi-byte character split across tokens (emoji, CJK in byte-level BPE) is held
/// back until complete. Bytes that can never form a character are emitted as U+FFFD.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
    skip_special: bool,
    at_start: bool,
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        StreamDecoder { tok, pending: Vec::new(), skip_special, at_start: true }
    }

    /// Add one token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        if self.skip_special && self.tok.is_control(id) {
            return String::new();
        }
        let bytes = self.tok.token_bytes(id);
        let bytes = match self.tok.surface {
            Surface::SentencePiece { strip_leading_space: true } if self.at_start && bytes.first() == Some(&b' ') => {
                &bytes[1..]
            }
            _ => bytes,
        };
        if !bytes.is_empty() {
            self.at_start = false;
        }
        self.pending.extend_from_slice(bytes);
        self.drain(false)
    }

    /// Flush what is left at the end of generation (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        self.drain(true)
    }

    fn drain(&mut self, flush: bool) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[start..start + valid]).expect("validated prefix"));
                    start += valid;
                    match e.error_len() {
                        // Invalid bytes: they can never complete a character.
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start += n;
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            if flush {
                                out.push('\u{FFFD}');
                                start = self.pending.len();
                            }
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let d = byte_decoder();
        assert_eq!(d.len(), 256);
        assert_eq!(d[&'Ġ'], b' ');
        assert_eq!(d[&'Ċ'], b'\n');
        assert_eq!(d[&'a'], b'a');
        assert_eq!(d[&'ĉ'], b'\t');
    }
}
