//! The typed experiment configuration (`experiments/recrl_default.yaml`).
//!
//! The file has a `defaults` section and one section per dataset; a dataset's section
//! overrides the defaults key by key (nested sections merge). Unknown keys are errors, and
//! every error names the file, the dataset and the key path.

use anyhow::{anyhow, bail, ensure, Context, Result};
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
    /// Sentences a reply may end before generation stops it (0 = off: only the end-of-sequence
    /// token and `max_new_tokens` stop it; issue 31: replies that end by themselves).
    #[serde(default)]
    pub max_sentences: usize,
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
    /// Rollouts run per forward/backward pass of an update (`--exec_batch`) when memory
    /// allows more than `micro_batch_size`: whole micro-batches of one optimiser step go
    /// through together, so the update is the same (0: `micro_batch_size`, the seed's).
    #[serde(default)]
    pub exec_batch: usize,
    /// Rollouts per user prompt (`--group_size`): above 1, each rollout's advantage is its
    /// reward minus its group's mean instead of the value head's estimate.
    #[serde(default = "one")]
    pub group_size: usize,
    /// The RL algorithm (`--algorithm`): `ppo` (value head + GAE, KL in the reward) or `grpo`
    /// (group-relative advantages, KL in the loss, no value head; needs `group_size` ≥ 2).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Run each GRPO group's shared prompt once per pass and prefill (true; issue 29): the
    /// update is the same up to float rounding. `false` computes every row's prompt.
    #[serde(default = "yes")]
    pub shared_prompts: bool,
    /// Where GRPO's old log-probs come from: `sampler` (the log-probs generation computed,
    /// no extra pass; they agree with the scoring pass to float rounding) or `score` (a
    /// no-grad scoring pass, as before issue 29). PPO's value head needs that pass anyway.
    #[serde(default)]
    pub old_logprobs: OldLogprobs,
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
    /// The simulated user of steps 5 and 6 (fixed before any result run).
    pub sim: SimConfig,
    /// The form gates of the reward `q(x)` (fixed before any result run; issue 31).
    #[serde(default)]
    pub reward: RewardConfig,
    /// The held-out evaluation users of steps 5 and 6 (`data::UserSplit`).
    pub split: SplitConfig,
    /// The PPO objective's constants (clip, value weight, gradient clip, γ, λ): the seed's
    /// hard-coded values, keys since issue 30.
    #[serde(default = "PpoKeys::embedded")]
    pub ppo: PpoKeys,
}

/// Step 5: the constants of the PPO objective (`ppo` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoKeys {
    /// Clip range ε of the probability ratio.
    pub clip: f64,
    /// Weight of the value loss (PPO's value head).
    pub vf_coef: f64,
    /// Gradient norm clip of each optimiser step.
    pub max_grad_norm: f64,
    /// Discount γ of the token rewards.
    pub gamma: f64,
    /// GAE λ.
    pub lambda: f64,
}

impl PpoKeys {
    /// The embedded configuration's `ppo` section (for files written before it existed).
    fn embedded() -> PpoKeys {
        Config::defaults().ppo
    }
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

/// The seeded split of users into RL users and held-out evaluation users (docs/design.md §8.5),
/// fixed once per dataset: it depends on nothing else, a run's seed included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Share of the users with a training history held out for evaluation.
    pub eval_fraction: f64,
    /// Seed of the split (and of the panel's and the membership set's subsets).
    pub seed: u64,
}

/// Step 6: the safety audit and the held-out click panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Panel size: a seeded subset of this many evaluation users (0 = all of them).
    pub users: usize,
    /// Sampled replies per panel user (besides the greedy one).
    pub samples: usize,
    /// RL users added to the panel's for the membership test (a mixed set apart from the panel).
    pub membership_users: usize,
    /// Samples of `base` per panel reply that the `best_of_n` baseline picks the best of.
    pub best_of: usize,
    /// Counterfactual prompts (gendered words swapped), at most.
    pub counterfactual: usize,
    /// Bootstrap resamples for group intervals.
    pub bootstrap: usize,
}

/// The RL algorithm of step 5 (docs/design.md §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// PPO with a value head and GAE; the KL penalty is part of each token's reward.
    #[default]
    Ppo,
    /// Group-relative: each rollout's advantage is its reward standardised within its group of
    /// `group_size` samples of one prompt; the KL to the reference is a loss term (k3).
    Grpo,
}

