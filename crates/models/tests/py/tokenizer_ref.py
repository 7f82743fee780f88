#!/usr/bin/env python3
"""Reference tokenizer built from a GGUF file's metadata with the Python `tokenizers` library.

Usage: tokenizer_ref.py MODEL.gguf STRINGS.json OUT.json [HF_DIR]

Constructs, independently of the Rust code, the tokenizer the model's tokenizer.json describes:
BPE from `tokenizer.ggml.tokens` + `tokenizer.ggml.merges`; the pre-tokenizer named by
`tokenizer.ggml.pre` (qwen2: NFC + Qwen2 split regex + byte-level; smollm: single digits + GPT-2
byte-level regex); control tokens (token_type 3) as special tokens, user-defined (4) as added tokens.
For every input string writes the ids with special tokens parsed, the ids with special tokens
treated as text, and the decoded text of the first. With HF_DIR, also saves the reference as a
Hugging Face directory there (tokenizer.json, tokenizer_config.json with the GGUF's chat template and
EOS token, config.json with the EOS id), to test loading from tokenizer.json.
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def strings(field):
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def build(path):
    r = GGUFReader(path)
    f = r.fields
    assert strings(f["tokenizer.ggml.model"])[0] == "gpt2"
    pre = strings(f["tokenizer.ggml.pre"])[0]
    tokens = strings(f["tokenizer.ggml.tokens"])
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    merges = [tuple(m.split(" ", 1)) for m in strings(f["tokenizer.ggml.merges"])]
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    tok = Tokenizer(BPE(vocab, merges))
    if pre == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    elif pre in ("smollm", "starcoder"):
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    else:
        raise SystemExit(f"reference does not know pre-tokenizer {pre}")
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    return tok


def save_hf(model, tok, hf_dir):
    import os
    r = GGUFReader(model)
    f = r.fields
    tokens = strings(f["tokenizer.ggml.tokens"])
    eos = int(f["tokenizer.ggml.eos_token_id"].parts[-1][0])
    os.makedirs(hf_dir, exist_ok=True)
    tok.save(os.path.join(hf_dir, "tokenizer.json"))
    cfg = {"eos_token": tokens[eos], "add_bos_token": False}
    if "tokenizer.chat_template" in f:
        cfg["chat_template"] = strings(f["tokenizer.chat_template"])[0]
    json.dump(cfg, open(os.path.join(hf_dir, "tokenizer_config.json"), "w"))
    json.dump({"eos_token_id": eos}, open(os.path.join(hf_dir, "config.json"), "w"))


def main(model, strings_path, out, hf_dir=None):
    tok = build(model)
    if hf_dir:
        save_hf(model, tok, hf_dir)
    texts = json.load(open(strings_path))
    plain = build(model)
    plain.encode_special_tokens = True
    res = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        res.append({
            "ids": ids,
            "plain_ids": plain.encode(t, add_special_tokens=False).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
        })
    json.dump(res, open(out, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:])
