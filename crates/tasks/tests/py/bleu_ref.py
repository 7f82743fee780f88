"""Reference BLEU: sacreBLEU's own corpus_score / sentence_score / 13a tokenizer.
Reads a JSON job from argv[1], writes JSON results to stdout."""
import json
import sys

import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

job = json.load(open(sys.argv[1], encoding="utf-8"))
out = {"version": sacrebleu.__version__, "corpus": [], "sentence": [], "tok": []}
for c in job["corpora"]:
    # refs per segment -> reference streams, None where a segment has fewer references.
    width = max(len(r) for r in c["refs"])
    streams = [[r[i] if i < len(r) else None for r in c["refs"]] for i in range(width)]
    bleu = BLEU()
    s = bleu.corpus_score(c["hyps"], streams)
    out["corpus"].append({"score": s.score, "signature": str(bleu.get_signature()),
                          "counts": s.counts, "totals": s.totals, "sys_len": s.sys_len, "ref_len": s.ref_len})
for h, refs in job["sentences"]:
    out["sentence"].append(BLEU(effective_order=True).sentence_score(h, refs).score)
tok = Tokenizer13a()
for s in job["strings"]:
    out["tok"].append(tok(s.rstrip()))
json.dump(out, sys.stdout)