/// Where an update's old log-probs (the sampling policy's) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OldLogprobs {
    /// The log-probs the sampler computed for the tokens it drew (GRPO; PPO scores anyway).
    #[default]
    Sampler,
    /// A no-grad scoring pass over the rollouts before the update.
    Score,
}

/// The simulated user (docs/design.md §7.2):
/// `P(click) = σ(α s̃(u,i) + β_q (q(x) − ½) + b_u)`, `b_u ~ N(0, σ_b²)`, with `s̃` the score
/// standardised by the step-0 mean and spread of the users' top scores (a fixed affine map), so
/// that an average user, item and quality of ½ click half the time (`sim::SimParams`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// α: weight of the standardised ranker score.
    pub alpha: f64,
    /// β_q: weight of the explanation quality.
    pub beta_q: f64,
    /// σ_b: standard deviation of the per-user bias.
    pub sigma_b: f64,
}

/// The form gates of `q(x)` (`sim::quality::Form`, docs/design.md §7.2; issue 31): each failed
/// check multiplies `q` by `form_penalty`. Fixed on 2026-12-07 before any result run under
/// them; never tuned on results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    /// What a failed form check leaves of `q(x)` (0.4: one failure caps `q` at 0.4 of the
    /// text's other parts, two at 0.16).
    pub form_penalty: f64,
    /// Prose: the least share of function words among the words outside the named titles
    /// (English prose 35–55 %, a keyword list of titles, genres and years almost none).
    pub prose_function_share: f64,
    /// Prose: the fewest words outside the named titles (a bare title is not prose).
    pub prose_min_words: usize,
    /// Prose: the most number words in a row ("1977 1977 1977" is a digit run).
    pub prose_number_run: usize,
    /// Own words: a reply copies its item's reference sentence when one run of its words holds
    /// this share of the sentence's words (a copy 0.9–1, the fixed template 0.6–0.75).
    pub copy_share: f64,
}

impl Default for RewardConfig {
    /// The embedded configuration's `reward` section (one declaration: the YAML's).
    fn default() -> Self {
        Config::defaults().reward
    }
}

/// Serde default of counts that default to one (`group_size`).
pub(crate) fn one() -> usize {
    1
}

/// Serde default of switches that default to on (`ppo.shared_prompts`).
pub(crate) fn yes() -> bool {
    true
}

/// Changes to a dataset's configuration, applied over its section in this order: the named
/// presets, the `key=value` pairs, then the key trees (so a CLI flag wins over `--set`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Presets of the file's `presets` section (e.g. `smoke`).
    pub presets: Vec<String>,
    /// `("ranker.hidden", "128")` pairs; values are parsed as YAML scalars.
    pub sets: Vec<(String, String)>,
    /// Trees of keys (e.g. a command's flags, serialised); null leaves are not given.
    pub trees: Vec<Value>,
}

impl Config {
    /// The `defaults` section of the configuration compiled into the crate, with no dataset's
    /// section over it: what the library's `Default`s are (`PpoConfig`, `RewardConfig`, the
    /// ranker's options), so a crate user gets the CLI's settings.
    pub fn defaults() -> Config {
        static DEFAULTS: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
        DEFAULTS
            .get_or_init(|| {
                let origin = "the embedded experiments/recrl_default.yaml";
                let top = parse_sections(EMBEDDED_YAML, origin).expect("embedded configuration");
                let values = top.get("defaults").cloned().expect("a `defaults` section");
                let cfg: Config = serde_path_to_error::deserialize(values).unwrap_or_else(|e| {
                    panic!("{origin}, `defaults`, key `{}`: {}", e.path(), e.inner())
                });
                cfg.check().expect("embedded defaults pass the checks");
                cfg
            })
            .clone()
    }

    /// Loads `dataset`'s configuration from the project's `experiments/recrl_default.yaml`,
    /// or from the copy compiled into the crate when the project has none.
    pub fn load_default(dataset: &str) -> Result<Self> {
        let (text, origin) = default_document()?;
        Self::from_yaml_str(&text, &origin, dataset, &Overrides::default())
    }

