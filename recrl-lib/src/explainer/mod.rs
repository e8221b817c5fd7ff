//! Step 4: the explainer — a Llama-architecture LLM on tch with LoRA and soft item tokens.
//!
//! * [`model::Llama`]: RMSNorm, RoPE (configured θ), grouped-query attention with a KV cache,
//!   SwiGLU, tied or untied lm_head; batched left-padded prompts;
//! * [`load`]: a GGUF file (F32/F16/Q8_0/Q4_0/Q4_1 dequantised on load, tokenizer from the
//!   metadata) or a Hugging Face folder (safetensors, sharded or not, and `tokenizer.json`);
//! * [`generate()`]: greedy or sampled replies with per-token log-probs;
//! * [`lora`]: PEFT-compatible adapters; [`Projector`]: `W_p`, ranker space → model space;
//! * [`prompt`]: the explanation prompt with soft item token slots (docs/design.md §5–6);
//! * `fast` (cargo feature `fast-decode`, on by default): CPU decoding kernels that the model
//!   calls at a few marked hooks; without the feature everything runs on libtorch.
//!
//! ```no_run
//! use recrl_lib::explainer::{Explainer, LoadOptions, GenerationConfig};
//! let root = recrl_lib::paths::project_root();
//! let ex = Explainer::load(&root.join("checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
//!                          tch::Device::Cpu, LoadOptions::default())?;
//! let reply = ex.chat("Say hello.", &GenerationConfig::greedy(20))?;
//! println!("{}", reply.text);
//! # anyhow::Ok(())
//! ```

pub mod config;
#[cfg(feature = "fast-decode")]
pub mod fast;
pub mod generate;
pub mod gguf;
pub mod init;
pub mod linear;
pub mod load;
pub mod lora;
pub mod model;
pub mod probe;
pub mod prompt;
pub mod tokenizer;

pub use config::LlamaConfig;
pub use generate::{generate, Generation, GenerationConfig, PromptBatch, StopReason};
pub use lora::LoraConfig;
pub use model::Llama;
pub use prompt::{BuiltPrompt, ExplainRequest};
pub use tokenizer::{ChatTemplate, TextTokenizer};

use crate::data::Dataset;
use crate::io;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// How to hold the frozen base model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Int8 weight-only quantisation of the base linear layers (the seed's `--int8`).
    pub int8: bool,
    /// bf16 weights and activations (CUDA only; f32 otherwise).
    pub bf16: bool,
}

impl LoadOptions {
    /// The compute kind on `device`: bf16 when asked for and on CUDA, else f32.
    pub fn kind(&self, device: Device) -> Kind {
        if self.bf16 && device.is_cuda() {
            Kind::BFloat16
        } else {
            Kind::Float
        }
    }
}

/// `W_p`: maps ranker item vectors (`d`) to the model's embedding space (`d_model`).
#[derive(Debug)]
pub struct Projector {
    /// `[d_model, d]`.
    pub weight: Tensor,
}

impl Projector {
    /// A projector in `vs` whose outputs, for rows of `table`, have the per-component scale of
    /// the model's token embeddings `embed` (so soft tokens start at a familiar magnitude).
    pub fn new(vs: &nn::Path, table: &Tensor, embed: &Tensor) -> Projector {
        let (d, d_model) = (table.size()[1], embed.size()[1]);
        let rms = |t: &Tensor| {
            f64::try_from(
                t.to_kind(Kind::Float)
                    .pow_tensor_scalar(2)
                    .mean(Kind::Float)
                    .sqrt(),
            )
            .unwrap_or(1.0)
        };
        let std = rms(embed)
            / (rms(&table.narrow(0, 1, table.size()[0] - 1)).max(1e-8) * (d as f64).sqrt());
        let weight = vs.var(
            "w_p",
            &[d_model, d],
            nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        Projector { weight }
    }

    /// `W_p e` for item vectors `[N, d]` → `[N, d_model]`.
    pub fn forward(&self, items: &Tensor) -> Tensor {
        items
            .to_kind(self.weight.kind())
            .linear::<Tensor>(&self.weight, None)
    }
}

/// Parameter counts of the explainer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Frozen base parameters.
    pub base: i64,
    /// Bytes the base weights occupy.
    pub base_bytes: i64,
    /// LoRA parameters.
    pub lora: i64,
    /// `W_p` parameters.
    pub projector: i64,
}

