//! Every kind of experiment-file error names the file, line and column and what was expected.

use speccascade_harness::Experiment;

const GOOD: &str = "\
name: t
output: out
models:
  synthetic: {vocab: 32}
tasks:
  - name: synthetic
    examples: 4
    max_new_tokens: 8
methods:
  spec_cascade_chow: {alpha: [0.1, 0.5]}
  spec_decode:
gamma: [3]
";

/// Parse `src`, expect an error; return its text after checking file:line:column.
fn err(src: &str, line: usize) -> String {
    let e = Experiment::from_str_named(src, "exp.yaml").expect_err("must fail");
    let s = e.to_string();
    assert_eq!(e.line, Some(line), "wrong line in {s:?}");
    assert!(e.column.is_some(), "no column in {s:?}");
    assert!(s.starts_with(&format!("exp.yaml:{line}:{}: ", e.column.unwrap())), "{s}");
    s
}

#[test]
fn the_good_file_parses() {
    let e = Experiment::from_str_named(GOOD, "exp.yaml").unwrap();
    assert_eq!(e.gamma, vec![3]);
    assert_eq!(e.temperature, vec![1.0]);
}

#[test]
fn yaml_syntax_error() {
    let s = err(&GOOD.replace("gamma: [3]", "gamma: [3"), 13);
    assert!(s.contains("did not find expected"), "{s}");
}

#[test]
fn unknown_top_level_key() {
    let s = err(&GOOD.replace("gamma: [3]", "gama: [3]"), 12);
    assert!(s.contains("unknown field `gama`, expected one of"), "{s}");
}

#[test]
fn unknown_nested_key() {
    let s = err(&GOOD.replace("    examples: 4", "    exemples: 4"), 7);
    assert!(s.contains("tasks[0]") && s.contains("unknown field `exemples`"), "{s}");
    let s = err(&GOOD.replace("{alpha: [0.1, 0.5]}", "{alpha: [0.1, 0.5], beta: 1}"), 10);
    assert!(s.contains("unknown field `beta`, expected `alpha`"), "{s}");
}

#[test]
fn wrong_type() {
    let s = err(&GOOD.replace("examples: 4", "examples: four"), 7);
    assert!(s.contains("tasks[0].examples") && s.contains("invalid type: string \"four\", expected usize"), "{s}");
}

#[test]
fn missing_field() {
    let s = err(&GOOD.replace("    max_new_tokens: 8\n", ""), 6);
    assert!(s.contains("missing field `max_new_tokens`"), "{s}");
}

#[test]
fn unknown_method() {
    let s = err(&GOOD.replace("  spec_decode:\n", "  spec_decoding:\n"), 11);
    assert!(s.contains("methods.spec_decoding: unknown method \"spec_decoding\"; expected one of drafter, verifier"), "{s}");
}

#[test]
fn alpha_out_of_range_points_at_the_value() {
    let s = err(&GOOD.replace("[0.1, 0.5]", "[0.1, 1.5]"), 10);
    assert!(s.contains("methods.spec_cascade_chow.alpha[1]"), "{s}");
    assert!(s.contains("1.5"), "{s}");
    let s = err(&GOOD.replace("{alpha: [0.1, 0.5]}", "{alpha: {start: 0, stop: 2, num: 3}}"), 10);
    assert!(s.contains("alpha.stop"), "{s}");
}

#[test]
fn alpha_where_none_is_taken_or_missing() {
    let s = err(&GOOD.replace("  spec_decode:\n", "  spec_decode: {alpha: 0.5}\n"), 11);
    assert!(s.contains("takes no α"), "{s}");
    let s = err(&GOOD.replace("{alpha: [0.1, 0.5]}", "{}"), 10);
    assert!(s.contains("needs `alpha`"), "{s}");
}

#[test]
fn bad_alpha_shape_and_range() {
    let s = err(&GOOD.replace("[0.1, 0.5]", "\"lots\""), 10);
    assert!(s.contains("expected a number, a list of numbers, or a range {start, stop, num}"), "{s}");
    let s = err(&GOOD.replace("{alpha: [0.1, 0.5]}", "{alpha: {start: 0, stop: 1, num: 0}}"), 10);
    assert!(s.contains("num ≥ 1"), "{s}");
    let s = err(&GOOD.replace("{alpha: [0.1, 0.5]}", "{alpha: {start: 0, stop: 1}}"), 10);
    assert!(s.contains("missing field `num`"), "{s}");
}

