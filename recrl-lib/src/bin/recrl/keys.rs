//! The flags that set configuration keys, shared by the subcommands: which configuration
//! ([`ConfigArgs`]: dataset, file, preset, `--set`) and each subcommand's `…Keys`. A `…Keys`
//! struct is both the flags (clap) and, serialised, the tree of keys they override (`None` =
//! not given); each field is named like its key (`recrl_lib::config`).

use anyhow::{bail, Result};
use recrl_lib::config::{Config, Overrides};
use recrl_lib::paths;
use serde::Serialize;
use std::path::PathBuf;

/// Which configuration: dataset section, file, preset and `--set` overrides.
#[derive(clap::Args, Clone)]
pub struct ConfigArgs {
    /// Dataset (its section of the configuration file): ml-100k, ml-1m, ml-25m, books,
    /// bookcrossing, steam (`recrl data` also takes `all`).
    #[arg(long, default_value = "ml-100k")]
    pub dataset: String,
    /// Configuration file (default: experiments/recrl_default.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Apply a preset of the file's `presets` section first, e.g. smoke (the notebooks' small runs).
    #[arg(long)]
    pub preset: Option<String>,
    /// Override any key, e.g. --set ranker.hidden=128 (repeatable; flags win over it).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl ConfigArgs {
    /// The resolved configuration: the dataset's section, the preset, `--set`, then `arm_sets`
    /// (a named arm's keys), then the flags in `keys`.
    pub fn load(&self, arm_sets: &[(String, String)], keys: &impl Serialize) -> Result<Config> {
        let mut sets = parse_sets(&self.sets)?;
        sets.extend_from_slice(arm_sets);
        let overrides = Overrides {
            presets: self.preset.iter().cloned().collect(),
            sets,
            trees: vec![serde_yaml::to_value(keys)?],
        };
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| paths::Layout::project().default_config());
        Config::load(&path, &self.dataset, &overrides)
    }
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => bail!("--set expects KEY=VALUE, got `{s}`"),
        })
        .collect()
}

/// `recrl data`'s keys (the `data` section).
#[derive(clap::Args, Serialize)]
pub struct DataKeys {
    #[command(flatten)]
    pub data: DataSection,
}

/// Keys of the `data` section (flags in kebab-case, as ever).
#[derive(clap::Args, Serialize)]
pub struct DataSection {
    /// Iterative k-core (key data.k_core).
    #[arg(long)]
    pub k_core: Option<usize>,
    /// Keep ratings >= this (key data.rating_threshold).
    #[arg(long)]
    pub rating_threshold: Option<f64>,
}

/// `recrl train-ranker`'s keys: the seed, and the `ranker` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
pub struct TrainRankerKeys {
    /// Seed (default: the configuration's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub ranker: RankerSection,
}

/// Keys of the `ranker` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
pub struct RankerSection {
    /// Maximum epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Sequences (windows) per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Hidden size.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Self-attention blocks.
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Longest input sequence.
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Dropout rate.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Loss: ce (full softmax) or bce (sampled negatives).
    #[arg(long)]
    pub loss: Option<String>,
    /// Negatives per position with --loss bce.
    #[arg(long)]
    pub negatives: Option<usize>,
    /// Early-stopping patience in epochs.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Score with the input embeddings (classic SASRec; the shield needs them untied).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub tie_output: Option<bool>,
    /// Post-LN blocks instead of pre-LN (key pre_ln: false).
    #[arg(long = "post_ln", num_args = 0, default_missing_value = "false")]
    pub pre_ln: Option<bool>,
}

/// `recrl basis`'s keys (the `shield` section).
#[derive(clap::Args, Serialize)]
pub struct BasisKeys {
    #[command(flatten)]
    pub shield: ShieldSection,
}

/// Keys of the `shield` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
pub struct ShieldSection {
    /// Energy threshold τ (key shield.tau).
    #[arg(long)]
    pub tau: Option<f64>,
    /// Cap on the probe users (key shield.probe_users).
    #[arg(long)]
    pub probe_users: Option<usize>,
}

/// `recrl lora-init`'s keys.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
pub struct LoraInitKeys {
    /// LoRA rank.
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// Int8 weight-only quantisation of the frozen base.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub int8: Option<bool>,
    /// Explainer weights: a GGUF file or a Hugging Face folder (key explainer_model).
    #[arg(long = "model")]
    pub explainer_model: Option<PathBuf>,
    /// Seed of the adapter and W_p initialisation and of the sample explanations.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The run's keys (`recrl ppo`, `recrl config`): the seed's flags, each the key of its name.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
pub struct RunKeys {
    /// LoRA rank.
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// Per-token KL penalty β.
    #[arg(long)]
    pub kl_beta: Option<f64>,
    /// Rollouts per micro-batch (the forward/backward pass unless --exec_batch is larger).
    #[arg(long)]
    pub micro_batch_size: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Rollouts per forward/backward pass when memory allows more than micro_batch_size
    /// (whole micro-batches of one optimiser step together: the same update; 0: micro_batch_size).
    #[arg(long)]
    pub exec_batch: Option<usize>,
    /// Rollouts per user prompt; above 1, a group baseline replaces the value head.
    #[arg(long)]
    pub group_size: Option<usize>,
    /// RL algorithm: ppo (value head + GAE) or grpo (group-relative, needs group_size ≥ 2).
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Prompt + reply token budget.
    #[arg(long)]
    pub max_seq_len_explainer: Option<usize>,
    /// Characters of an explanation kept for scoring and logs.
    #[arg(long)]
    pub explanation_max_len: Option<usize>,
    /// Synthetic secrets appended to prompts, for the audit's canary exposure.
    #[arg(long)]
    pub canaries: Option<usize>,
    /// PPO steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Int8 weight-only base model.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub int8: Option<bool>,
    #[command(flatten)]
    pub shield: TauKey,
}

/// The `shield.tau` key as `--tau`.
#[derive(clap::Args, Serialize)]
pub struct TauKey {
    /// Energy threshold τ (key shield.tau); `recrl ppo` refits the basis at it instead of
    /// loading it (the τ sweep).
    #[arg(long)]
    pub tau: Option<f64>,
}

/// `recrl audit`'s keys.
#[derive(clap::Args, Serialize)]
pub struct AuditKeys {
    /// Seed of generation (the panel's users come from the `split` section, whatever the seed).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub audit: AuditSection,
}

/// Keys of the `audit` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
pub struct AuditSection {
    /// Panel size: held-out users, a seeded subset (key audit.users; 0 = all of them).
    #[arg(long)]
    pub users: Option<usize>,
    /// Sampled replies per panel user (key audit.samples).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Base samples the best_of_n baseline picks each reply from (key audit.best_of).
    #[arg(long)]
    pub best_of: Option<usize>,
}