    /// Loads `dataset`'s configuration from `path`, then applies `overrides`.
    pub fn load(path: &Path, dataset: &str, overrides: &Overrides) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_yaml_str(&text, &path.display().to_string(), dataset, overrides)
    }

    /// Parses a configuration document; `origin` names it in error messages.
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        dataset: &str,
        overrides: &Overrides,
    ) -> Result<Self> {
        let top = parse_sections(text, origin)?;
        let mut merged = dataset_values(&top, origin, dataset)?;
        apply(&mut merged, &top, origin, overrides)?;
        let cfg: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
            anyhow!(
                "{origin}, dataset `{dataset}`, key `{}`: {}",
                e.path(),
                e.inner()
            )
        })?;
        cfg.check()
            .with_context(|| format!("{origin}, dataset `{dataset}`"))?;
        Ok(cfg)
    }

    /// Refuses values that parse but cannot run: a count or size of 0 where one is needed
    /// (`ranker.max_len = 0` would never finish), `ranker.hidden` not divisible by
    /// `ranker.heads`, rates and probabilities outside their range, and NaN or infinite numbers.
    /// The error names the key and the allowed range.
    pub fn check(&self) -> Result<()> {
        let (r, sh, a) = (&self.ranker, &self.shield, &self.audit);
        let at_least_one = [
            ("epochs", self.epochs),
            ("ppo_batch", self.ppo_batch),
            ("sim_batch", self.sim_batch),
            ("max_new_tokens", self.max_new_tokens),
            ("lora_rank", self.lora_rank),
            ("micro_batch_size", self.micro_batch_size),
            ("grad_accum", self.grad_accum),
            ("group_size", self.group_size),
            ("max_seq_len_explainer", self.max_seq_len_explainer),
            ("explanation_max_len", self.explanation_max_len),
            ("ranker.hidden", r.hidden),
            ("ranker.blocks", r.blocks),
            ("ranker.heads", r.heads),
            ("ranker.max_len", r.max_len),
            ("ranker.negatives", r.negatives),
            ("ranker.batch_size", r.batch_size),
            ("ranker.epochs", r.epochs),
            ("shield.probe_users", sh.probe_users),
            ("audit.samples", a.samples),
            ("audit.best_of", a.best_of),
            ("audit.bootstrap", a.bootstrap),
        ];
        for (key, v) in at_least_one {
            ensure!(v >= 1, "key `{key}`: must be at least 1, not {v}");
        }
        ensure!(
            r.hidden.is_multiple_of(r.heads),
            "key `ranker.heads`: {} does not divide ranker.hidden = {}",
            r.heads,
            r.hidden
        );
        self.check_ranges()
    }

    /// [`Config::check`]'s ranges of the real-valued keys.
    fn check_ranges(&self) -> Result<()> {
        let (r, sh) = (&self.ranker, &self.shield);
        const INF: f64 = f64::INFINITY;
        // (key, value, lower end, included, upper end, included); all must be finite.
        let ranges = [
            ("lr", self.lr, 0.0, false, INF, false),
            ("kl_beta", self.kl_beta, 0.0, true, INF, false),
            ("temperature", self.temperature, 0.0, false, INF, false),
            ("top_p", self.top_p, 0.0, false, 1.0, true),
            ("lora_alpha", self.lora_alpha, 0.0, false, INF, false),
            ("lora_dropout", self.lora_dropout, 0.0, true, 1.0, false),
            ("ranker.dropout", r.dropout, 0.0, true, 1.0, false),
            ("ranker.lr", r.lr, 0.0, false, INF, false),
            ("ranker.weight_decay", r.weight_decay, 0.0, true, INF, false),
            ("shield.tau", sh.tau, 0.0, false, 1.0, true),
            (
                "split.eval_fraction",
                self.split.eval_fraction,
                0.0,
                true,
                1.0,
                false,
            ),
            ("sim.sigma_b", self.sim.sigma_b, 0.0, true, INF, false),
            ("ppo.clip", self.ppo.clip, 0.0, false, INF, false),
            ("ppo.vf_coef", self.ppo.vf_coef, 0.0, true, INF, false),
            (
                "ppo.max_grad_norm",
                self.ppo.max_grad_norm,
                0.0,
                false,
                INF,
                false,
            ),
            ("ppo.gamma", self.ppo.gamma, 0.0, true, 1.0, true),
            ("ppo.lambda", self.ppo.lambda, 0.0, true, 1.0, true),
            ("sim.alpha", self.sim.alpha, -INF, false, INF, false),
            ("sim.beta_q", self.sim.beta_q, -INF, false, INF, false),
            (
                "reward.form_penalty",
                self.reward.form_penalty,
                0.0,
                true,
                1.0,
                true,
            ),
            (
                "reward.prose_function_share",
                self.reward.prose_function_share,
                0.0,
                true,
                1.0,
                true,
            ),
            (
                "reward.copy_share",
                self.reward.copy_share,
                0.0,
                false,
                1.0,
                true,
            ),
            (
                "data.rating_threshold",
                self.data.rating_threshold,
                -INF,
                false,
                INF,
                false,
            ),
        ];
        for (key, v, lo, lo_in, hi, hi_in) in ranges {
            let inside =
                v.is_finite() && (v > lo || lo_in && v == lo) && (v < hi || hi_in && v == hi);
            let end = |x: f64| {
                if x.is_infinite() {
                    "∞".to_string()
                } else {
                    x.to_string()
                }
            };
            ensure!(
                inside,
                "key `{key}`: {v} is outside {}{}, {}{}",
                if lo_in { '[' } else { '(' },
                end(lo).replace('∞', "−∞"),
                end(hi),
                if hi_in { ']' } else { ')' }
            );
        }
        Ok(())
    }

    /// This configuration with the preset `name` of the project's configuration file applied
    /// (e.g. `smoke`: the small workloads of the notebooks' `--smoke` runs).
    pub fn with_preset(&self, name: &str) -> Result<Self> {
        let (text, origin) = default_document()?;
        let preset = preset_of(&parse_sections(&text, &origin)?, &origin, name)?;
        self.changed(&format!("preset `{name}`"), |doc| {
            set_tree(doc, &preset, "")
        })
    }

    /// This configuration with `sets` applied, as `--set key=value` would (see [`Overrides::sets`]).
    pub fn with_sets(&self, sets: &[(String, String)]) -> Result<Self> {
        self.changed("overrides", |doc| {
            for (key, value) in sets {
                set_scalar(doc, key, value).with_context(|| format!("override {key}={value}"))?;
            }
            Ok(())
        })
    }

    /// The configuration as YAML (what `recrl config` prints).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a Config always serialises")
    }

    /// This configuration as a YAML tree, changed by `change`, read back (`what` names the
    /// change in errors).
    fn changed(&self, what: &str, change: impl FnOnce(&mut Value) -> Result<()>) -> Result<Self> {
        let mut doc = serde_yaml::to_value(self).expect("a Config always serialises");
        change(&mut doc).with_context(|| what.to_string())?;
        let cfg: Config = serde_path_to_error::deserialize(doc)
            .map_err(|e| anyhow!("{what}, key `{}`: {}", e.path(), e.inner()))?;
        cfg.check().with_context(|| what.to_string())?;
        Ok(cfg)
    }
}