#[test]
fn invalid_combination_refused_up_front() {
    let real = GOOD.replace("  synthetic: {vocab: 32}", "  drafter: a.gguf\n  verifier: b.gguf");
    let s = err(&real, 7);
    assert!(s.contains("tasks[0].name") && s.contains("needs `models.synthetic`"), "{s}");
    let s = err(&GOOD.replace("name: synthetic", "name: gsm8k"), 6);
    assert!(s.contains("the synthetic pair has none"), "{s}");
    let s = err(&GOOD.replace("  synthetic: {vocab: 32}", "  synthetic: {vocab: 32}\n  drafter: a.gguf"), 4);
    assert!(s.contains("not both"), "{s}");
}

#[test]
fn bad_scalars() {
    let s = err(&GOOD.replace("gamma: [3]", "gamma: [3, 0]"), 12);
    assert!(s.contains("gamma[1]") && s.contains("1..=64"), "{s}");
    let s = err(&format!("{GOOD}cost: cheap\n"), 13);
    assert!(s.contains("expected `measured` or a number c > 0"), "{s}");
    let s = err(&format!("{GOOD}top_p: 0\n"), 13);
    assert!(s.contains("top_p in (0, 1]"), "{s}");
    let s = err(&format!("{GOOD}top_p: [1, 0.9, 1.5]\n"), 13);
    assert!(s.contains("top_p[2]") && s.contains("top_p in (0, 1]"), "{s}");
    let s = err(&format!("{GOOD}bonus: sometimes\n"), 13);
    assert!(s.contains("free") && s.contains("exact") && s.contains("none"), "{s}");
    let s = err(&format!("{GOOD}exact_bonus: true\n"), 13);
    assert!(s.contains("unknown field `exact_bonus`") && s.contains("bonus"), "{s}");
    // BiLD*'s α ∈ [0, ∞): 3 is valid, −0.5 is not.
    assert!(Experiment::from_str_named(&GOOD.replace("spec_decode:", "bild: {alpha: [0, 3, 10]}"), "exp.yaml").is_ok());
    let s = err(&GOOD.replace("spec_decode:", "bild: {alpha: [0, -0.5]}"), 11);
    assert!(s.contains("[0, inf)"), "{s}");
    let s = err(&GOOD.replace("{vocab: 32}", "{vocab: 4}"), 4);
    assert!(s.contains("8..=200000"), "{s}");
    let s = err(&format!("{GOOD}models_extra: 1\n"), 13);
    assert!(s.contains("unknown field"), "{s}");
}

#[test]
fn unreadable_file_names_the_path() {
    let e = Experiment::from_file(std::path::Path::new("/nonexistent/x.yaml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/x.yaml: cannot read"), "{e}");
}

#[test]
fn sizes_beyond_their_limits_are_refused_before_anything_runs() {
    let s = err(&GOOD.replace("max_new_tokens: 8", "max_new_tokens: 1000000000000"), 8);
    assert!(s.contains("max_new_tokens") && s.contains("1..=1048576"), "{s}");
    let s = err(&GOOD.replace("examples: 4", "examples: 1000000000000"), 7);
    assert!(s.contains("at most 10000000 examples"), "{s}");
    let s = err(&GOOD.replace("gamma: [3]", "gamma: [1000000000]"), 12);
    assert!(s.contains("1..=64"), "{s}");
}

#[test]
fn a_fixed_block_cost_curve_parses_and_bad_ones_are_located() {
    use speccascade_harness::config::CostModel;
    let e = Experiment::from_str_named(&format!("{GOOD}cost: {{c: 0.3, block: [1.0, 1.2, 1.5]}}\n"), "exp.yaml").unwrap();
    let CostModel::FixedBlock { c, block } = &e.cost else { panic!("{:?}", e.cost) };
    assert_eq!(*c, 0.3);
    // Listed, then the line through the last two values.
    assert_eq!((block.at(1), block.at(3)), (1.0, 1.5));
    assert!((block.at(5) - 2.1).abs() < 1e-12, "{}", block.at(5));
    assert_eq!(e.cost.fixed_c(), Some(0.3));
    // `{c}` alone is a fixed c.
    let e = Experiment::from_str_named(&format!("{GOOD}cost: {{c: 0.25}}\n"), "exp.yaml").unwrap();
    assert_eq!(e.cost, CostModel::Fixed(0.25));
    let s = err(&format!("{GOOD}cost: {{c: 0.3, block: [1.2, 1.5]}}\n"), 13);
    assert!(s.contains("b(1) = 1"), "{s}");
    let s = err(&format!("{GOOD}cost: {{c: 0.3, block: [1.0, 0.8]}}\n"), 13);
    assert!(s.contains("non-decreasing"), "{s}");
    let s = err(&format!("{GOOD}cost: {{block: [1.0]}}\n"), 13);
    assert!(s.contains("missing field `c`"), "{s}");
    let s = err(&format!("{GOOD}cost: {{c: 0.3, blocks: [1.0]}}\n"), 13);
    assert!(s.contains("unknown field `blocks`"), "{s}");
}
