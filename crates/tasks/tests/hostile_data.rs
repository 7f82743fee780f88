//! Hostile data files, generated here: a parquet footer claiming 10¹² rows (the parquet crate
//! panics on it unchecked), a row group claiming more rows than its columns hold, `/dev/zero` as
//! a data file, a gzip bomb, a JSONL with binary bytes mid-file. Each is an error naming the file
//! and the field or limit — never a panic, never memory exhaustion.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataWriter};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use speccascade_tasks::data::read::{DATA_FILE_LIMIT, MAX_RECORDS, read_records};

/// A gsm8k-schema parquet file of `n` rows.
fn parquet_bytes(n: usize) -> Vec<u8> {
    let schema = Arc::new(parquet::schema::parser::parse_message_type("message schema { REQUIRED BYTE_ARRAY question (UTF8); REQUIRED BYTE_ARRAY answer (UTF8); }").unwrap());
    let mut buf = Vec::new();
    let mut w = SerializedFileWriter::new(&mut buf, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    for col in ["question", "answer"] {
        let values: Vec<ByteArray> = (0..n).map(|i| ByteArray::from(format!("{col} {i} #### {i}").as_str())).collect();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>().write_batch(&values, None, None).unwrap();
        c.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();
    buf
}

/// `bytes` with its footer rewritten so that row group 0 (and so the file) claims `rows` rows.
fn forge_rows(bytes: &[u8], rows: i64) -> Vec<u8> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    let reader = SerializedFileReader::new(std::fs::File::open(tmp.path()).unwrap()).unwrap();
    let meta = reader.metadata();
    let footer_len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
    let body = &bytes[..bytes.len() - 8 - footer_len];
    let groups = meta.row_groups().iter().map(|g| g.clone().into_builder().set_num_rows(rows).build().unwrap()).collect();
    let forged = ParquetMetaData::new(meta.file_metadata().clone(), groups);
    let mut out = body.to_vec();
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &forged).finish().unwrap();
    out.extend_from_slice(&footer);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn forged_parquet_row_counts_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let good = parquet_bytes(3);
    let p = write(dir.path(), "good.parquet", &good);
    assert_eq!(read_records(&p).unwrap().len(), 3);
    // The rewritten footer itself is sound: the same count reads back the same.
    let same = write(dir.path(), "same.parquet", &forge_rows(&good, 3));
    assert_eq!(read_records(&same).unwrap().len(), 3);

    let p = write(dir.path(), "huge.parquet", &forge_rows(&good, 1_000_000_000_000));
    let e = read_records(&p).unwrap_err().to_string();
    assert!(e.contains("huge.parquet") && e.contains("num_rows = 1000000000000") && e.contains(&MAX_RECORDS.to_string()), "{e}");
    let p = write(dir.path(), "more.parquet", &forge_rows(&good, 5));
    let e = read_records(&p).unwrap_err().to_string();
    assert!(e.contains("more.parquet") && e.contains("cannot hold num_rows = 5"), "{e}");
    let p = write(dir.path(), "negative.parquet", &forge_rows(&good, -4));
    assert!(read_records(&p).unwrap_err().to_string().contains("num_rows = -4"));
}

#[test]
fn endless_and_oversized_inputs_stop_at_the_limit() {
    let e = read_records(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("/dev/zero") && e.contains("512 MiB"), "{e}");
    assert_eq!(DATA_FILE_LIMIT, 512 << 20);
    // A gzip bomb: 600 MiB of zeros compress to under 1 MB.
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..600 {
        gz.write_all(&zeros).unwrap();
    }
    let p = write(dir.path(), "bomb.jsonl.gz", &gz.finish().unwrap());
    let e = read_records(&p).unwrap_err().to_string();
    assert!(e.contains("bomb.jsonl.gz") && e.contains("decompressed"), "{e}");
}

#[test]
fn binary_bytes_mid_file_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = b"{\"question\": \"q\", \"answer\": \"a #### 1\"}\n".repeat(3);
    b.extend_from_slice(b"{\"question\": \"\xff\xfe\x00\x01\"}\n");
    let p = write(dir.path(), "bin.jsonl", &b);
    let e = read_records(&p).unwrap_err().to_string();
    assert!(e.contains("bin.jsonl:4"), "{e}");
}
