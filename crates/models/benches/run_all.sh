#!/usr/bin/env bash
# One run of every speed figure in BENCHMARKS.md's "Models" section: our engine (8-bit and f16),
# PyTorch f32 and llama.cpp on the same GGUF files, and spec_decode end to end (8-bit and f16).
# Not part of CI.
#
#   crates/models/benches/run_all.sh OUTDIR
#
# Needs: the three models fetched; a Python with torch + transformers + gguf + llama-cpp-python
# in $BENCH_PYTHON (e.g. a venv: pip install torch transformers gguf llama-cpp-python); HumanEval
# prompts as JSON lines in $HUMANEVAL_JSONL (fields "prompt").
set -euo pipefail
out="${1:?usage: run_all.sh OUTDIR}"
mkdir -p "$out"
cache="${SPECCASCADE_CACHE:-$HOME/.cache/speccascade}/models"
q05="$cache/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
q15="$cache/qwen2.5-coder-1.5b-instruct/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
py="${BENCH_PYTHON:?set BENCH_PYTHON to a python with torch, transformers, gguf, llama-cpp-python}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../../.."
log() { echo "[$(date -u +%H:%M:%S)] loadavg $(cut -d' ' -f1-3 /proc/loadavg): $*" | tee -a "$out/log.txt"; }
log "start; $(nproc) cores"
cargo bench -q -p speccascade-models --bench q8_kernel 2>/dev/null | tee "$out/q8_kernel.txt"
log "ours, 8-bit"
cargo bench -q -p speccascade-models --bench transformer_speed -- --model "$q05" --model "$q15" --json 2>/dev/null | tee "$out/ours.json"
log "ours, f16"
cargo bench -q -p speccascade-models --bench transformer_speed -- --precision f16 --model "$q05" --model "$q15" --json 2>/dev/null | tee "$out/ours_f16.json"
log "llama.cpp"
for m in "$q05" "$q15"; do "$py" "$here/py/bench_engines.py" --engine llamacpp --model "$m" | tee -a "$out/llamacpp.jsonl"; done
log "pytorch"
for m in "$q05" "$q15"; do "$py" "$here/py/bench_engines.py" --engine torch --model "$m" 2>/dev/null | tee -a "$out/torch.jsonl"; done
for p in q8 f16; do
  log "spec_decode end to end, $p"
  cargo bench -q -p speccascade-models --bench spec_decode_e2e -- --drafter "$q05" --verifier "$q15" \
    --prompts "${HUMANEVAL_JSONL:?set HUMANEVAL_JSONL}" --n 5 --max-new-tokens 128 --gamma 5 --precision $p 2>/dev/null | tee "$out/e2e_$p.txt"
done
log "done"
