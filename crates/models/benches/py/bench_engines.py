#!/usr/bin/env python3
"""Reference engines for BENCHMARKS.md (not CI): PyTorch (transformers, f32, loading the GGUF)
and llama.cpp (llama-cpp-python, the file's own quantization), measured exactly like
`benches/transformer_speed.rs`: decode after 64 tokens of context (median of single steps),
a 6-position block at the same depth rolled back each time (÷ one step), prefill of 512 tokens.

  bench_engines.py --engine torch|llamacpp --model FILE.gguf [--threads 2] [--steps 24] [--no-extra-bufts]

--no-extra-bufts loads llama.cpp's weights without its extra buffer types (the CPU repacking and
AMX layouts; llama.cpp's `--no-repack`): on the Intel Xeon of 2026-12-04 llama-cpp-python 0.3.36
segfaulted in its first decode with them, native build with or without GGML_AMX_*.
"""
import argparse
import json
import os
import statistics
import time


def toks(n, vocab, seed):
    return [((i * 2654435761 + seed) % (1 << 32) >> 7) % (vocab // 2) + 100 for i in range(n)]


def bench_torch(path, threads, steps):
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    torch.set_num_threads(threads)
    t0 = time.time()
    m = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32)
    m.eval()
    load = time.time() - t0
    vocab = m.config.vocab_size

    def run(ids, cache):
        with torch.no_grad():
            return m(torch.tensor([ids]), past_key_values=cache, use_cache=True).logits

    cache = DynamicCache()
    run(toks(64, vocab, 1), cache)
    step = []
    for i, t in enumerate(toks(steps + 3, vocab, 2)):
        t0 = time.perf_counter()
        run([t], cache)
        if i >= 3:
            step.append(time.perf_counter() - t0)
    base = cache.get_seq_length()
    block, single = [], []
    for r in range(8):
        b = toks(6, vocab, 10 + r)
        t0 = time.perf_counter()
        run(b, cache)
        block.append(time.perf_counter() - t0)
        cache.crop(-(cache.get_seq_length() - base))  # this transformers crops by a negative count
        t0 = time.perf_counter()
        run(b[:1], cache)
        single.append(time.perf_counter() - t0)
        cache.crop(-(cache.get_seq_length() - base))
    pre = []
    for r in range(2):
        t0 = time.perf_counter()
        with torch.no_grad():
            m(torch.tensor([toks(512, vocab, 100 + r)]), use_cache=True, logits_to_keep=1)
        pre.append(time.perf_counter() - t0)
    return load, step, block, single, pre


def bench_llamacpp(path, threads, steps, extra_bufts=True):
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    if not extra_bufts:
        # `Llama` builds its model parameters from this binding of the low-level module.
        default_params = lib.llama_model_default_params

        def params():
            p = default_params()
            p.use_extra_bufts = False
            return p

        lib.llama_model_default_params = params

    t0 = time.time()
    llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512,
                logits_all=True, verbose=False)
    load = time.time() - t0
    vocab = llm.n_vocab()
    llm.eval(toks(64, vocab, 1))
    step = []
    for i, t in enumerate(toks(steps + 3, vocab, 2)):
        t0 = time.perf_counter()
        llm.eval([t])
        if i >= 3:
            step.append(time.perf_counter() - t0)
    base = llm.n_tokens
    block, single = [], []
    for r in range(8):
        b = toks(6, vocab, 10 + r)
        t0 = time.perf_counter()
        llm.eval(b)
        block.append(time.perf_counter() - t0)
        llm.n_tokens = base  # eval() drops cache entries past n_tokens
        t0 = time.perf_counter()
        llm.eval(b[:1])
        single.append(time.perf_counter() - t0)
        llm.n_tokens = base
    # Prefill as ours does it: logits of the last position only (with logits_all=True llama.cpp
    # would also run the output head over all 512 positions, 18-38 % more work on these models).
    del llm
    llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512,
                logits_all=False, verbose=False)
    pre = []
    for r in range(2):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(toks(512, vocab, 100 + r))
        pre.append(time.perf_counter() - t0)
    return load, step, block, single, pre


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True, choices=["torch", "llamacpp"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--no-extra-bufts", action="store_true")
    a = ap.parse_args()
    if a.engine == "torch":
        load, step, block, single, pre = bench_torch(a.model, a.threads, a.steps)
    else:
        load, step, block, single, pre = bench_llamacpp(a.model, a.threads, a.steps, not a.no_extra_bufts)
    d, b, s = statistics.median(step), statistics.median(block), statistics.median(single)
    print(json.dumps({
        "engine": a.engine, "model": a.model, "extra_bufts": not a.no_extra_bufts, "loadavg": open("/proc/loadavg").read().strip(),
        "load_s": load, "decode_tok_s": 1 / d, "decode_ms": d * 1e3, "block6_ms": b * 1e3, "single_ms": s * 1e3,
        "block6_over_step": b / s, "prefill512_tok_s": 512 / min(pre),
    }))


if __name__ == "__main__":
    main()
