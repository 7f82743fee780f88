#!/usr/bin/env python3
"""A SentencePiece-style (Llama 2 / Mistral) tokenizer.json written with the Python `tokenizers`
library, and its encodings: reference for loading non-byte-level Hugging Face tokenizers.

Usage: tokenizer_spm_ref.py HF_DIR STRINGS.json OUT.json

Trains a small BPE with byte fallback (`<0xNN>` tokens) on the strings themselves, with the Llama 2
normalizer (prepend "▁", spaces → "▁") and decoder (▁ → space, byte fallback, fuse, strip one leading
space), `<s>`/`</s>` specials; saves tokenizer.json + tokenizer_config.json + config.json in HF_DIR;
writes for every string its ids and decoded text (with and without special tokens).
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, normalizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer


def main(hf_dir, strings_path, out):
    texts = json.load(open(strings_path))
    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # 1. Learn merges on half of the strings (the rest then needs byte fallback for unseen characters).
    trainer_tok = Tokenizer(BPE())
    trainer_tok.normalizer = normalizer
    trainer = BpeTrainer(vocab_size=600, initial_alphabet=["▁"], show_progress=False, limit_alphabet=25)
    trainer_tok.train_from_iterator(texts[: len(texts) // 2], trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    # 2. The Llama layout: <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then the learned pieces.
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in learned["merges"]]
    tok = Tokenizer(BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizer
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    os.makedirs(hf_dir, exist_ok=True)
    tok.save(os.path.join(hf_dir, "tokenizer.json"))
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True},
              open(os.path.join(hf_dir, "tokenizer_config.json"), "w"))
    json.dump({"bos_token_id": tok.token_to_id("<s>"), "eos_token_id": tok.token_to_id("</s>")},
              open(os.path.join(hf_dir, "config.json"), "w"))
    res = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        with_bos = [tok.token_to_id("<s>")] + ids
        res.append({
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_bos": tok.decode(with_bos, skip_special_tokens=False),
            "decoded_bos_skip": tok.decode(with_bos, skip_special_tokens=True),
        })
    json.dump(res, open(out, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
