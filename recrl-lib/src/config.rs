//! The typed experiment configuration (`experiments/recrl_default.yaml`).
//!
//! The file has a `defaults` section and one section per dataset; a dataset's section
//! overrides the defaults key by key (nested sections merge). Unknown keys are errors, and
//! every error names the file, the dataset and the key path.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// The configuration file compiled into the crate, used when no project file is found.
pub const EMBEDDED_YAML: &str = include_str!("../../experiments/recrl_default.yaml");

/// Everything a run of the pipeline needs for one dataset. The flat fields are the seed's
/// keys and CLI flags (same names); the nested sections belong to single steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PPO optimisation epochs over each rollout batch.
    pub epochs: usize,
    /// Rollouts (prompt + explanation) per PPO step.
    pub ppo_batch: usize,
    /// Users per simulator / rollout call.
    pub sim_batch: usize,
    /// Per-token KL penalty β against the reference policy (`--kl_beta`).
    pub kl_beta: f64,
    /// int8 weight-only quantisation of the frozen base model (`--int8`).
    pub int8: bool,
    /// Learning rate of the RL-trained parameters (LoRA, `W_p`, `E`).
    pub lr: f64,
    /// Explanation length cap when sampling, in tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// Seed of every random choice of a run.
    pub seed: u64,
    /// LoRA rank (`--lora_rank`).
    pub lora_rank: usize,
    /// LoRA scale numerator α (scale = α / rank).
    pub lora_alpha: f64,
    /// Dropout on the LoRA input.
    pub lora_dropout: f64,
    /// Micro-batch size of PPO updates (`--micro_batch_size`).
    pub micro_batch_size: usize,
    /// Gradient accumulation steps (`--grad_accum`).
    pub grad_accum: usize,
    /// Rollouts per user prompt (`--group_size`): above 1, each rollout's advantage is its
    /// reward minus its group's mean instead of the value head's estimate.
    #[serde(default = "one")]
    pub group_size: usize,
    /// Prompt + response token budget (`--max_seq_len_explainer`).
    pub max_seq_len_explainer: usize,
    /// Characters of an explanation kept for scoring and logs (`--explanation_max_len`).
    pub explanation_max_len: usize,
    /// PPO steps (`--max_steps`).
    pub max_steps: usize,
    /// Explainer weights: a GGUF file or a Hugging Face folder, relative to the project root.
    pub explainer_model: PathBuf,
    /// Step 1 settings.
    pub data: DataConfig,
    /// Synthetic secrets a PPO run appends to its prompts (the audit's canary exposure; 0 = none).
    pub canaries: usize,
    /// Step 2 settings.
    pub ranker: RankerConfig,
    /// Step 3 settings.
    pub shield: ShieldConfig,
    /// Step 6 settings.
    pub audit: AuditConfig,
}

/// Step 1: turning raw interactions into sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Iterative k-core on users and items until stable.
    pub k_core: usize,
    /// Implicit feedback: keep interactions with rating ≥ this (0 keeps all).
    pub rating_threshold: f64,
}

/// Step 2: the SASRec ranker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankerConfig {
    /// Hidden size d of item embeddings and user states.
    pub hidden: usize,
    /// Self-attention blocks.
    pub blocks: usize,
    /// Attention heads.
    pub heads: usize,
    /// Longest sequence kept (most recent items).
    pub max_len: usize,
    /// Dropout rate.
    pub dropout: f64,
    /// Pre-LayerNorm blocks (false: post-LN as in the 2018 paper).
    pub pre_ln: bool,
    /// Tie the output table E to the input embeddings (the shield needs them untied).
    pub tie_output: bool,
    /// Training loss.
    pub loss: RankerLoss,
    /// Sampled negatives per position for [`RankerLoss::Bce`].
    pub negatives: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Maximum training epochs.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Early-stopping patience in epochs (validation NDCG@10, full ranking).
    pub patience: usize,
}

/// Loss of the ranker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankerLoss {
    /// Full-softmax cross-entropy over all items.
    Ce,
    /// Binary cross-entropy with sampled negatives.
    Bce,
}

/// Step 3: the gradient shield's basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldConfig {
    /// Energy threshold τ: keep the smallest k with Σ_{j≤k} σ_j² ≥ τ Σ σ_j².
    pub tau: f64,
    /// Cap on the number of probe users.
    pub probe_users: usize,
}

/// Step 6: the safety audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Size of the seeded audit set of users.
    pub users: usize,
    /// Counterfactual prompts (gendered words swapped), at most.
    pub counterfactual: usize,
    /// Bootstrap resamples for group intervals.
    pub bootstrap: usize,
}

/// Serde default of counts that default to one (`group_size`).
pub(crate) fn one() -> usize {
    1
}

impl Config {
    /// Loads `dataset`'s configuration from the project's `experiments/recrl_default.yaml`,
    /// or from the copy compiled into the crate when the project has none.
    pub fn load_default(dataset: &str) -> Result<Self> {
        let path = crate::paths::Layout::project().default_config();
        if path.is_file() {
            Self::load(&path, dataset, &[])
        } else {
            Self::from_yaml_str(EMBEDDED_YAML, "<embedded recrl_default.yaml>", dataset, &[])
        }
    }