/// Top-level sections of the file that are not datasets.
const NOT_DATASETS: [&str; 2] = ["defaults", "presets"];

/// The dataset sections a configuration file may have (the names of `data::DatasetName`,
/// which a test keeps equal): any other top-level section is an error, so a misspelt
/// `ml-100K:` is not silently ignored.
pub const DATASET_SECTIONS: [&str; 6] = [
    "ml-100k",
    "ml-1m",
    "ml-25m",
    "books",
    "bookcrossing",
    "steam",
];

/// The project's configuration file, or the copy compiled into the crate: `(text, origin)`.
fn default_document() -> Result<(String, String)> {
    let path = crate::paths::Layout::project().default_config();
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok((text, path.display().to_string()))
    } else {
        Ok((
            EMBEDDED_YAML.to_string(),
            "<embedded recrl_default.yaml>".to_string(),
        ))
    }
}

/// The top-level mapping of a configuration document.
fn parse_sections(text: &str, origin: &str) -> Result<Mapping> {
    let doc: Value = serde_yaml::from_str(text).with_context(|| format!("parsing {origin}"))?;
    let Value::Mapping(top) = doc else {
        bail!("{origin}: expected a mapping of sections at the top level");
    };
    for key in top.keys() {
        let name = key.as_str().unwrap_or_default();
        ensure!(
            NOT_DATASETS.contains(&name) || DATASET_SECTIONS.contains(&name),
            "{origin}: unknown top-level section {}: expected {}, or a dataset: {}",
            serde_yaml::to_string(key).unwrap_or_default().trim(),
            NOT_DATASETS.join(", "),
            DATASET_SECTIONS.join(", ")
        );
    }
    Ok(top)
}

