#!/usr/bin/env python3
"""Build the tiny randomly initialised T5 / Gemma checkpoints of the parity tests and record
Hugging Face transformers' outputs on them (the independent reference).

Writes, under crates/models/tests/fixtures/paper/<name>/:
  config.json            as transformers' save_pretrained writes it (the installed version)
  config.hub.json        the same model as the hub's checkpoints spell it (rope_theta,
                         rope_local_base_freq, sliding_window_pattern; no layer_types)
  config.v5.json         the transformers 5 spelling (rope_parameters per layer type, layer_types)
  model.safetensors      f32 weights (tiny dims: a few hundred KB)
  tokenizer.json         a tokenizer of our own making: Unigram for T5, BPE with byte fallback for Gemma
  reference.safetensors  logits.<i>: f32 [positions, vocab] for input i
  reference.json         per input: text, ids, generate() greedy tokens, their log-probabilities

Usage (needs torch, transformers, tokenizers, safetensors; CI does not run it, the outputs are
committed):  python3 crates/models/tests/py/make_paper_fixtures.py [--only=NAME,...] [OUT_DIR]

The committed Gemma fixtures come from transformers 5.24 and the T5 fixtures from transformers
4.57.6 (`--only=t5,t5_v1_1` with 4.57 on the path): transformers 5 forces
`tie_word_embeddings = True` on every T5Config (configuration_t5.py, "we tie weights always") and
ties `lm_head` to `shared`, so it cannot build a T5 v1.1 / Flan-T5 with an untied head, which is what
the hub's checkpoints are. 4.57 is the T5 reference the hub's checkpoints were written for.

Choices that make the tests bite: random norm weights (not ones), a sliding window (5) shorter
than every prompt (>= 12 tokens), soft-caps (Gemma 2) small enough that raw logits exceed them,
query_pre_attn_scalar != head_dim, local and global RoPE bases 100 and 10000 (Gemma 3), T5
relative-position buckets that saturate (max_distance 12 < prompt length).
"""

import copy
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

torch.manual_seed(0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--only=")]
ONLY = next((a[len("--only="):].split(",") for a in sys.argv[1:] if a.startswith("--only=")), None)
OUT = ARGS[0] if ARGS else os.path.join(ROOT, "fixtures", "paper")

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "translate English to German: the house is wonderful",
    "summarize: a cascade defers to the large model when the small one is unsure",
    "def add(a, b):\n    return a + b",
    "speculative decoding drafts tokens with a small model and verifies them in parallel",
    "Question: what is two plus three? Answer: five",
    "Gemma is a family of open models; T5 is an encoder-decoder",
    "the cat sat on the mat and the dog sat on the log",
] * 4

PROMPTS = [
    "translate English to German: the quick brown fox",
    "summarize: speculative cascades defer when unsure of the answer",
    "Question: what is the cat on? Answer: café",
]
MAX_NEW = 12
SEEDS = {"gemma": 1, "gemma2": 2, "gemma3": 3, "t5": 4, "t5_v1_1": 5}


def t5_tokenizer():
    """A small SentencePiece-Unigram tokenizer laid out like t5-small's tokenizer.json."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Replace("  ", " "), normalizers.Strip(left=False, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=160, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", shrinking_factor=0.75
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return tok


def gemma_tokenizer():
    """A small BPE with byte fallback laid out like Gemma's tokenizer.json: special tokens first,
    then the 256 byte tokens <0x00>..<0xFF> (plain vocabulary entries, not added tokens), then the
    trained pieces. Characters outside the trained alphabet fall back to bytes."""
    special = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=[], limit_alphabet=40, show_progress=False)
    base.train_from_iterator(CORPUS, trainer)
    trained = json.loads(base.to_str())["model"]
    vocab = {t: i for i, t in enumerate(special + [f"<0x{b:02X}>" for b in range(256)])}
    for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(special)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return tok


def randomize_norms(model):
    """Norm weights drawn at random so a (1 + w) versus w mix-up cannot pass."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or "layer_norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "t5" in type(model).__name__.lower() else 0.0))


def gemma_configs(vocab, ids):
    common = dict(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6, initializer_range=0.4,
        pad_token_id=ids["<pad>"], eos_token_id=ids["<eos>"], bos_token_id=ids["<bos>"], tie_word_embeddings=True,
        attention_bias=False, attn_implementation="eager",
    )
    g1 = transformers.GemmaConfig(**common, num_hidden_layers=2, rope_theta=10000.0,
                                  hidden_activation="gelu_pytorch_tanh")
    g2 = transformers.Gemma2Config(**common, num_hidden_layers=4, rope_theta=10000.0,
                                   hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
                                   sliding_window=5, attn_logit_softcapping=2.0, final_logit_softcapping=3.0)
    g3 = gemma3_config(common)
    return {"gemma": (g1, transformers.GemmaForCausalLM), "gemma2": (g2, transformers.Gemma2ForCausalLM),
            "gemma3": (g3, transformers.Gemma3ForCausalLM)}


def gemma3_config(common):
    layer_types = ["sliding_attention", "sliding_attention", "full_attention",
                   "sliding_attention", "sliding_attention", "full_attention"]
    kw = dict(common, num_hidden_layers=6, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=20,
              sliding_window=5, attn_logit_softcapping=None, final_logit_softcapping=None, layer_types=layer_types)
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        kw["rope_parameters"] = {"full_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                 "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}
    else:
        kw.update(rope_theta=10000.0, rope_local_base_freq=100.0, sliding_window_pattern=3, rope_scaling=None)
    return transformers.Gemma3TextConfig(**kw)


