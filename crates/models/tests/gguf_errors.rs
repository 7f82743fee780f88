//! Corrupt GGUF input gives errors, never panics: every truncation of the synthetic fixture (and
//! of a real model's header), a wrong magic, an unsupported version, unknown tensor and value
//! types, offsets past the end, and absurd counts.

use speccascade_models::gguf::{dequantize_into, GgmlType, GgufError, GgufFile};
use std::path::Path;

fn fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthetic.gguf")).unwrap()
}

fn open(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes("test.gguf", bytes)
}

#[test]
fn the_fixture_parses_and_dequantizes() {
    let f = open(fixture()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.architecture().unwrap(), "synthetic");
    assert_eq!(f.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_u64("test.u64").unwrap(), (1u64 << 63) + 5);
    assert!(f.get_u32("test.i32").is_err(), "negative values are not u32");
    assert_eq!(f.get_str_array("test.arr_str").unwrap(), vec!["a", "", "Ġb", "<|im_end|>"]);
    assert_eq!(f.get_i64_array("test.arr_int").unwrap(), vec![1, -2, 3]);
    assert!(matches!(f.get_str("test.u8"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_str("nope"), Err(GgufError::MissingKey { .. })));
    assert!(matches!(f.dequantize("nope"), Err(GgufError::NoSuchTensor { .. })));
    for t in f.tensors() {
        assert_eq!(f.dequantize(&t.name).unwrap().len() as u64, t.n_elements(), "{}", t.name);
    }
    let cube = f.tensor("t.cube").unwrap();
    assert_eq!(cube.dims, vec![32, 2, 3]);
    assert_eq!(cube.shape(), vec![3, 2, 32]);
    // Row access decodes exactly the matching slice, for every type.
    for t in f.tensors().iter().filter(|t| t.dims.len() == 2) {
        let all = f.dequantize(&t.name).unwrap();
        let row = t.dims[0] as usize;
        assert_eq!(f.dequantize_rows(&t.name, 1, 2).unwrap(), all[row..3 * row], "{}", t.name);
        assert_eq!(f.dequantize_rows(&t.name, 2, 1).unwrap(), all[2 * row..], "{}", t.name);
        assert!(f.dequantize_rows(&t.name, 2, 2).is_err());
        assert!(f.dequantize_rows(&t.name, usize::MAX, 2).is_err());
    }
    // The same values as the 2-D F32 tensor they were reshaped from.
    assert_eq!(f.dequantize("t.cube").unwrap(), f.dequantize("t.F32").unwrap());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = fixture();
    let full = open(bytes.clone()).unwrap();
    let last_tensor_end = full.tensors().iter().map(|t| full.data_offset() + t.offset + t.n_bytes()).max().unwrap();
    for len in 0..bytes.len() {
        let r = open(bytes[..len].to_vec());
        if (len as u64) < last_tensor_end {
            let e = r.expect_err(&format!("truncated to {len} bytes must fail"));
            let msg = e.to_string();
            assert!(msg.contains("test.gguf"), "error names the file: {msg}");
            assert!(
                matches!(e, GgufError::Truncated { .. } | GgufError::OutOfBounds { .. }),
                "truncated to {len}: unexpected {e:?}"
            );
        }
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = fixture();
    b[0] = b'X';
    let e = open(b).unwrap_err();
    assert!(matches!(e, GgufError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("not a GGUF file"));
    let mut b = fixture();
    b[4] = 9;
    assert!(matches!(open(b).unwrap_err(), GgufError::BadVersion { version: 9, .. }));
}

/// Byte position of tensor `name`'s info (its name string's length prefix).
fn tensor_info_pos(bytes: &[u8], name: &str) -> usize {
    let needle: Vec<u8> = (name.len() as u64).to_le_bytes().iter().chain(name.as_bytes()).copied().collect();
    bytes.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn unknown_tensor_type_and_bad_offsets() {
    let b = fixture();
    let p = tensor_info_pos(&b, "t.Q4_K") + 8 + "t.Q4_K".len();
    // n_dims (u32) = 2, dims (2 × u64), type (u32), offset (u64)
    assert_eq!(u32::from_le_bytes(b[p..p + 4].try_into().unwrap()), 2);
    let type_at = p + 4 + 16;
    let offset_at = type_at + 4;

    let mut c = b.clone();
    c[type_at..type_at + 4].copy_from_slice(&77u32.to_le_bytes());
    let e = open(c).unwrap_err();
    assert!(matches!(e, GgufError::UnsupportedType { type_id: 77, .. }), "{e}");
    assert!(e.to_string().contains("t.Q4_K") && e.to_string().contains("Q6_K"), "{e}");

    // A known layout that this reader cannot decode: opening works, dequantization names it.
    let mut c = b.clone();
    c[type_at..type_at + 4].copy_from_slice(&GgmlType::IQ2_XXS.id().to_le_bytes());
    // 512×3 IQ2_XXS elements take fewer bytes than Q4_K: still in bounds.
    let f = open(c).unwrap();
    let e = f.dequantize("t.Q4_K").unwrap_err();
    assert!(matches!(e, GgufError::UnsupportedType { .. }), "{e}");
    assert!(f.tensor_data("t.Q4_K").is_ok(), "raw bytes stay available");

    let mut c = b.clone();
    c[offset_at..offset_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(open(c).unwrap_err(), GgufError::OutOfBounds { .. }));
    let mut c = b.clone();
    c[offset_at..offset_at + 8].copy_from_slice(&u64::MAX.wrapping_sub(63).to_le_bytes());
    assert!(matches!(open(c).unwrap_err(), GgufError::OutOfBounds { .. }));
    let mut c = b.clone();
    c[offset_at..offset_at + 8].copy_from_slice(&7u64.to_le_bytes());
    assert!(matches!(open(c).unwrap_err(), GgufError::Invalid { .. }), "misaligned offset");
    // Huge dims overflow the element count.
    let mut c = b.clone();
    c[p + 4..p + 12].copy_from_slice(&(1u64 << 62).to_le_bytes());
    c[p + 12..p + 20].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(open(c).is_err());
}

#[test]
fn absurd_counts_and_value_types() {
    let b = fixture();
    // tensor count and metadata count at bytes 8 and 16
    let mut c = b.clone();
    c[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open(c).is_err());
    let mut c = b.clone();
    c[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open(c).is_err());
    // Unknown value type of the first metadata entry (key string follows the 24-byte header).
    let key_len = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    let ty_at = 32 + key_len;
    let mut c = b.clone();
    c[ty_at..ty_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let e = open(c).unwrap_err();
    assert!(e.to_string().contains("unknown metadata value type 99"), "{e}");
    // An array claiming 2^60 elements.
    let p = b.windows(14).position(|w| w == b"test.arr_float").unwrap() + 14;
    let mut c = b.clone();
    c[p + 8..p + 16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(open(c).unwrap_err(), GgufError::Truncated { .. }));
}

#[test]
fn random_corruption_never_panics() {
    let b = fixture();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut c = b.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % 2000) as usize % c.len();
            c[i] = next() as u8;
        }
        if let Ok(f) = open(c) {
            for t in f.tensors() {
                let _ = f.dequantize(&t.name);
            }
        }
    }
}

#[test]
fn dequantize_into_checks_lengths() {
    let mut out = vec![0f32; 32];
    assert!(dequantize_into(GgmlType::Q8_0, &[0u8; 33], &mut out).is_err());
    assert!(dequantize_into(GgmlType::Q8_0, &[0u8; 34], &mut out[..31]).is_err());
    assert!(dequantize_into(GgmlType::Q8_0, &[0u8; 34], &mut out).is_ok());
    assert!(dequantize_into(GgmlType::IQ2_XXS, &[0u8; 66], &mut vec![0f32; 256]).is_err());
}

/// The header of a real file, truncated anywhere inside its metadata, fails cleanly too.
#[test]
fn real_file_header_truncations() {
    let Some(spec) = speccascade_models::registry::find("smollm2-135m-instruct") else { return };
    let path = spec.cached_path();
    if !path.is_file() {
        assert!(
            std::env::var("SPECCASCADE_SKIP_MODEL_TESTS").as_deref() == Ok("1"),
            "{} missing: run `speccascade models fetch smollm2-135m-instruct` (or set SPECCASCADE_SKIP_MODEL_TESTS=1)",
            path.display()
        );
        return;
    }
    let full = GgufFile::open(&path).unwrap();
    let header_len = full.data_offset() as usize;
    let bytes = std::fs::read(&path).unwrap()[..header_len + 4096].to_vec();
    let mut len = 0;
    while len < header_len {
        assert!(open(bytes[..len].to_vec()).is_err(), "truncated at {len}");
        len += 1 + len / 50;
    }
}
