//! Every experiment file shipped in `experiments/` parses, validates and expands.

use speccascade_harness::{Experiment, Grid};

fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn shipped_experiments_are_valid() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments"));
    let mut files = Vec::new();
    yaml_files(root, &mut files);
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let (exp, _) = Experiment::from_file(&f).unwrap_or_else(|e| panic!("{e}"));
        let g = Grid::expand(&exp);
        assert!(g.configs.iter().any(|c| c.method == "verifier"), "{}", f.display());
        assert!(g.len() >= 3, "{}", f.display());
    }
}

#[test]
fn the_readme_example_is_valid() {
    // experiments/README.md carries an annotated example between ```yaml fences.
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../experiments/README.md")).unwrap();
    let start = md.find("```yaml\n").expect("a yaml block") + 8;
    let end = start + md[start..].find("```").unwrap();
    let exp = Experiment::from_str_named(&md[start..end], "experiments/README.md").unwrap_or_else(|e| panic!("{e}"));
    assert!(Grid::expand(&exp).len() > 3);
}