    /// Loads `dataset`'s configuration from `path`, then applies `overrides` given as
    /// `("ranker.hidden", "128")` pairs (values are parsed as YAML scalars).
    pub fn load(path: &Path, dataset: &str, overrides: &[(String, String)]) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_yaml_str(&text, &path.display().to_string(), dataset, overrides)
    }

    /// Parses a configuration document; `origin` names it in error messages.
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        dataset: &str,
        overrides: &[(String, String)],
    ) -> Result<Self> {
        let doc: Value = serde_yaml::from_str(text).with_context(|| format!("parsing {origin}"))?;
        let Value::Mapping(top) = doc else {
            bail!("{origin}: expected a mapping of sections at the top level");
        };
        let defaults = top
            .get("defaults")
            .cloned()
            .ok_or_else(|| anyhow!("{origin}: no `defaults` section"))?;
        let section = top.get(dataset).cloned().ok_or_else(|| {
            let known: Vec<_> = top
                .keys()
                .filter_map(Value::as_str)
                .filter(|k| *k != "defaults")
                .collect();
            anyhow!(
                "{origin}: no section for dataset `{dataset}` (sections: {})",
                known.join(", ")
            )
        })?;
        let mut merged = defaults;
        merge(&mut merged, section);
        for (key, value) in overrides {
            set_path(&mut merged, key, value).with_context(|| format!("override {key}={value}"))?;
        }
        serde_path_to_error::deserialize(merged).map_err(|e| {
            anyhow!(
                "{origin}, dataset `{dataset}`, key `{}`: {}",
                e.path(),
                e.inner()
            )
        })
    }

    /// The configuration as YAML (what `recrl config` prints).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a Config always serialises")
    }
}

/// Deep merge: mappings merge key by key, anything else is replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Sets a dotted key path (`ranker.hidden`) to a YAML scalar; the path must already exist,
/// so a typo is an error instead of a silently ignored key.
fn set_path(doc: &mut Value, dotted: &str, raw: &str) -> Result<()> {
    let value: Value = serde_yaml::from_str(raw).with_context(|| format!("parsing `{raw}`"))?;
    let mut node = doc;
    for part in dotted.split('.') {
        let map: &mut Mapping = node
            .as_mapping_mut()
            .ok_or_else(|| anyhow!("`{part}` is below a value that is not a section"))?;
        node = map
            .get_mut(part)
            .ok_or_else(|| anyhow!("unknown key `{part}` in `{dotted}`"))?;
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../../experiments/recrl_default.yaml");

    #[test]
    fn dataset_section_overrides_defaults_and_nested_sections_merge() {
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &[]).unwrap();
        assert_eq!(c.ppo_batch, 16); // from the ml-100k section
        assert_eq!(c.kl_beta, 0.05); // from defaults
        assert_eq!(c.ranker.max_len, 50); // nested override
        assert_eq!(c.ranker.hidden, 64); // nested default kept beside it
        assert_eq!(c.ranker.loss, RankerLoss::Ce);
    }

    #[test]
    fn seed_books_section_keeps_the_seed_values() {
        let c = Config::from_yaml_str(DOC, "test", "books", &[]).unwrap();
        assert_eq!((c.epochs, c.ppo_batch, c.sim_batch), (8, 256, 32));
        assert!(c.int8);
        assert_eq!(c.lr, 3e-5);
        assert_eq!((c.temperature, c.top_p, c.seed), (0.7, 0.9, 42));
    }

    #[test]
    fn overrides_apply_and_typos_are_errors() {
        let o = vec![("ranker.hidden".to_string(), "128".to_string())];
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &o).unwrap();
        assert_eq!(c.ranker.hidden, 128);
        let bad = vec![("ranker.hiden".to_string(), "128".to_string())];
        let err = Config::from_yaml_str(DOC, "test", "ml-100k", &bad).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown key `hiden`"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_dataset_lists_the_sections() {
        let err = Config::from_yaml_str(DOC, "f.yaml", "ml-10m", &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("f.yaml") && msg.contains("ml-100k") && msg.contains("steam"));
    }

    #[test]
    fn unknown_and_mistyped_keys_name_the_key_path() {
        let doc = format!("{DOC}\nextra:\n  ranker:\n    hiddenn: 3\n");
        let err = Config::from_yaml_str(&doc, "f.yaml", "extra", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("ranker"), "{err:#}");
        let doc = format!("{DOC}\nextra:\n  kl_beta: lots\n");
        let err = Config::from_yaml_str(&doc, "f.yaml", "extra", &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("kl_beta") && msg.contains("extra"), "{msg}");
    }

    #[test]
    fn yaml_round_trip() {
        let c = Config::from_yaml_str(DOC, "test", "steam", &[]).unwrap();
        let again: Config = serde_yaml::from_str(&c.to_yaml()).unwrap();
        assert_eq!(c, again);
    }
}