impl ParamCounts {
    /// Trainable share of all parameters (LoRA + `W_p`, `E` excluded).
    pub fn trainable_share(&self) -> f64 {
        (self.lora + self.projector) as f64 / (self.base + self.lora + self.projector) as f64
    }
}

/// A loaded explainer: model, tokenizer and the trainable parts (LoRA, `W_p`).
#[derive(Debug)]
pub struct Explainer {
    /// The decoder.
    pub model: Llama,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// LoRA and `W_p` variables (the base model is not in it).
    pub trainable: nn::VarStore,
    /// Adapter settings once added.
    pub lora: Option<LoraConfig>,
    /// `W_p` once created.
    pub projector: Option<Projector>,
    /// Where the base model came from.
    pub source: PathBuf,
}

impl Explainer {
    /// Loads a GGUF file or a Hugging Face folder onto `device`.
    pub fn load(path: &Path, device: Device, opts: LoadOptions) -> Result<Explainer> {
        let (model, tokenizer) = load::load(path, device, opts)?;
        Ok(Explainer {
            model,
            tokenizer,
            trainable: nn::VarStore::new(device),
            lora: None,
            projector: None,
            source: path.to_path_buf(),
        })
    }

    /// Adds LoRA adapters (B = 0: outputs unchanged); returns the trainable values added.
    pub fn init_lora(&mut self, cfg: &LoraConfig) -> Result<i64> {
        ensure!(self.lora.is_none(), "LoRA adapters were already added");
        let n = lora::add_lora(&mut self.model, &self.trainable.root(), cfg)?;
        self.lora = Some(cfg.clone());
        Ok(n)
    }

    /// Creates `W_p` for the ranker table `table` (`[n_items + 1, d]`).
    pub fn init_projector(&mut self, table: &Tensor) {
        self.projector = Some(Projector::new(
            &self.trainable.root(),
            table,
            &self.model.embed,
        ));
    }

    /// Parameter counts (base, LoRA, `W_p`).
    pub fn counts(&mut self) -> ParamCounts {
        let (base, base_bytes) = self.model.base_size();
        let lora = self
            .model
            .linears_mut()
            .iter()
            .filter_map(|(_, l)| l.lora.as_ref())
            .map(|l| (l.a.numel() + l.b.numel()) as i64)
            .sum();
        let projector = self
            .projector
            .as_ref()
            .map_or(0, |p| p.weight.numel() as i64);
        ParamCounts {
            base,
            base_bytes,
            lora,
            projector,
        }
    }

    /// Builds the prompts of `requests` (soft slots only when `W_p` exists).
    pub fn prompts(&self, ds: &Dataset, requests: &[ExplainRequest]) -> Result<Vec<BuiltPrompt>> {
        requests
            .iter()
            .map(|r| prompt::build(ds, &self.tokenizer, r, self.projector.is_some()))
            .collect()
    }

    /// The left-padded batch of `prompts` and, with `W_p` and `table`, their soft vectors.
    pub fn batch(
        &self,
        prompts: &[BuiltPrompt],
        table: Option<&Tensor>,
    ) -> (PromptBatch, Option<Tensor>) {
        let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
        let slots: Vec<Vec<usize>> = prompts.iter().map(|p| p.soft_positions.clone()).collect();
        let batch = PromptBatch::new(&ids, &slots, self.tokenizer.pad, self.model.device());
        let soft = match (&self.projector, table) {
            (Some(p), Some(e)) if !batch.soft_slots.is_empty() => {
                let items: Vec<i64> = prompts
                    .iter()
                    .flat_map(|p| p.soft_items.iter().map(|&i| i as i64))
                    .collect();
                let rows = e.index_select(0, &Tensor::from_slice(&items).to_device(e.device()));
                Some(p.forward(&rows.to_device(self.model.device())))
            }
            _ => None,
        };
        (batch, soft)
    }

