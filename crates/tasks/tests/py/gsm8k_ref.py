"""Reference GSM8K scoring: lm-evaluation-harness v0.4.9.1's RegexFilter.apply (filters/extraction.py)
and exact_match_hf_evaluate (api/metrics.py), verbatim, with the gsm8k task's settings
(tasks/gsm8k/gsm8k.yaml). lm-eval itself pulls in torch and more, so its two functions are copied
here rather than installed."""
import json
import re
import string
import sys

import numpy as np


def regex_filter(resps, regex_pattern, group_select=0, fallback="[invalid]"):
    regex = re.compile(regex_pattern)

    def filter_set(inst):
        filtered = []
        for resp in inst:
            match = regex.findall(resp)
            if match:
                match = match[group_select]
                if isinstance(match, tuple):
                    match = [m for m in match if m]
                    if match:
                        match = match[0]
                    else:
                        match = fallback
                match = match.strip()
            else:
                match = fallback
            filtered.append(match)
        return filtered

    return list(map(lambda x: filter_set(x), resps))


def exact_match_hf_evaluate(predictions, references, regexes_to_ignore=None, ignore_case=False,
                            ignore_punctuation=False, ignore_numbers=False):
    if regexes_to_ignore is not None:
        for s in regexes_to_ignore:
            predictions = np.array([re.sub(s, "", x) for x in predictions])
            references = np.array([re.sub(s, "", x) for x in references])
    else:
        predictions = np.asarray(predictions)
        references = np.asarray(references)
    if ignore_case:
        predictions = np.char.lower(predictions)
        references = np.char.lower(references)
    if ignore_punctuation:
        repl_table = string.punctuation.maketrans("", "", string.punctuation)
        predictions = np.char.translate(predictions, table=repl_table)
        references = np.char.translate(references, table=repl_table)
    if ignore_numbers:
        repl_table = string.digits.maketrans("", "", string.digits)
        predictions = np.char.translate(predictions, table=repl_table)
        references = np.char.translate(references, table=repl_table)
    score_list = predictions == references
    return {"exact_match": np.mean(score_list)}


IGNORE = [",", "\\$", "(?s).*#### ", "\\.$"]
STRICT = "#### (\\-?[0-9\\.\\,]+)"
FLEX = "(-?[$0-9.,]{2,})|(-?[0-9]+)"

job = json.load(open(sys.argv[1], encoding="utf-8"))
out = {"strict": [], "flexible": [], "strict_em": [], "flexible_em": []}
for resp, gold in job["pairs"]:
    s = regex_filter([[resp]], STRICT)[0][0]
    f = regex_filter([[resp]], FLEX, group_select=-1)[0][0]
    out["strict"].append(s)
    out["flexible"].append(f)
    out["strict_em"].append(float(exact_match_hf_evaluate([s], [gold], IGNORE, ignore_case=True)["exact_match"]))
    out["flexible_em"].append(float(exact_match_hf_evaluate([f], [gold], IGNORE, ignore_case=True)["exact_match"]))
json.dump(out, sys.stdout)