/// `defaults` merged with `dataset`'s section.
fn dataset_values(top: &Mapping, origin: &str, dataset: &str) -> Result<Value> {
    let defaults = top
        .get("defaults")
        .cloned()
        .ok_or_else(|| anyhow!("{origin}: no `defaults` section"))?;
    let section = top
        .get(dataset)
        .filter(|_| dataset != "presets")
        .cloned()
        .ok_or_else(|| {
            let known: Vec<_> = top
                .keys()
                .filter_map(Value::as_str)
                .filter(|k| !NOT_DATASETS.contains(k))
                .collect();
            anyhow!(
                "{origin}: no section for dataset `{dataset}` (sections: {})",
                known.join(", ")
            )
        })?;
    let mut merged = defaults;
    merge(&mut merged, section);
    Ok(merged)
}

/// Applies `overrides` to `values` in their order (presets from `top`'s `presets` section).
fn apply(values: &mut Value, top: &Mapping, origin: &str, overrides: &Overrides) -> Result<()> {
    for name in &overrides.presets {
        let preset = preset_of(top, origin, name)?;
        set_tree(values, &preset, "").with_context(|| format!("preset `{name}`"))?;
    }
    for (key, value) in &overrides.sets {
        set_scalar(values, key, value).with_context(|| format!("override {key}={value}"))?;
    }
    for tree in &overrides.trees {
        set_tree(values, tree, "")?;
    }
    Ok(())
}

/// The preset `name` of the document's `presets` section.
fn preset_of(top: &Mapping, origin: &str, name: &str) -> Result<Value> {
    let presets = top.get("presets").and_then(Value::as_mapping);
    presets.and_then(|p| p.get(name)).cloned().ok_or_else(|| {
        let known: Vec<_> = presets
            .into_iter()
            .flat_map(|p| p.keys().filter_map(Value::as_str))
            .collect();
        anyhow!(
            "{origin}: no preset `{name}` (presets: {})",
            known.join(", ")
        )
    })
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

/// Sets a dotted key path to `raw` parsed as a YAML scalar (`--set ranker.hidden=128`).
fn set_scalar(doc: &mut Value, dotted: &str, raw: &str) -> Result<()> {
    let value: Value = serde_yaml::from_str(raw).with_context(|| format!("parsing `{raw}`"))?;
    set_path(doc, dotted, value)
}

/// Sets every leaf of `tree` at the same key path (below `prefix`) of `doc`, as [`set_path`]
/// does; null leaves are skipped (an option that was not given).
fn set_tree(doc: &mut Value, tree: &Value, prefix: &str) -> Result<()> {
    let Value::Mapping(keys) = tree else {
        bail!("expected a mapping of keys at `{prefix}`");
    };
    for (key, value) in keys {
        let key = key
            .as_str()
            .ok_or_else(|| anyhow!("a key below `{prefix}` is not a string"))?;
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Null => {}
            Value::Mapping(_) => set_tree(doc, value, &path)?,
            leaf => set_path(doc, &path, leaf.clone())?,
        }
    }
    Ok(())
}

