//! The JSONL inputs of `speccascade score`: bad input is an error naming the file, the line and
//! the field, never a panic; ids must match; scores come out on the 0–100 scale.

use std::path::{Path, PathBuf};

use speccascade_tasks::io::{join, read_predictions, read_references};
use speccascade_tasks::{Metric, MetricOptions, score};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_missing_mismatched_and_empty_inputs() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.jsonl", "{\"id\": \"a\", \"prediction\": \"x\"}\n{\"id\": \"b\", \"prediction\": \"y\"\n");
    let e = read_predictions(&p).unwrap_err().to_string();
    assert!(e.contains("p.jsonl:2") && e.contains("malformed JSON"), "{e}");

    let p = write(d.path(), "p2.jsonl", "{\"id\": \"a\", \"prediction\": \"x\"}\n\n{\"id\": \"b\"}\n");
    let e = read_predictions(&p).unwrap_err().to_string();
    assert!(e.contains("p2.jsonl:3") && e.contains("`prediction`"), "{e}");

    let p = write(d.path(), "p3.jsonl", "[1, 2]\n");
    let e = read_predictions(&p).unwrap_err().to_string();
    assert!(e.contains("p3.jsonl:1") && e.contains("expected a JSON object"), "{e}");

    let r = write(d.path(), "r.jsonl", "{\"id\": \"a\", \"references\": [\"x\", 3]}\n");
    let e = read_references(&r, false).unwrap_err().to_string();
    assert!(e.contains("r.jsonl:1") && e.contains("references[1]"), "{e}");

    let r = write(d.path(), "r2.jsonl", "{\"id\": \"a\", \"prompt\": \"def f():\\n\", \"entry_point\": \"f\"}\n");
    let e = read_references(&r, true).unwrap_err().to_string();
    assert!(e.contains("r2.jsonl:1") && e.contains("`test`"), "{e}");

    let r = write(d.path(), "r3.jsonl", "{\"id\": \"a\", \"references\": [\"x\"]}\n{\"id\": \"a\", \"references\": [\"y\"]}\n");
    let e = read_references(&r, false).unwrap_err().to_string();
    assert!(e.contains("r3.jsonl:2") && e.contains("duplicate id"), "{e}");

    let empty = write(d.path(), "empty.jsonl", "");
    let e = read_predictions(&empty).unwrap_err().to_string();
    assert!(e.contains("empty.jsonl") && e.contains("empty"), "{e}");

    let p = write(d.path(), "p4.jsonl", &(0..8).map(|i| format!("{{\"id\": \"p{i}\", \"prediction\": \"x\"}}\n")).collect::<String>());
    let r = write(d.path(), "r4.jsonl", "{\"id\": \"p0\", \"references\": [\"x\"]}\n{\"id\": \"zz\", \"references\": [\"x\"]}\n");
    let preds = read_predictions(&p).unwrap();
    let refs = read_references(&r, false).unwrap();
    let e = join(&preds, &refs, false, &p, &r).unwrap_err().to_string();
    assert!(e.contains("`zz`") && e.contains("`p1`") && e.contains("and 2 more"), "{e}");

    let p = write(d.path(), "p5.jsonl", "{\"id\": \"a\", \"prediction\": \"x\"}\n{\"id\": \"a\", \"prediction\": \"y\"}\n");
    let r = write(d.path(), "r5.jsonl", "{\"id\": \"a\", \"references\": [\"x\"]}\n");
    let (preds, refs) = (read_predictions(&p).unwrap(), read_references(&r, false).unwrap());
    assert!(join(&preds, &refs, false, &p, &r).unwrap_err().to_string().contains("more than once"));
    assert_eq!(join(&preds, &refs, true, &p, &r).unwrap()[0].predictions.len(), 2);
}

#[test]
fn scores_are_percentages() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "p.jsonl",
        "{\"id\": 1, \"prediction\": \"The cat sat on the mat.\"}\n{\"id\": 2, \"prediction\": \"Paris\"}\n",
    );
    let r = write(
        d.path(),
        "r.jsonl",
        "{\"id\": 1, \"references\": [\"The cat sat on the mat.\"]}\n{\"id\": 2, \"reference\": \"The city of Paris\"}\n",
    );
    let (preds, refs) = (read_predictions(&p).unwrap(), read_references(&r, false).unwrap());
    let ex = join(&preds, &refs, false, &p, &r).unwrap();
    let opts = MetricOptions::default();
    let em = score(Metric::ExactMatch, &ex, &opts).unwrap();
    assert_eq!((em.score, em.n), (50.0, 2));
    assert_eq!(em.per_example[0].score, 100.0);
    let f1 = score(Metric::F1, &ex, &opts).unwrap();
    assert!((f1.score - 100.0 * (1.0 + 0.5) / 2.0).abs() < 1e-9, "{}", f1.score);
    let r1 = score(Metric::Rouge(1), &ex, &opts).unwrap();
    assert!(r1.score > 50.0 && r1.score < 100.0);
    let bleu = score(Metric::Bleu, &ex, &opts).unwrap();
    assert!(bleu.extra["signature"].as_str().unwrap().starts_with("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:"));
    // Text metrics want exactly one prediction; pass@k wants a code problem.
    assert!(score(Metric::PassAtK(1), &ex, &opts).unwrap_err().to_string().contains("no code problem"));
}

#[test]
fn gsm8k_score_reports_strict_and_flexible() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.jsonl", "{\"id\": \"a\", \"prediction\": \"2 + 3 = 5\\n#### 5\"}\n{\"id\": \"b\", \"prediction\": \"It is 1,200 dollars.\"}\n");
    let r = write(d.path(), "r.jsonl", "{\"id\": \"a\", \"references\": [\"2 + 3 = <<2+3=5>>5\\n#### 5\"]}\n{\"id\": \"b\", \"references\": [\"#### 1200\"]}\n");
    let (preds, refs) = (read_predictions(&p).unwrap(), read_references(&r, false).unwrap());
    let ex = join(&preds, &refs, false, &p, &r).unwrap();
    let res = score(Metric::Gsm8k, &ex, &MetricOptions::default()).unwrap();
    assert_eq!(res.score, 50.0);
    assert_eq!(res.extra["flexible_extract"].as_f64(), Some(100.0));
}