def t5_configs(vocab):
    common = dict(
        vocab_size=vocab, d_model=32, d_kv=8, num_heads=4, num_layers=3, num_decoder_layers=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=12, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, initializer_factor=1.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        is_encoder_decoder=True,
    )
    t5 = transformers.T5Config(**common, d_ff=64, feed_forward_proj="relu", tie_word_embeddings=True)
    v11 = transformers.T5Config(**common, d_ff=96, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    return {"t5": (t5, transformers.T5ForConditionalGeneration),
            "t5_v1_1": (v11, transformers.T5ForConditionalGeneration)}


def hub_and_v5_variants(cfg_json):
    """config.json as the hub's checkpoints spell it, and as transformers 5 does."""
    hub, v5 = copy.deepcopy(cfg_json), copy.deepcopy(cfg_json)
    mt = cfg_json.get("model_type")
    if mt in ("gemma3_text", "gemma3"):
        rp = cfg_json.get("rope_parameters")
        glob = cfg_json.get("rope_theta") or (rp and rp["full_attention"]["rope_theta"])
        loc = cfg_json.get("rope_local_base_freq") or (rp and rp["sliding_attention"]["rope_theta"])
        for c in (hub, v5):
            for k in ("rope_parameters", "rope_theta", "rope_local_base_freq", "sliding_window_pattern",
                      "layer_types", "rope_scaling"):
                c.pop(k, None)
        hub.update(rope_theta=glob, rope_local_base_freq=loc, sliding_window_pattern=3, rope_scaling=None)
        v5.update(layer_types=cfg_json["layer_types"],
                  rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": glob},
                                   "sliding_attention": {"rope_type": "default", "rope_theta": loc}})
    elif mt in ("gemma", "gemma2"):
        theta = cfg_json.get("rope_theta") or cfg_json["rope_parameters"]["rope_theta"]
        for c in (hub, v5):
            c.pop("rope_parameters", None)
            c.pop("rope_theta", None)
            c.pop("layer_types", None)
        hub["rope_theta"] = theta
        v5["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
        if mt == "gemma2":
            v5["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention"
                                 for i in range(cfg_json["num_hidden_layers"])]
    return hub, v5


def write_dir(name, model, tok, cfg):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    cfg_path = os.path.join(d, "config.json")
    with open(cfg_path) as f:
        cfg_json = json.load(f)
    hub, v5 = hub_and_v5_variants(cfg_json)
    mt = cfg_json.get("model_type")
    for fname, c in (("config.hub.json", hub), ("config.v5.json", v5)):
        if mt == "t5":
            continue  # T5: one spelling only
        with open(os.path.join(d, fname), "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)  # the loader reads eos/start ids from config.json; keep the fixture small
    tok.save(os.path.join(d, "tokenizer.json"))
    return d


@torch.no_grad()
def record(name, model, tok, encoder_decoder):
    model.eval()
    out, tensors = [], {}
    for i, text in enumerate(PROMPTS):
        ids = tok.encode(text).ids
        x = torch.tensor([ids])
        g = model.generate(x, max_new_tokens=MAX_NEW, do_sample=False, num_beams=1, output_scores=True,
                           output_logits=True, return_dict_in_generate=True, min_new_tokens=MAX_NEW)
        seq = g.sequences[0].tolist()
        if encoder_decoder:
            new = seq[1:]  # drop decoder_start_token_id
            dec = torch.tensor([[model.config.decoder_start_token_id] + new])
            logits = model(input_ids=x, decoder_input_ids=dec).logits[0]  # [1 + new, vocab]
        else:
            new = seq[len(ids):]
            logits = model(input_ids=torch.tensor([seq])).logits[0]  # [prompt + new, vocab]
        raw = torch.stack([l[0] for l in g.logits])  # [new, vocab] as generate saw them
        logprobs = torch.log_softmax(raw.double(), dim=-1)
        lp = [logprobs[j, t].item() for j, t in enumerate(new)]
        # The teacher-forced rows that predicted each generated token must agree with generate().
        first = 0 if encoder_decoder else len(ids) - 1
        diff = (logits[first:first + len(new)] - raw).abs().max().item()
        assert diff < 1e-4 * (1 + raw.abs().max().item()), (name, diff)
        tensors[f"logits.{i}"] = logits.float().contiguous()
        out.append({"text": text, "ids": ids, "generated": new, "logprobs": lp,
                    "logits_rows": "decoder positions from the start token" if encoder_decoder
                    else "every position of prompt ++ generated"})
    d = os.path.join(OUT, name)
    save_file(tensors, os.path.join(d, "reference.safetensors"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "max_new_tokens": MAX_NEW, "inputs": out}, f, indent=1)
    # How hard the soft-caps bite (documentation for the test's author).
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    ttok = t5_tokenizer()
    gtok = gemma_tokenizer()
    gids = {t: gtok.token_to_id(t) for t in ["<pad>", "<eos>", "<bos>", "<unk>"]}
    want = lambda n: ONLY is None or n in ONLY
    for name, (cfg, cls) in gemma_configs(gtok.get_vocab_size(), gids).items():
        if not want(name):
            continue
        torch.manual_seed(SEEDS[name])
        model = cls(cfg).float()
        randomize_norms(model)
        write_dir(name, model, gtok, cfg)
        record(name, model, gtok, False)
        print(name, sum(p.numel() for p in model.parameters()), "params")
    for name, (cfg, cls) in t5_configs(ttok.get_vocab_size()).items():
        if not want(name):
            continue
        torch.manual_seed(SEEDS[name])
        model = cls(cfg).float()
        randomize_norms(model)
        write_dir(name, model, ttok, cfg)
        record(name, model, ttok, True)
        print(name, sum(p.numel() for p in model.parameters()), "params")


if __name__ == "__main__":
    main()