/// Sets a dotted key path (`ranker.hidden`) to `value`; the path must already exist,
/// so a typo is an error instead of a silently ignored key.
fn set_path(doc: &mut Value, dotted: &str, value: Value) -> Result<()> {
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
    const NONE: Overrides = Overrides {
        presets: Vec::new(),
        sets: Vec::new(),
        trees: Vec::new(),
    };

    fn sets(pairs: &[(&str, &str)]) -> Overrides {
        Overrides {
            sets: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Overrides::default()
        }
    }

    #[test]
    fn dataset_section_overrides_defaults_and_nested_sections_merge() {
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &NONE).unwrap();
        assert_eq!(c.ppo_batch, 16); // from the ml-100k section
        assert_eq!(c.kl_beta, 0.05); // from defaults
        assert_eq!(c.ranker.max_len, 50); // nested override
        assert_eq!(c.ranker.hidden, 64); // nested default kept beside it
        assert_eq!(c.ranker.loss, RankerLoss::Ce);
    }

    #[test]
    fn the_reward_and_sentence_stop_are_one_setting_for_every_dataset() {
        for ds in DATASET_SECTIONS {
            let c = Config::from_yaml_str(DOC, "test", ds, &NONE).unwrap();
            assert_eq!(c.reward, RewardConfig::default(), "{ds}: reward");
            assert_eq!(c.max_sentences, 1, "{ds}: max_sentences");
            assert_eq!(c.ppo, Config::defaults().ppo, "{ds}: ppo");
        }
        // the values fixed before the result runs of issue 31 (2026-12-07)
        let r = RewardConfig::default();
        assert_eq!(
            (r.form_penalty, r.prose_function_share, r.prose_min_words),
            (0.4, 0.2, 4)
        );
        assert_eq!((r.prose_number_run, r.copy_share), (2, 0.8));
    }

    #[test]
    fn seed_books_section_keeps_the_seed_values() {
        let c = Config::from_yaml_str(DOC, "test", "books", &NONE).unwrap();
        assert_eq!((c.epochs, c.ppo_batch, c.sim_batch), (8, 256, 32));
        assert!(c.int8);
        assert_eq!(c.lr, 3e-5);
        assert_eq!((c.temperature, c.top_p, c.seed), (0.7, 0.9, 42));
    }

    #[test]
    fn overrides_apply_and_typos_are_errors() {
        let o = sets(&[("ranker.hidden", "128")]);
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &o).unwrap();
        assert_eq!(c.ranker.hidden, 128);
        let bad = sets(&[("ranker.hiden", "128")]);
        let err = Config::from_yaml_str(DOC, "test", "ml-100k", &bad).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown key `hiden`"),
            "{err:#}"
        );
    }

    #[test]
    fn key_trees_apply_after_sets_and_skip_null_leaves() {
        let tree: Value =
            serde_yaml::from_str("kl_beta: 0\nlora_rank: null\nranker:\n  hidden: 32\n  blocks: ~")
                .unwrap();
        let o = Overrides {
            sets: vec![
                ("kl_beta".into(), "0.5".into()),
                ("lora_rank".into(), "8".into()),
            ],
            trees: vec![tree],
            ..Overrides::default()
        };
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &o).unwrap();
        assert_eq!((c.kl_beta, c.lora_rank), (0.0, 8));
        assert_eq!((c.ranker.hidden, c.ranker.blocks), (32, 2));
        let typo = Overrides {
            trees: vec![serde_yaml::from_str("ranker:\n  hiden: 3").unwrap()],
            ..Overrides::default()
        };
        let err = Config::from_yaml_str(DOC, "test", "ml-100k", &typo).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown key `hiden` in `ranker.hiden`"),
            "{err:#}"
        );
    }

    #[test]
    fn wrong_types_in_overrides_name_file_dataset_and_key() {
        let err =
            Config::from_yaml_str(DOC, "f.yaml", "ml-100k", &sets(&[("audit.users", "many")]))
                .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("f.yaml") && msg.contains("ml-100k") && msg.contains("audit.users"),
            "{msg}"
        );
    }

    #[test]
    fn smoke_preset_is_the_notebooks_small_workload() {
        let o = Overrides {
            presets: vec!["smoke".into()],
            ..Overrides::default()
        };
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &o).unwrap();
        assert_eq!(
            (c.max_steps, c.ppo_batch, c.group_size, c.epochs),
            (2, 2, 2, 1)
        );
        assert_eq!(
            (c.micro_batch_size, c.max_new_tokens, c.canaries),
            (2, 8, 1)
        );
        assert_eq!(c.ranker.epochs, 2);
        assert_eq!(
            (c.audit.users, c.audit.counterfactual, c.audit.bootstrap),
            (4, 2, 50)
        );
        // everything else is the dataset's
        let plain = Config::from_yaml_str(DOC, "test", "ml-100k", &NONE).unwrap();
        assert_eq!(
            (c.kl_beta, c.lr, c.ranker.max_len),
            (plain.kl_beta, plain.lr, 50)
        );
        // the same preset on a loaded configuration, and after its own changes
        let mut later = plain.clone();
        later.max_steps = 20;
        assert_eq!(later.with_preset("smoke").unwrap(), c);
        let err = plain.with_preset("huge").unwrap_err();
        assert!(
            format!("{err:#}").contains("no preset `huge` (presets: smoke)"),
            "{err:#}"
        );
        assert!(Config::from_yaml_str(DOC, "f.yaml", "presets", &NONE).is_err());
    }

    #[test]
    fn with_sets_changes_keys_of_a_loaded_configuration() {
        let c = Config::from_yaml_str(DOC, "test", "ml-100k", &NONE).unwrap();
        let d = c.with_sets(&[("kl_beta".into(), "0".into())]).unwrap();
        assert_eq!(d.kl_beta, 0.0);
        assert_eq!(
            Config {
                kl_beta: c.kl_beta,
                ..d
            },
            c
        );
        assert!(c.with_sets(&[("kl_bta".into(), "0".into())]).is_err());
        let err = c
            .with_sets(&[("kl_beta".into(), "lots".into())])
            .unwrap_err();
        assert!(format!("{err:#}").contains("kl_beta"), "{err:#}");
    }

    #[test]
    fn unknown_dataset_lists_the_sections() {
        let err = Config::from_yaml_str(DOC, "f.yaml", "ml-10m", &NONE).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("f.yaml") && msg.contains("ml-100k") && msg.contains("steam"));
        assert!(
            !msg.contains("presets") && !msg.contains("defaults"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_and_mistyped_keys_name_the_key_path() {
        let doc = DOC.replace("\nsteam:\n", "\nsteam:\n  shield:\n    hiddenn: 3\n");
        let err = Config::from_yaml_str(&doc, "f.yaml", "steam", &NONE).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("shield") && msg.contains("hiddenn"), "{msg}");
        let doc = DOC.replace("\nsteam:\n", "\nsteam:\n  kl_beta: lots\n");
        let err = Config::from_yaml_str(&doc, "f.yaml", "steam", &NONE).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("kl_beta") && msg.contains("steam"), "{msg}");
    }

    #[test]
    fn unknown_top_level_sections_are_errors() {
        let doc = format!("{DOC}\nml-100K:\n  kl_beta: 0.5\n");
        let err = Config::from_yaml_str(&doc, "f.yaml", "ml-100k", &NONE).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("f.yaml: unknown top-level section ml-100K")
                && msg.contains("ml-100k, ml-1m"),
            "{msg}"
        );
    }

    #[test]
    fn values_that_cannot_run_name_their_key_and_range() {
        let cfg = Config::from_yaml_str(DOC, "f.yaml", "ml-100k", &NONE).unwrap();
        for (key, value, says) in [
            (
                "ranker.max_len",
                "0",
                "key `ranker.max_len`: must be at least 1, not 0",
            ),
            ("ppo_batch", "0", "key `ppo_batch`: must be at least 1"),
            ("micro_batch_size", "0", "key `micro_batch_size`"),
            ("ranker.heads", "3", "3 does not divide ranker.hidden = 64"),
            ("lr", "0", "key `lr`: 0 is outside (0, ∞)"),
            ("lr", ".nan", "key `lr`: NaN is outside"),
            ("kl_beta", "-0.1", "key `kl_beta`: -0.1 is outside [0, ∞)"),
            ("top_p", "1.5", "key `top_p`: 1.5 is outside (0, 1]"),
            (
                "lora_dropout",
                "1",
                "key `lora_dropout`: 1 is outside [0, 1)",
            ),
            ("shield.tau", "0", "key `shield.tau`: 0 is outside (0, 1]"),
            (
                "sim.beta_q",
                ".inf",
                "key `sim.beta_q`: inf is outside (−∞, ∞)",
            ),
        ] {
            let err = cfg
                .with_sets(&[(key.to_string(), value.to_string())])
                .unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(says), "{key}={value}: {msg}");
            let sets = Overrides {
                sets: vec![(key.into(), value.into())],
                ..Default::default()
            };
            let msg = format!(
                "{:#}",
                Config::from_yaml_str(DOC, "f.yaml", "ml-100k", &sets).unwrap_err()
            );
            assert!(
                msg.contains("f.yaml, dataset `ml-100k`") && msg.contains(says),
                "{msg}"
            );
        }
        for (key, value) in [
            ("kl_beta", "0"),
            ("top_p", "1"),
            ("shield.tau", "1"),
            ("lora_dropout", "0"),
            ("max_steps", "0"),
        ] {
            cfg.with_sets(&[(key.to_string(), value.to_string())])
                .unwrap();
        }
    }

    #[test]
    fn yaml_round_trip() {
        let c = Config::from_yaml_str(DOC, "test", "steam", &NONE).unwrap();
        let again: Config = serde_yaml::from_str(&c.to_yaml()).unwrap();
        assert_eq!(c, again);
    }
}
