#!/usr/bin/env python3
"""Independent numpy reference of the llama / qwen2 decoder, for the Rust parity tests.

Weights come from a GGUF file (dequantized by the `gguf` package of the llama.cpp project) or a
Hugging Face directory (config.json + safetensors, read here with numpy). The forward pass follows
the HF modelling code: rotate_half rotary embeddings on HF-ordered Q/K weights. GGUF llama files
store Q/K rows permuted for llama.cpp's interleaved rotation; this script undoes that permutation
(the inverse of convert_hf_to_gguf.py's `permute`) instead of rotating interleaved pairs, so the
Rust interleaved path is checked against a different formulation.

Usage:
  reference_forward.py (--gguf FILE | --hf DIR) --tokens '[[ids...], ...]' --out LOGITS.f32 [--greedy N]
      writes every position's logits of every prompt (f32, row-major, prompts concatenated) and
      prints {"vocab": V, "rows": [...], "greedy": [[...], ...]} on stdout.
  reference_forward.py --make-tiny DIR --arch llama|qwen2 [--dtype f32|f16|bf16] [--shards N] [--seed S]
      writes a small random HF checkpoint (config.json + safetensors) for loader tests.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


# ---------------------------------------------------------------- weights

class Weights:
    """HF-named f32 tensors and a config dict with HF keys."""

    def __init__(self, cfg, tensors):
        self.cfg = cfg
        self.t = tensors


def unpermute(w, n_head):
    """Inverse of convert_hf_to_gguf.py's LlamaModel.permute on the output rows."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf(path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(path)

    def field(key):
        f = r.fields.get(key)
        if f is None:
            return None
        v = f.parts[f.data[0]]
        if f.types and f.types[0].name == "STRING":
            return bytes(v).decode("utf-8")
        return v.tolist()[0] if len(v) == 1 else v.tolist()

    arch = field("general.architecture")
    n_head = int(field(f"{arch}.attention.head_count"))
    n_kv = int(field(f"{arch}.attention.head_count_kv") or n_head)
    cfg = {
        "model_type": arch,
        "num_hidden_layers": int(field(f"{arch}.block_count")),
        "hidden_size": int(field(f"{arch}.embedding_length")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rope_theta": float(field(f"{arch}.rope.freq_base") or 10000.0),
        "rms_norm_eps": float(field(f"{arch}.attention.layer_norm_rms_epsilon")),
    }
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm.weight": "input_layernorm.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_q.bias": "self_attn.q_proj.bias",
        "attn_k.bias": "self_attn.k_proj.bias",
        "attn_v.bias": "self_attn.v_proj.bias",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    }
    tensors = {}
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        w = dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        if t.name in names:
            hf = names[t.name]
        else:
            _, layer, rest = t.name.split(".", 2)
            hf = f"model.layers.{layer}.{per_layer[rest]}"
        if arch == "llama" and rest_of(t.name) in ("attn_q.weight", "attn_q.bias"):
            w = unpermute(w, n_head)
        if arch == "llama" and rest_of(t.name) in ("attn_k.weight", "attn_k.bias"):
            w = unpermute(w, n_kv)
        tensors[hf] = w
    cfg["vocab_size"] = tensors["model.embed_tokens.weight"].shape[0]
    cfg["tie_word_embeddings"] = "lm_head.weight" not in tensors
    return Weights(cfg, tensors)


def rest_of(name):
    parts = name.split(".", 2)
    return parts[2] if parts[0] == "blk" else name


SAFE_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": "bf16"}


def read_safetensors(path):
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            f.seek(base + start)
            raw = f.read(end - start)
            if info["dtype"] == "BF16":
                u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                a = u.view(np.float32)
            else:
                a = np.frombuffer(raw, dtype=SAFE_DTYPES[info["dtype"]]).astype(np.float32)
            out[name] = a.reshape(info["shape"])
    return out