    /// Explanations for `requests` (`table` = the ranker's `E`, needed for soft tokens).
    pub fn explain(
        &self,
        ds: &Dataset,
        requests: &[ExplainRequest],
        table: Option<&Tensor>,
        cfg: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        let prompts = self.prompts(ds, requests)?;
        let (batch, soft) = self.batch(&prompts, table);
        generate(&self.model, &self.tokenizer, &batch, soft.as_ref(), cfg)
    }

    /// One reply to a plain user message (default system prompt of the template).
    pub fn chat(&self, message: &str, cfg: &GenerationConfig) -> Result<Generation> {
        let ids = self.chat_prefix(message)?;
        let batch = PromptBatch::new(&[ids], &[], self.tokenizer.pad, self.model.device());
        Ok(generate(&self.model, &self.tokenizer, &batch, None, cfg)?.remove(0))
    }

    /// The ids of a chat whose user turn is `message` (default system prompt), up to where the
    /// assistant's reply begins.
    pub fn chat_prefix(&self, message: &str) -> Result<Vec<u32>> {
        let text = self.tokenizer.template.render(
            "You are a helpful assistant.",
            message,
            &self.tokenizer.eos_text(),
        );
        let mut ids: Vec<u32> = self.tokenizer.bos.into_iter().collect();
        ids.extend(self.tokenizer.encode(&text)?);
        Ok(ids)
    }

    /// The mean log-probability per token (temperature 1) of each of `texts` as the
    /// continuation of `prefix`, under the **base** model (LoRA off whatever its state: the
    /// frozen reference policy). A text of no tokens gets NaN. Batches of 16 texts, no gradient.
    pub fn reference_log_probs(&mut self, prefix: &[u32], texts: &[&str]) -> Result<Vec<f64>> {
        let was = self.model.lora_enabled;
        self.model.lora_enabled = false;
        let out = self.continuation_log_probs(prefix, texts);
        self.model.lora_enabled = was;
        out
    }

    fn continuation_log_probs(&self, prefix: &[u32], texts: &[&str]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(16) {
            let tokens: Vec<Vec<u32>> = chunk
                .iter()
                .map(|t| self.tokenizer.encode(t))
                .collect::<Result<_>>()?;
            let rows: Vec<Vec<u32>> = tokens
                .iter()
                .map(|t| prefix.iter().chain(t).copied().collect())
                .collect();
            let batch = PromptBatch::new(&rows, &[], self.tokenizer.pad, self.model.device());
            let width = batch.ids.size()[1];
            // Left-padded: the text's n tokens are the last n of a row, predicted by the
            // positions just before them.
            let lp = tch::no_grad(|| {
                self.model
                    .forward_ids(&batch.ids, &batch.mask)
                    .narrow(1, 0, width - 1)
                    .log_softmax(-1, Kind::Float)
                    .gather(2, &batch.ids.narrow(1, 1, width - 1).unsqueeze(-1), false)
                    .squeeze_dim(-1)
                    .to_kind(Kind::Double)
                    .to_device(Device::Cpu)
            });
            for (i, t) in tokens.iter().enumerate() {
                let n = t.len() as i64;
                out.push(if n == 0 || n >= width {
                    f64::NAN
                } else {
                    f64::try_from(
                        lp.get(i as i64)
                            .narrow(0, width - 1 - n, n)
                            .mean(Kind::Double),
                    )?
                });
            }
        }
        Ok(out)
    }

