"""Reference ROUGE: Google's rouge-score (RougeScorer.score_multi) and NLTK's PorterStemmer."""
import json
import sys

from nltk.stem import porter
from rouge_score import rouge_scorer

job = json.load(open(sys.argv[1], encoding="utf-8"))
types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
out = {"pairs": [], "stems": []}
for stem in (False, True):
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=stem)
    rows = []
    for refs, pred in job["pairs"]:
        s = scorer.score_multi(refs, pred)
        rows.append({t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in types})
    out["pairs"].append(rows)
p = porter.PorterStemmer()
out["stems"] = [p.stem(w) for w in job["words"]]
json.dump(out, sys.stdout)
