//! One entry point for every model location: a GGUF file or a Hugging Face directory.

use crate::registry::ModelLocation;

use super::error::LoadError;
use super::gguf_load::load_gguf;
use super::model::{Transformer, TransformerOptions};

/// Load the decoder at `loc` (see [`crate::registry::resolve_model`]).
pub fn load_model(loc: &ModelLocation, opts: &TransformerOptions) -> Result<Transformer, LoadError> {
    let name = loc.display_name();
    match loc {
        ModelLocation::Gguf { path } => load_gguf(path, &name, opts),
        ModelLocation::HfDir { dir, .. } => crate::safetensors_load::load_hf_dir(dir, &name, opts),
    }
}
