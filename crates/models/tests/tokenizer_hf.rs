//! Loading a SentencePiece-style (Llama 2 / Mistral layout) Hugging Face `tokenizer.json`: byte
//! fallback tokens `<0xNN>`, `▁` spaces, the leading-space strip, `<s>` as BOS. The reference is a
//! tokenizer written and run by the Python `tokenizers` library (tests/py/tokenizer_spm_ref.py).
//! (The byte-level path of `tokenizer.json` is checked in tokenizer_parity.rs.)

mod gguf_support;

use gguf_support::*;
use speccascade_models::registry::{resolve_model, ModelLocation};
use speccascade_models::tokenizer::Tokenizer;

const PIECES: &[&str] = &[
    "Hello", " world", " ", "  ", "\n", "\t", "the", " quick", " brown", " fox", "def", "(x)", ":", "42", "é", "ß",
    "日本", "😀", "👍🏽", "ü", "?", "!", ".", ",", "return", " a", "b", "\u{301}", "中文", "Ω",
];

fn strings() -> Vec<String> {
    let mut out: Vec<String> = ["", " ", "Hello world", " leading space", "trailing ", "a\nb", "x  y", "😀", "<s>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while out.len() < 200 {
        let n = 1 + (next() % 10) as usize;
        out.push((0..n).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect());
    }
    out
}

#[test]
fn sentencepiece_style_tokenizer_json_matches_python() {
    let dir = scratch();
    let hf = dir.path().join("hf");
    let input = dir.path().join("strings.json");
    let output = dir.path().join("ref.json");
    let texts = strings();
    std::fs::write(&input, serde_json::to_string(&texts).unwrap()).unwrap();
    run_py("tokenizer_spm_ref.py", &[hf.to_str().unwrap(), input.to_str().unwrap(), output.to_str().unwrap()]);
    let reference: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();

    let tok = Tokenizer::from_hf_dir(&hf).unwrap();
    let bos = tok.token_to_id("<s>").unwrap();
    assert_eq!(tok.bos_id(), Some(bos));
    assert_eq!(tok.eos_ids(), &[tok.token_to_id("</s>").unwrap()]);
    assert!(tok.add_bos());
    assert!(tok.chat_template().is_none());
    let mut fallback_bytes = 0;
    for (text, r) in texts.iter().zip(&reference) {
        let want: Vec<u32> = r["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(ids, want, "ids of {text:?}");
        fallback_bytes += ids.iter().filter(|&&i| (3..259).contains(&i)).count();
        assert_eq!(tok.decode(&ids, false), r["decoded"].as_str().unwrap(), "decode of {text:?}");
        let mut with_bos = vec![bos];
        with_bos.extend(&ids);
        assert_eq!(tok.encode_prompt(text, true).unwrap(), with_bos, "BOS prepended");
        assert_eq!(tok.decode(&with_bos, false), r["decoded_bos"].as_str().unwrap(), "decode of <s> + {text:?}");
        assert_eq!(tok.decode(&with_bos, true), r["decoded_bos_skip"].as_str().unwrap(), "skip-special decode of {text:?}");
        let mut s = tok.stream(true);
        let mut streamed = String::new();
        for &id in &with_bos {
            let chunk = s.push(id);
            assert!(!chunk.contains('\u{fffd}'), "split character while streaming {text:?}");
            streamed.push_str(&chunk);
        }
        streamed.push_str(&s.finish());
        assert_eq!(streamed, r["decoded_bos_skip"].as_str().unwrap());
    }
    assert!(fallback_bytes > 50, "the strings exercise byte fallback ({fallback_bytes} byte tokens)");
}

#[test]
fn hf_directory_resolves_with_its_tokenizer() {
    let dir = scratch();
    let hf = dir.path().join("hf");
    let input = dir.path().join("strings.json");
    std::fs::write(&input, serde_json::to_string(&strings()).unwrap()).unwrap();
    run_py(
        "tokenizer_spm_ref.py",
        &[hf.to_str().unwrap(), input.to_str().unwrap(), dir.path().join("o.json").to_str().unwrap()],
    );
    std::fs::write(hf.join("model.safetensors"), b"").unwrap();
    let loc = resolve_model(hf.to_str().unwrap()).unwrap();
    assert!(matches!(loc, ModelLocation::HfDir { .. }));
    let tok = Tokenizer::from_location(&loc).unwrap();
    assert_eq!(tok.decode(&tok.encode("Hello world", true).unwrap(), false), "Hello world");
}
