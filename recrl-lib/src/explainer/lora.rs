//! LoRA adapters on the Llama's linear layers, with PEFT-compatible adapter checkpoints
//! (`adapter_model.safetensors` with `base_model.model.<module>.lora_{A,B}.weight` names, and
//! `adapter_config.json`).

use super::linear::Lora;
use super::model::Llama;
use crate::io;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// Adapter hyper-parameters (docs/design.md §6 defaults: rank 16, α 16, dropout 0.05, q,k,v,o).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank r.
    pub rank: usize,
    /// α (scale = α / r).
    pub alpha: f64,
    /// Dropout on the adapter input while training.
    pub dropout: f64,
    /// Module names: any of `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`.
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
        }
    }
}

const MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl LoraConfig {
    fn targets(&self, module: &str) -> bool {
        let leaf = module.rsplit('.').next().unwrap_or(module);
        self.target_modules.iter().any(|t| t == leaf)
    }

    fn check(&self) -> Result<()> {
        ensure!(self.rank > 0, "LoRA rank must be positive");
        for t in &self.target_modules {
            ensure!(
                MODULES.contains(&t.as_str()),
                "LoRA target module {t:?} is not one of {MODULES:?}"
            );
        }
        Ok(())
    }
}

/// The PEFT name of a module's adapter matrix (`which` = "lora_A" or "lora_B").
pub fn peft_name(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.{which}.weight")
}

/// A variable whose full VarStore name is the dotted `name` (tch forbids dots in one segment).
fn var_named(vs: &nn::Path, name: &str, shape: &[i64], init: nn::Init) -> Tensor {
    let (dirs, leaf) = name.rsplit_once('.').unwrap_or(("", name));
    let path = dirs
        .split('.')
        .filter(|s| !s.is_empty())
        .fold(vs.clone(), |p, seg| p / seg);
    path.var(leaf, shape, init)
}

/// Adds adapters to the targeted layers, as variables of `vs` (A Kaiming-uniform as PEFT
/// does, B zero, so the model's output is unchanged). Returns the number of trainable values.
pub fn add_lora(model: &mut Llama, vs: &nn::Path, cfg: &LoraConfig) -> Result<i64> {
    cfg.check()?;
    let mut count = 0;
    for (name, lin) in model.linears_mut() {
        if !cfg.targets(&name) {
            continue;
        }
        ensure!(lin.lora.is_none(), "{name} already has an adapter");
        let (out, inp, r) = (lin.out_features(), lin.in_features(), cfg.rank as i64);
        let bound = 1.0 / (inp as f64).sqrt(); // kaiming_uniform(a = √5)
        let a = var_named(
            vs,
            &peft_name(&name, "lora_A"),
            &[r, inp],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        let b = var_named(
            vs,
            &peft_name(&name, "lora_B"),
            &[out, r],
            nn::Init::Const(0.0),
        );
        count += r * (inp + out);
        lin.lora = Some(Lora {
            a,
            b,
            scale: cfg.alpha / cfg.rank as f64,
            dropout: cfg.dropout,
        });
    }
    Ok(count)
}

/// Folds every adapter into its base weight (for inference; the adapters are removed).
pub fn merge(model: &mut Llama) {
    for (_, lin) in model.linears_mut() {
        lin.merge();
    }
    model.fuse();
}

/// Writes `adapter_model.safetensors` and `adapter_config.json` into `dir` (atomically).
pub fn save_adapter(
    model: &mut Llama,
    cfg: &LoraConfig,
    base_model: &str,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (name, lin) in model.linears_mut() {
        if let Some(l) = &lin.lora {
            named.push((
                peft_name(&name, "lora_A"),
                l.a.detach()
                    .to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu),
            ));
            named.push((
                peft_name(&name, "lora_B"),
                l.b.detach()
                    .to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu),
            ));
        }
    }
    ensure!(!named.is_empty(), "the model has no LoRA adapters to save");
    let weights = dir.join("adapter_model.safetensors");
    let tmp = io::temp_beside(&weights, ".safetensors")?;
    Tensor::write_safetensors(&named, tmp.path())
        .with_context(|| format!("writing {}", weights.display()))?;
    io::persist(tmp, &weights)?;
    let json = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "r": cfg.rank, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout,
        "target_modules": cfg.target_modules, "bias": "none", "fan_in_fan_out": false,
        "inference_mode": false, "init_lora_weights": true, "modules_to_save": null,
    });
    io::write_atomic(
        &dir.join("adapter_config.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )
}

/// Reads an adapter folder's config.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join("adapter_config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let field = |k: &str| {
        v.get(k)
            .with_context(|| format!("{}: field {k} is missing", path.display()))
    };
    if field("peft_type")?.as_str() != Some("LORA") {
        bail!("{}: peft_type is not \"LORA\"", path.display());
    }
    Ok(LoraConfig {
        rank: field("r")?
            .as_u64()
            .with_context(|| format!("{}: r is not an integer", path.display()))?
            as usize,
        alpha: field("lora_alpha")?
            .as_f64()
            .with_context(|| format!("{}: lora_alpha is not a number", path.display()))?,
        dropout: v
            .get("lora_dropout")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.0),
        target_modules: serde_json::from_value(field("target_modules")?.clone()).with_context(
            || format!("{}: target_modules is not a list of names", path.display()),
        )?,
    })
}

/// Adds adapters from `dir` (saved by [`save_adapter`] or PEFT) as variables of `vs`.
pub fn load_adapter(model: &mut Llama, vs: &nn::Path, dir: &Path) -> Result<LoraConfig> {
    let cfg = read_adapter_config(dir)?;
    add_lora(model, vs, &cfg)?;
    let path = dir.join("adapter_model.safetensors");
    let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect();
    for (name, lin) in model.linears_mut() {
        if let Some(l) = &mut lin.lora {
            for (which, var) in [("lora_A", &mut l.a), ("lora_B", &mut l.b)] {
                let key = peft_name(&name, which);
                let t = saved
                    .get(&key)
                    .with_context(|| format!("{}: tensor {key} is missing", path.display()))?;
                ensure!(
                    t.size() == var.size(),
                    "{}: {key} has shape {:?}, expected {:?}",
                    path.display(),
                    t.size(),
                    var.size()
                );
                tch::no_grad(|| var.copy_(t));
            }
        }
    }
    Ok(cfg)
}
