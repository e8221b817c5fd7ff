//! The Llama architecture's hyper-parameters, read from a Hugging Face `config.json` or from
//! GGUF metadata (`llama.*` keys).

use super::gguf::{Gguf, Value};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Shape and constants of a Llama-architecture decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width `d_model`.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// RMSNorm ε.
    pub rms_norm_eps: f64,
    /// Longest context the model was trained for.
    pub max_position_embeddings: usize,
    /// lm_head shares the token embedding.
    pub tie_word_embeddings: bool,
    /// The model's Hugging Face id when its `config.json` says it (`_name_or_path`), which
    /// saved adapters name as their `base_model_name_or_path` (GGUF files do not carry it
    /// reliably: the registry's `hf_id` names the fetched ones, see [`crate::assets::hf_id_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Reads a Hugging Face `config.json`; refuses other architectures.
    pub fn from_hf_json(path: &Path) -> Result<LlamaConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
        let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if model_type != "llama" {
            bail!(
                "{}: model_type {model_type:?} is not supported (the explainer implements the Llama architecture: model_type \"llama\")",
                path.display()
            );
        }
        #[derive(Deserialize)]
        struct Hf {
            vocab_size: usize,
            hidden_size: usize,
            intermediate_size: usize,
            num_hidden_layers: usize,
            num_attention_heads: usize,
            num_key_value_heads: Option<usize>,
            #[serde(default = "default_theta")]
            rope_theta: f64,
            #[serde(default = "default_eps")]
            rms_norm_eps: f64,
            #[serde(default = "default_ctx")]
            max_position_embeddings: usize,
            #[serde(default)]
            tie_word_embeddings: bool,
        }
        fn default_theta() -> f64 {
            10_000.0
        }
        fn default_eps() -> f64 {
            1e-6
        }
        fn default_ctx() -> usize {
            2048
        }
        let raw_id = raw
            .get("_name_or_path")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let raw_id = raw_id.as_deref();
        let hf: Hf = serde_path_to_error::deserialize(raw.clone()).map_err(|e| {
            anyhow::anyhow!("{}: field {}: {}", path.display(), e.path(), e.inner())
        })?;
        Ok(LlamaConfig {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            rope_theta: hf.rope_theta,
            rms_norm_eps: hf.rms_norm_eps,
            max_position_embeddings: hf.max_position_embeddings,
            tie_word_embeddings: hf.tie_word_embeddings,
            model_id: raw_id
                .filter(|id| !id.is_empty() && !id.starts_with(['/', '.']))
                .map(str::to_string),
        })
    }

    /// Reads the `llama.*` metadata of a GGUF file; refuses other architectures.
    pub fn from_gguf(g: &Gguf) -> Result<LlamaConfig> {
        let arch = g.get("general.architecture")?.as_str().unwrap_or("");
        if arch != "llama" {
            bail!(
                "{}: general.architecture {arch:?} is not supported (the explainer implements \"llama\")",
                g.path.display()
            );
        }
        let int = |k: &str| -> Result<usize> {
            g.get(&format!("llama.{k}"))?
                .as_u64()
                .map(|v| v as usize)
                .with_context(|| format!("{}: llama.{k} is not an integer", g.path.display()))
        };
        let float = |k: &str, default: f64| {
            g.metadata
                .get(&format!("llama.{k}"))
                .and_then(Value::as_f64)
                .unwrap_or(default)
        };
        let heads = int("attention.head_count")?;
        let vocab = match int("vocab_size") {
            Ok(v) => v,
            Err(_) => g.strings("tokenizer.ggml.tokens")?.len(),
        };
        Ok(LlamaConfig {
            vocab_size: vocab,
            hidden_size: int("embedding_length")?,
            intermediate_size: int("feed_forward_length")?,
            num_hidden_layers: int("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: int("attention.head_count_kv").unwrap_or(heads),
            rope_theta: float("rope.freq_base", 10_000.0),
            rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            max_position_embeddings: int("context_length").unwrap_or(2048),
            tie_word_embeddings: !g.tensors.contains_key("output.weight"),
            model_id: None,
        })
    }
}
