//! Text ↔ token ids through the `tokenizers` crate, with the model's special tokens and chat
//! template. Built from a Hugging Face `tokenizer.json` or from GGUF metadata (byte-level BPE,
//! `tokenizer.ggml.model = "gpt2"`).

use super::gguf::{Gguf, Value};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map};
use std::path::Path;

/// The chat formats the explainer renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>\n` (SmolLM2, Qwen).
    ChatMl,
    /// `<|role|>\n…</s>\n` (TinyLlama-Chat, Zephyr).
    Zephyr,
}

impl ChatTemplate {
    /// Picks the template from the model's Jinja template text, else from its vocabulary.
    pub fn detect(jinja: Option<&str>, has_token: impl Fn(&str) -> bool) -> ChatTemplate {
        match jinja {
            Some(t) if t.contains("<|im_start|>") => ChatTemplate::ChatMl,
            Some(t) if t.contains("<|user|>") => ChatTemplate::Zephyr,
            _ if has_token("<|im_start|>") => ChatTemplate::ChatMl,
            _ => ChatTemplate::Zephyr,
        }
    }

    /// A system + user exchange, ending where the assistant's reply starts.
    pub fn render(self, system: &str, user: &str, eos: &str) -> String {
        match self {
            ChatTemplate::ChatMl => format!(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ),
            ChatTemplate::Zephyr => {
                format!("<|system|>\n{system}{eos}\n<|user|>\n{user}{eos}\n<|assistant|>\n")
            }
        }
    }
}

/// A tokenizer plus the ids generation needs.
pub struct TextTokenizer {
    /// The underlying tokenizer.
    pub inner: tokenizers::Tokenizer,
    /// Prepended to every prompt when the model expects it.
    pub bos: Option<u32>,
    /// Ids that end a reply (the model's EOS, and `<|im_end|>` for ChatML).
    pub eos: Vec<u32>,
    /// Left-padding id.
    pub pad: u32,
    /// The model's chat format.
    pub template: ChatTemplate,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("template", &self.template)
            .finish()
    }
}

impl TextTokenizer {
    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`) map to their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens dropped when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow!("detokenizing: {e}"))
    }

    /// The id of a single token string, if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of the model's end-of-sequence token.
    pub fn eos_text(&self) -> String {
        self.eos
            .first()
            .and_then(|&id| self.inner.id_to_token(id))
            .unwrap_or_default()
    }

    /// Loads a Hugging Face `tokenizer.json`; specials come from `config`/`generation_config`.
    pub fn from_hf_dir(dir: &Path) -> Result<TextTokenizer> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow!("{}: cannot load tokenizer: {e}", path.display()))?;
        let read_json = |name: &str| -> serde_json::Value {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        let tok_cfg = read_json("tokenizer_config.json");
        let gen_cfg = read_json("generation_config.json");
        let model_cfg = read_json("config.json");
        let id_of = |v: &serde_json::Value| -> Vec<u32> {
            match v {
                serde_json::Value::Number(n) => {
                    n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
                }
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect(),
                _ => vec![],
            }
        };
        // Ids from generation_config.json, else config.json, else tokenizer_config.json's strings.
        let named = |key: &str| -> Vec<u32> {
            let token = match &tok_cfg[key] {
                serde_json::Value::String(s) => Some(s.as_str()),
                v => v["content"].as_str(),
            };
            token
                .and_then(|t| inner.token_to_id(t))
                .into_iter()
                .collect()
        };
        let pick = |key: &str| {
            [
                id_of(&gen_cfg[format!("{key}_id")]),
                id_of(&model_cfg[format!("{key}_id")]),
                named(key),
            ]
            .into_iter()
            .find(|v| !v.is_empty())
            .unwrap_or_default()
        };
        let eos = pick("eos_token");
        let bos = pick("bos_token").first().copied();
        let add_bos = tok_cfg["add_bos_token"].as_bool().unwrap_or(bos.is_some());
        let jinja = tok_cfg["chat_template"].as_str();
        let template = ChatTemplate::detect(jinja, |t| inner.token_to_id(t).is_some());
        finish(inner, if add_bos { bos } else { None }, eos, template)
            .with_context(|| format!("{}", path.display()))
    }

    /// Builds the tokenizer described by GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf) -> Result<TextTokenizer> {
        let model = g.get("tokenizer.ggml.model")?.as_str().unwrap_or("");
        if model != "gpt2" {
            bail!(
                "{}: tokenizer.ggml.model {model:?} is not supported from GGUF (supported: \"gpt2\" byte-level BPE); \
                 use the model's Hugging Face folder with its tokenizer.json instead",
                g.path.display()
            );
        }
        let tokens = g.strings("tokenizer.ggml.tokens")?;
        let merges = g.strings("tokenizer.ggml.merges")?;
        let types: Vec<u64> = match g.get("tokenizer.ggml.token_type")? {
            Value::Array(v) => v.iter().map(|x| x.as_u64().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        let id = |k: &str| g.metadata.get(k).and_then(Value::as_u64).map(|v| v as u32);
        let pre = g
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let json = byte_level_bpe_json(&tokens, &merges, &types, pre);
        let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
            .map_err(|e| anyhow!("{}: building the tokenizer: {e}", g.path.display()))?;
        let eos = id("tokenizer.ggml.eos_token_id").into_iter().collect();
        let add_bos = matches!(
            g.metadata.get("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        );
        let bos = if add_bos {
            id("tokenizer.ggml.bos_token_id")
        } else {
            None
        };
        let jinja = g
            .metadata
            .get("tokenizer.chat_template")
            .and_then(Value::as_str);
        let template = ChatTemplate::detect(jinja, |t| inner.token_to_id(t).is_some());
        finish(inner, bos, eos, template)
    }
}

fn finish(
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    mut eos: Vec<u32>,
    template: ChatTemplate,
) -> Result<TextTokenizer> {
    if template == ChatTemplate::ChatMl {
        eos.extend(inner.token_to_id("<|im_end|>"));
    }
    eos.dedup();
    let pad = *eos
        .first()
        .context("the model declares no end-of-sequence token")?;
    Ok(TextTokenizer {
        inner,
        bos,
        eos,
        pad,
        template,
    })
}

/// The `tokenizer.json` of a byte-level BPE vocabulary; control and user-defined tokens
/// (types 3 and 4) become special added tokens. `pre = "smollm"` (and other llama.cpp
/// pre-tokenizer names of digit-splitting models) splits digits one by one first.
fn byte_level_bpe_json(
    tokens: &[String],
    merges: &[String],
    types: &[u64],
    pre: &str,
) -> serde_json::Value {
    let vocab: Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<_> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let digits_first = matches!(pre, "smollm" | "starcoder" | "refact" | "deepseek-coder");
    let pre_tokenizer = if digits_first {
        json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]})
    } else {
        byte_level.clone()
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
}
