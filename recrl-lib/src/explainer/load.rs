//! Loading a Llama model and its tokenizer from a GGUF file or a Hugging Face folder.

use super::config::LlamaConfig;
use super::gguf::Gguf;
use super::model::Llama;
use super::tokenizer::TextTokenizer;
use super::LoadOptions;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The Hugging Face tensor name → GGUF tensor name (llama.cpp's naming).
pub fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, module) = rest.split_once('.')?;
    let g = match module {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}"))
}

/// Undoes llama.cpp's row permutation of q/k weights (its RoPE pairs interleaved dimensions;
/// the Hugging Face layout rotates halves): rows `[heads, half, 2]` → `[heads, 2, half]`.
pub fn unpermute_qk(w: &Tensor, heads: i64) -> Tensor {
    let (out, inp) = (w.size()[0], w.size()[1]);
    w.view([heads, out / heads / 2, 2, inp])
        .transpose(1, 2)
        .reshape([out, inp])
}

/// Reads a GGUF model: weights dequantised to f32 and placed on `device` as `opts` asks.
pub fn from_gguf(path: &Path, device: Device, opts: LoadOptions) -> Result<(Llama, TextTokenizer)> {
    let g = Gguf::open(path)?;
    let config = LlamaConfig::from_gguf(&g)?;
    let tokenizer = TextTokenizer::from_gguf(&g)?;
    let (heads, kv_heads) = (
        config.num_attention_heads as i64,
        config.num_key_value_heads as i64,
    );
    let model = Llama::from_tensors(
        config,
        |name| {
            let gname = gguf_name(name).with_context(|| format!("no GGUF name for {name}"))?;
            let (data, shape) = g.dequantize(&gname)?;
            let t = Tensor::from_slice(&data).view(shape.as_slice());
            Ok(if name.ends_with("q_proj.weight") {
                unpermute_qk(&t, heads)
            } else if name.ends_with("k_proj.weight") {
                unpermute_qk(&t, kv_heads)
            } else {
                t
            })
        },
        device,
        opts,
    )?;
    Ok((model, tokenizer))
}

/// Reads a Hugging Face folder: `config.json`, `model.safetensors` (or shards listed in
/// `model.safetensors.index.json`) and `tokenizer.json`.
pub fn from_hf_dir(
    dir: &Path,
    device: Device,
    opts: LoadOptions,
) -> Result<(Llama, TextTokenizer)> {
    let config = LlamaConfig::from_hf_json(&dir.join("config.json"))?;
    let tokenizer = TextTokenizer::from_hf_dir(dir)?;
    let mut tensors = HashMap::new();
    for file in safetensors_files(dir)? {
        let path = dir.join(&file);
        let read = Tensor::read_safetensors(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        tensors.extend(read.into_iter().map(|(n, t)| (n, t.to_kind(Kind::Float))));
    }
    let model = Llama::from_map(config, tensors, device, opts)
        .with_context(|| format!("loading {}", dir.display()))?;
    Ok((model, tokenizer))
}

fn safetensors_files(dir: &Path) -> Result<Vec<String>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index)?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", index.display()))?;
        let map = json["weight_map"]
            .as_object()
            .with_context(|| format!("{}: no weight_map object", index.display()))?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    if dir.join("model.safetensors").is_file() {
        return Ok(vec!["model.safetensors".into()]);
    }
    bail!(
        "{}: neither model.safetensors nor model.safetensors.index.json",
        dir.display()
    )
}

/// Loads `path`: a `.gguf` file or a Hugging Face folder.
pub fn load(path: &Path, device: Device, opts: LoadOptions) -> Result<(Llama, TextTokenizer)> {
    if path.is_dir() {
        from_hf_dir(path, device, opts)
    } else if path.extension().is_some_and(|e| e == "gguf") {
        from_gguf(path, device, opts)
    } else if !path.exists() {
        bail!(
            "explainer model {} does not exist (run scripts/setup.sh to fetch the default)",
            path.display()
        )
    } else {
        bail!(
            "explainer model {}: expected a .gguf file or a Hugging Face folder",
            path.display()
        )
    }
}
