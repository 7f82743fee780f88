#!/usr/bin/env python3
"""Reference outputs of Gemma 3 270M (the GGUF `models fetch gemma-3-270m` assembles) from Hugging
Face transformers loading the same GGUF file (it dequantizes every tensor to f32 and runs
Gemma3ForCausalLM with eager attention).

Usage: python3 gemma3_270m_reference.py GGUF_PATH OUT_JSON
Needs torch, transformers, gguf (PyPI). The committed output, tests/fixtures/gemma3_270m_reference.json,
holds per prompt: transformers' token ids (its GGUF tokenizer conversion, the reference for our
SentencePiece tokenizer), 16 greedy tokens from generate(), and per position of prompt ++ generated
the 8 largest logits with their ids and the log-sum-exp of the row (full rows of 262 144 logits are
too large to commit).
"""

import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Speculative decoding drafts tokens with a small model and",
]
MAX_NEW = 16
TOP = 8


@torch.no_grad()
def main():
    path, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cases = []
    for text in PROMPTS:
        ids = tok(text).input_ids
        g = model.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False, num_beams=1,
                           return_dict_in_generate=True, output_logits=True)
        seq = g.sequences[0].tolist()
        logits = model(torch.tensor([seq])).logits[0].double()
        lse = torch.logsumexp(logits, dim=-1)
        top = torch.topk(logits, TOP, dim=-1)
        raw = torch.stack([l[0] for l in g.logits]).double()
        lp = torch.log_softmax(raw, dim=-1)
        new = seq[len(ids):]
        cases.append({
            "text": text,
            "ids": ids,
            "generated": new,
            "logprobs": [lp[j, t].item() for j, t in enumerate(new)],
            "top_ids": top.indices.tolist(),
            "top_logits": [[round(v, 5) for v in row] for row in top.values.tolist()],
            "logsumexp": [round(v, 5) for v in lse.tolist()],
        })
        print(repr(text), "->", repr(tok.decode(new)))
    with open(out, "w") as fh:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "config": {k: getattr(model.config, k, None) for k in
                              ["sliding_window", "query_pre_attn_scalar", "rope_local_base_freq", "layer_types"]},
                   "max_new_tokens": MAX_NEW, "inputs": cases}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