    /// Loads what [`Explainer::save`] wrote into `dir` (adapter, `W_p`), checking the files
    /// against the sha256s in `explainer.json`; `W_p` is created for `table` before its
    /// values are read. Returns the change of `E` (`e_delta.safetensors`, written by a PPO
    /// run) when the folder has one.
    pub fn load_checkpoint(&mut self, dir: &Path, table: &Tensor) -> Result<Option<Tensor>> {
        if let Some(parent) = dir.parent() {
            io::recover(parent)?; // finishes a save that a kill interrupted
        }
        let meta_path = dir.join(crate::paths::files::EXPLAINER);
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&meta_path)
                .with_context(|| format!("reading {}", meta_path.display()))?,
        )
        .with_context(|| format!("{}: not JSON", meta_path.display()))?;
        if let Some(files) = meta["files"].as_object() {
            for (name, want) in files {
                let got = io::sha256_file(&dir.join(name))?;
                ensure!(
                    want.as_str() == Some(got.as_str()),
                    "{}: sha256 {got} differs from {} recorded in {} (corrupt or replaced)",
                    dir.join(name).display(),
                    want,
                    meta_path.display()
                );
            }
        }
        ensure!(self.lora.is_none(), "LoRA adapters were already added");
        let cfg = lora::load_adapter(&mut self.model, &self.trainable.root(), dir)?;
        self.lora = Some(cfg);
        let read = |name: &str, key: &str| -> Result<Option<Tensor>> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            let t = Tensor::read_safetensors(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .into_iter()
                .find(|(n, _)| n == key)
                .with_context(|| format!("{}: no tensor {key}", path.display()))?
                .1;
            Ok(Some(t))
        };
        if let Some(w) = read("w_p.safetensors", "w_p")? {
            self.init_projector(table);
            let p = self.projector.as_mut().expect("just created");
            ensure!(
                w.size() == p.weight.size(),
                "{}: w_p has shape {:?}, the ranker table needs {:?}",
                dir.display(),
                w.size(),
                p.weight.size()
            );
            tch::no_grad(|| p.weight.copy_(&w));
        }
        let delta = read("e_delta.safetensors", "e_delta")?;
        if let Some(d) = &delta {
            ensure!(
                d.size() == table.size(),
                "{}: e_delta has shape {:?}, the ranker table is {:?}",
                dir.display(),
                d.size(),
                table.size()
            );
        }
        Ok(delta)
    }

    /// Writes the adapter (PEFT layout), `w_p.safetensors` and `explainer.json` into `dir`.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        self.save_with(dir, |_| Ok(()))
    }

    /// Replaces the checkpoint folder `dir` by a new one in one commit ([`io::replace_dir`]:
    /// a kill leaves the old checkpoint or the new, and subfolders such as `resume/` carry
    /// over): `extra` first writes further files into it (e.g. `e_delta.safetensors`), then
    /// the adapter (PEFT layout), `w_p.safetensors`, and last `explainer.json` with the sha256
    /// of each.
    pub fn save_with(&mut self, dir: &Path, extra: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let cfg = self
            .lora
            .clone()
            .context("no LoRA adapters to save: call init_lora first")?;
        // the base model by its Hugging Face id when known, else by path
        let base = (self.model.config.model_id.clone())
            .or_else(|| crate::assets::hf_id_for(&self.source))
            .unwrap_or_else(|| self.source.display().to_string());
        io::replace_dir(dir, |dir| {
            extra(dir)?;
            lora::save_adapter(&mut self.model, &cfg, &base, dir)?;
            if let Some(p) = &self.projector {
                io::save_tensors(
                    &dir.join("w_p.safetensors"),
                    &[("w_p", p.weight.to_kind(Kind::Float))],
                )?;
            }
            let meta = serde_json::json!({
                "format": "recrl-explainer/1", "base_model": self.source, "lora": cfg,
                "projector": self.projector.as_ref().map(|p| p.weight.size()),
                "files": sha256s(dir, &["adapter_model.safetensors", "w_p.safetensors", "e_delta.safetensors"])?,
                "code": crate::record::code(),
            });
            io::write_atomic(
                &dir.join(crate::paths::files::EXPLAINER),
                serde_json::to_string_pretty(&meta)?.as_bytes(),
            )
        })
    }
}

fn sha256s(dir: &Path, names: &[&str]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for n in names {
        let p = dir.join(n);
        if p.is_file() {
            out.insert(n.to_string(), io::sha256_file(&p)?.into());
        }
    }
    Ok(out)
}