def load_hf(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for f in files:
        tensors.update(read_safetensors(os.path.join(d, f)))
    return Weights(cfg, tensors)


# ---------------------------------------------------------------- forward

class Model:
    def __init__(self, w):
        c = w.cfg
        self.t = w.t
        self.L = c["num_hidden_layers"]
        self.d = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nh
        self.hd = c.get("head_dim") or self.d // self.nh
        self.theta = float(c.get("rope_theta", 10000.0))
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        self.tied = c.get("tie_word_embeddings", False) or "lm_head.weight" not in self.t
        self.head = self.t["model.embed_tokens.weight"] if self.tied else self.t["lm_head.weight"]

    def rms(self, x, w):
        x64 = x.astype(np.float64)
        return (x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + self.eps)).astype(np.float32) * w

    def rope(self, x, positions):
        # x: [n, heads, hd]; HF rotate_half convention
        half = self.hd // 2
        inv = self.theta ** (-np.arange(0, half, dtype=np.float64) * 2.0 / self.hd)
        ang = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :].astype(np.float32)
        sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :].astype(np.float32)
        rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def lin(self, x, name):
        y = x @ self.t[name + ".weight"].T
        b = self.t.get(name + ".bias")
        return y + b if b is not None else y

    def forward(self, ids, cache):
        """Append `ids`; cache is a list of per-layer (K, V) arrays [n, kv, hd]. Returns logits [n, V]."""
        start = cache[0][0].shape[0] if cache else 0
        n = len(ids)
        pos = list(range(start, start + n))
        x = self.t["model.embed_tokens.weight"][np.asarray(ids)]
        g = self.nh // self.nkv
        for l in range(self.L):
            p = f"model.layers.{l}."
            h = self.rms(x, self.t[p + "input_layernorm.weight"])
            q = self.rope(self.lin(h, p + "self_attn.q_proj").reshape(n, self.nh, self.hd), pos)
            k = self.rope(self.lin(h, p + "self_attn.k_proj").reshape(n, self.nkv, self.hd), pos)
            v = self.lin(h, p + "self_attn.v_proj").reshape(n, self.nkv, self.hd)
            if len(cache) <= l:
                cache.append((k, v))
            else:
                cache[l] = (np.concatenate([cache[l][0], k]), np.concatenate([cache[l][1], v]))
            K, V = cache[l]
            T = K.shape[0]
            out = np.empty((n, self.nh, self.hd), dtype=np.float32)
            mask = np.arange(T)[None, :] > (np.asarray(pos)[:, None])
            for hh in range(self.nh):
                kv = hh // g
                s = (q[:, hh, :] @ K[:, kv, :].T) / np.sqrt(self.hd)
                s = np.where(mask, -np.inf, s).astype(np.float64)
                s = np.exp(s - s.max(-1, keepdims=True))
                s = s / s.sum(-1, keepdims=True)
                out[:, hh, :] = (s.astype(np.float32)) @ V[:, kv, :]
            x = x + self.lin(out.reshape(n, self.nh * self.hd), p + "self_attn.o_proj")
            h = self.rms(x, self.t[p + "post_attention_layernorm.weight"])
            gte = self.lin(h, p + "mlp.gate_proj")
            up = self.lin(h, p + "mlp.up_proj")
            act = gte / (1.0 + np.exp(-gte.astype(np.float64))).astype(np.float32)
            x = x + self.lin(act * up, p + "mlp.down_proj")
        x = self.rms(x, self.t["model.norm.weight"])
        return x @ self.head.T


# ---------------------------------------------------------------- tiny checkpoints

def to_bf16_bytes(a):
    u = a.astype(np.float32).view(np.uint32)
    # round to nearest even
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return u.tobytes()


def write_safetensors(path, tensors, dtype):
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = tensors[name]
        if dtype == "bf16":
            raw, tag = to_bf16_bytes(a), "BF16"
        elif dtype == "f16":
            raw, tag = a.astype(np.float16).tobytes(), "F16"
        else:
            raw, tag = a.astype(np.float32).tobytes(), "F32"
        header[name] = {"dtype": tag, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_tiny(d, arch, dtype, shards, seed):
    rng = np.random.default_rng(seed)
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
        "model_type": arch,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 128,
        "rope_theta": 10000.0 if arch == "llama" else 1000000.0,
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 256,
        "tie_word_embeddings": arch == "qwen2",
        "eos_token_id": 2,
    }
    D, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = D // cfg["num_attention_heads"]
    kvd = cfg["num_key_value_heads"] * hd
    t = {"model.embed_tokens.weight": rng.normal(0, 0.5, (V, D)), "model.norm.weight": 1 + rng.normal(0, 0.1, D)}
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = rng.normal(0, 0.2, (V, D))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.1, D)
        t[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.1, D)
        for name, shape in [("q_proj", (D, D)), ("k_proj", (kvd, D)), ("v_proj", (kvd, D)), ("o_proj", (D, D))]:
            t[p + "self_attn." + name + ".weight"] = rng.normal(0, 0.15, shape)
        if arch == "qwen2":
            for name, n in [("q_proj", D), ("k_proj", kvd), ("v_proj", kvd)]:
                t[p + "self_attn." + name + ".bias"] = rng.normal(0, 0.1, n)
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.15, (F, D))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.15, (F, D))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.15, (D, F))
    t = {k: v.astype(np.float32) for k, v in t.items()}
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
    else:
        names = sorted(t)
        weight_map = {}
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: t[n] for i, n in enumerate(names) if i % shards == s}
            write_safetensors(os.path.join(d, fname), part, dtype)
            weight_map.update({n: fname for n in part})
        json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(d, "model.safetensors.index.json"), "w"))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf")
    ap.add_argument("--hf")
    ap.add_argument("--tokens")
    ap.add_argument("--out")
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--make-tiny")
    ap.add_argument("--arch", default="llama")
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.make_tiny:
        make_tiny(a.make_tiny, a.arch, a.dtype, a.shards, a.seed)
        return
    w = load_gguf(a.gguf) if a.gguf else load_hf(a.hf)
    m = Model(w)
    prompts = json.loads(a.tokens)
    rows, greedy = [], []
    with open(a.out, "wb") if a.out else open(os.devnull, "wb") as f:
        for ids in prompts:
            cache = []
            logits = m.forward(ids, cache)
            f.write(np.ascontiguousarray(logits, dtype=np.float32).tobytes())
            rows.append(len(ids))
            gen = []
            nxt = int(np.argmax(logits[-1]))
            for _ in range(a.greedy):
                gen.append(nxt)
                nxt = int(np.argmax(m.forward([nxt], cache)[-1]))
            greedy.append(gen)
    json.dump({"vocab": int(m.head.shape[0]), "rows": rows, "greedy": greedy}, sys.stdout)


if __name__ == "__main__":
    main()
