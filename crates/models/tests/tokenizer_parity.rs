//! Tokenizer parity: our GGUF-built tokenizer against a reference built with the Python
//! `tokenizers` library from the same GGUF metadata (tests/py/tokenizer_ref.py), on 300+ varied
//! strings (code, unicode, emoji, CJK, whitespace runs, digits, special tokens), for the Qwen2.5
//! and SmolLM2 vocabularies; plus streaming detokenization and the chat template.

mod gguf_support;

use gguf_support::*;
use speccascade_models::gguf::GgufFile;
use speccascade_models::tokenizer::{ChatMessage, Tokenizer};

/// Hand-written cases covering each pre-tokenizer rule and known trouble spots.
const CASES: &[&str] = &[
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "\t",
    " \t \n \r\n ",
    "Hello world",
    "Hello, world!",
    " Hello world ",
    "hello    world",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n\tprintln!(\"{}\", 1 + 2);\n}\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)",
    "{\"key\": [1, 2.5, -3e10, null, true], \"nested\": {\"a\": \"b\"}}",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "<html><body class=\"main\">&amp; &lt;tag&gt;</body></html>",
    "    \n    \n\n        x = 1\n",
    "a\r\nb\r\n\r\nc",
    "trailing spaces   ",
    "                                                                ",
    "\t\t\t\tindent",
    "I'm you're he's we've they'll she'd it's DON'T I'M YOU'LL",
    "don't won't can't shouldn't",
    "'s 't 're 've 'm 'll 'd",
    "1234567890",
    "3.14159265358979",
    "1,000,000 and 1.000.000 and 1_000_000",
    "0x7fff_ffff 0b1010 1e-9 -42 +7",
    "year 2024, 12:30:45, 2024-05-28T12:00:00Z",
    "１２３ ٣٤٥ ४५६ (full-width, Arabic-Indic, Devanagari digits)",
    "Ünïcödé çàfé naïve résumé",
    "e\u{301}te\u{301} (combining accents, NFC changes them)",
    "Å vs A\u{30a}, ﬁ ligature, Ⅻ roman",
    "日本語のテキストです。東京は大きい。",
    "中文测试：你好，世界！",
    "한국어 텍스트 안녕하세요",
    "Русский текст, привет мир",
    "Ελληνικά κείμενα",
    "عربي: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी पाठ नमस्ते",
    "ไทย สวัสดีครับ",
    "emoji 😀😃😄 👍🏽 🇫🇷🇯🇵 👨‍👩‍👧‍👦 ❤️‍🔥",
    "🦀 Rust and 🐍 Python",
    "math ∑∫∂√∞ ≤ ≥ ≠ ± × ÷ → ⇒ ∀∃",
    "symbols ©®™ §¶ †‡ •… ‰ € £ ¥ ¢",
    "zero\u{200b}width\u{200d}joiner\u{feff}bom",
    "control \u{1}\u{7f} chars",
    "replacement \u{fffd} char",
    "<|im_start|>user\nWrite a function.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|><|im_start|>",
    "<|im_start",
    "|im_end|>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<repo_name>x<file_sep>y<filename>z",
    "< |im_start| >",
    "!!!???...,,,;;;:::",
    "---===+++***###@@@",
    "a.b.c a-b-c a_b_c a/b/c a\\b\\c",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.com",
    "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE",
    "x=1;y=2;z=x+y",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ab ab ab ab ab ab ab ab ab ab ab ab",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX",
    "tHe QuIcK bRoWn",
    "Mixed 中文 and English 混合",
    "a\u{0}b",
    "\u{10ffff}\u{e000}",
];

/// Pieces combined by a seeded generator into more strings.
const PIECES: &[&str] = &[
    "def", " ", "  ", "    ", "\n", "\n\n", "\t", "(", ")", "{", "}", "x", "foo_bar", "Bar", "42", "3.5", "1000",
    "'s", "'ll", "é", "日本", "😀", "👍🏽", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "return", ":", ";", ",",
    "\r\n", "αβγ", "//", "#", "\"", "'", "->", "=>", "::", "&&", "||", "!", "?", "ü", "ß", "İ", "ǅ", "\u{301}",
];

fn strings() -> Vec<String> {
    let mut out: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while out.len() < 360 {
        let n = 1 + (next() % 12) as usize;
        let s: String = (0..n).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
        out.push(s);
    }
    // Long whitespace runs of every kind.
    for k in [17, 100, 1000] {
        out.push(" ".repeat(k));
        out.push(format!("x{}y", " ".repeat(k)));
        out.push("\n".repeat(k / 4 + 1));
        out.push(format!("a{}b", " \t".repeat(k / 2)));
    }
    out.push(include_str!("tokenizer_parity.rs").to_string()); // this file: long code
    out
}

fn parity(name: &str) {
    let Some(path) = cached_model(name) else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let texts = strings();
    assert!(texts.len() >= 300);
    let dir = scratch();
    let input = dir.path().join("strings.json");
    let output = dir.path().join("ref.json");
    std::fs::write(&input, serde_json::to_string(&texts).unwrap()).unwrap();
    let hf = dir.path().join("hf");
    run_py(
        "tokenizer_ref.py",
        &[path.to_str().unwrap(), input.to_str().unwrap(), output.to_str().unwrap(), hf.to_str().unwrap()],
    );
    // The same tokenizer loaded from the tokenizer.json the reference saved (the HF-directory path).
    let from_json = Tokenizer::from_hf_dir(&hf).unwrap();
    assert_eq!(from_json.eos_ids(), tok.eos_ids());
    assert_eq!(from_json.chat_template(), tok.chat_template());
    let reference: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(reference.len(), texts.len());
    let ids_of = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
    };
    let mut total_tokens = 0;
    for (text, r) in texts.iter().zip(&reference) {
        let ours = tok.encode(text, true).unwrap();
        assert_eq!(ours, ids_of(&r["ids"]), "{name}: ids differ for {text:?}");
        let plain = tok.encode(text, false).unwrap();
        assert_eq!(plain, ids_of(&r["plain_ids"]), "{name}: ids (specials as text) differ for {text:?}");
        assert_eq!(tok.decode(&ours, false), r["decoded"].as_str().unwrap(), "{name}: decode differs for {text:?}");
        assert_eq!(from_json.encode(text, true).unwrap(), ours, "{name}: tokenizer.json ids differ for {text:?}");
        assert_eq!(from_json.decode(&ours, false), r["decoded"].as_str().unwrap());
        // Streaming gives the same text, chunk by chunk.
        let mut s = tok.stream(false);
        let mut streamed = String::new();
        for &id in &ours {
            let chunk = s.push(id);
            assert!(!chunk.contains('\u{fffd}') || text.contains('\u{fffd}'), "{name}: split character in {text:?}");
            streamed.push_str(&chunk);
        }
        streamed.push_str(&s.finish());
        assert_eq!(streamed, tok.decode(&ours, false));
        total_tokens += ours.len();
    }
    eprintln!("{name}: {} strings, {total_tokens} tokens identical to the Python reference", texts.len());
}

