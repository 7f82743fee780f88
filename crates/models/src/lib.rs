//! speccascade-models: burn transformers (llama/qwen2), GGUF + safetensors loaders, tokenizers, KV cache, model fetch.
