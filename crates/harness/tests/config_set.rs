//! `run --set key.path=value`: overrides are applied to the YAML before parsing, so they are
//! validated exactly like the file; malformed overrides name themselves.

use std::path::Path;

use speccascade_harness::config::{Experiment, apply_sets};

fn synthetic() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/synthetic.yaml")
}

#[test]
fn overrides_reach_nested_keys_and_list_entries() {
    let sets = [
        "tasks[0].examples=4",
        "models.synthetic.vocab=32",
        "methods.spec_decode_lossy.alpha=[0.3]",
        "gamma=2",
    ]
    .map(String::from);
    let (exp, src) = Experiment::from_file_with_sets(&synthetic(), &sets).unwrap();
    assert_eq!(exp.tasks[0].examples, 4);
    assert_eq!(exp.gamma, vec![2]);
    assert!(src.contains("vocab: 32"), "{src}");
    let (plain, _) = Experiment::from_file(&synthetic()).unwrap();
    assert_eq!(plain.tasks[0].examples, 24);
}

#[test]
fn overrides_are_validated_like_the_file() {
    let e =
        Experiment::from_file_with_sets(&synthetic(), &["models.synthetic.vocab=3".to_string()])
            .unwrap_err()
            .to_string();
    assert!(e.contains("vocab") && e.contains("with --set"), "{e}");
    let e = Experiment::from_file_with_sets(&synthetic(), &["tasks[0].exemples=4".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("exemples"), "{e}");
    for (set, want) in [
        ("gamma", "expected key.path=value"),
        ("tasks[5].examples=1", "no index 5"),
        ("gamma.x=1", "not a mapping"),
        ("tasks[x].examples=1", "not a list index"),
    ] {
        let e = apply_sets(
            "gamma: 4\ntasks:\n  - name: a\n",
            &[set.to_string()],
            "e.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want) && e.contains(set), "{set}: {e}");
    }
}

#[test]
fn prompt_style_is_read_per_task_and_checked() {
    use speccascade_harness::config::PromptStyle;
    let sets = ["tasks[0].prompt_style=t5".to_string()];
    let (exp, _) = Experiment::from_file_with_sets(&synthetic(), &sets).unwrap();
    assert_eq!(exp.tasks[0].prompt_style, Some(PromptStyle::T5));
    let (exp, _) = Experiment::from_file(&synthetic()).unwrap();
    assert_eq!(exp.tasks[0].prompt_style, None);
    let e =
        Experiment::from_file_with_sets(&synthetic(), &["tasks[0].prompt_style=zero".to_string()])
            .unwrap_err()
            .to_string();
    assert!(e.contains("prompt_style") && e.contains("few_shot"), "{e}");
}