#[test]
fn qwen_tokenizer_matches_python_tokenizers() {
    parity("qwen2.5-coder-0.5b-instruct");
}

#[test]
fn smollm2_tokenizer_matches_python_tokenizers() {
    parity("smollm2-135m-instruct");
}

#[test]
fn qwen_specials_ids_and_chat_template() {
    let Some(path) = cached_model("qwen2.5-coder-0.5b-instruct") else { return };
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(tok.vocab_size(), 151_936);
    // Well-known Qwen2 ids.
    assert_eq!(tok.encode("Hello world", true).unwrap(), vec![9707, 1879]);
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(151_644));
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(151_645));
    assert_eq!(tok.eos_ids()[0], 151_645);
    assert!(tok.eos_ids().contains(&151_643));
    assert!(!tok.add_bos());
    let prompt = tok.apply_chat(&[ChatMessage::user("def fib(n):")], true).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\ndef fib(n):<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tok.encode(&prompt, true).unwrap();
    assert_eq!(ids[0], 151_644);
    assert_eq!(ids.iter().filter(|&&i| i == 151_645).count(), 2);
    assert_eq!(tok.decode(&ids, true).matches("im_start").count(), 0, "skip_special drops control tokens");
    // Without special parsing the markers are ordinary text.
    assert!(!tok.encode(&prompt, false).unwrap().contains(&151_644));
}

#[test]
fn smollm2_specials_and_chat_template() {
    let Some(path) = cached_model("smollm2-135m-instruct") else { return };
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(tok.vocab_size(), 49_152);
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
    assert_eq!(tok.eos_ids()[0], 2);
    assert_eq!(tok.bos_id(), Some(1));
    let prompt = tok.apply_chat(&[ChatMessage::user("hi")], true).unwrap();
    assert!(prompt.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"));
    // Digits are split one by one.
    let ids = tok.encode("12345", true).unwrap();
    assert_eq!(ids.len(), 5);
}

#[test]
fn streaming_holds_back_partial_characters() {
    let Some(path) = cached_model("qwen2.5-coder-0.5b-instruct") else { return };
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    // Byte-level tokens for the single bytes of "😀" (F0 9F 98 80): feed them one at a time.
    let byte_ids: Vec<u32> = [0xF0u8, 0x9F, 0x98, 0x80]
        .iter()
        .map(|&b| {
            (0..tok.vocab_size() as u32).find(|&id| tok.token_bytes(id) == [b]).expect("single-byte token")
        })
        .collect();
    let mut s = tok.stream(false);
    assert_eq!(s.push(byte_ids[0]), "");
    assert_eq!(s.push(byte_ids[1]), "");
    assert_eq!(s.push(byte_ids[2]), "");
    assert_eq!(s.push(byte_ids[3]), "😀");
    // A dangling lead byte at the end is flushed as U+FFFD; an impossible byte right away.
    let mut s = tok.stream(false);
    assert_eq!(s.push(byte_ids[0]), "");
    assert_eq!(s.finish(), "\u{fffd}");
    let ff = (0..tok.vocab_size() as u32).find(|&id| tok.token_bytes(id) == [0xFF]).unwrap();
    let mut s = tok.stream(false);
    assert_eq!(s.push(ff), "\u{fffd}");
}

#[test]
fn unsupported_tokenizers_are_refused() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthetic.gguf");
    let e = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
    assert!(e.to_string().contains("tokenizer.ggml.model"), "{e}");
}
