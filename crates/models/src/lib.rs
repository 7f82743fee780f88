//! speccascade-models: burn transformers (llama/qwen2), GGUF + safetensors loaders, tokenizers, KV cache, model fetch.

pub mod gguf;
pub mod registry;
pub mod fetch;
pub mod tokenizer;
pub mod transformer;
pub mod safetensors_load;
pub mod hf_tensors;
