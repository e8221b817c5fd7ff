//! The settings of a PPO run (docs/design.md §7): how `E` is coupled, and everything a run needs
//! besides the models. Snapshots ([`super::resume`]) record them to check that a resumed run
//! is the same run.

use super::update::PpoConfig;
use crate::explainer::GenerationConfig;
use crate::sim::simulator::SimParams;
use serde::{Deserialize, Serialize};

/// How `E` is coupled to the explainer in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coupled {
    /// `E` trained, every update projected (the method).
    Shielded,
    /// `E` trained without projection (`--no_projection`).
    NoProjection,
    /// `E` frozen (control).
    Frozen,
}

/// Everything a run needs besides the models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOptions {
    /// Arm name (log folder `logs/<ds>/<tag>/`).
    pub tag: String,
    /// How `E` is coupled.
    pub coupled: Coupled,
    /// PPO steps.
    pub max_steps: usize,
    /// Rollouts per step.
    pub ppo_batch: usize,
    /// Validation drift every this many steps (and at the last).
    pub eval_every: usize,
    /// Learning rate of LoRA, `W_p`, the value head and `E`.
    pub lr: f64,
    /// PPO settings.
    pub ppo: PpoConfig,
    /// Sampling settings (temperature should equal `ppo.temperature`).
    pub generation: GenerationConfig,
    /// Simulated user.
    pub sim: SimParams,
    /// Seed of user sampling, the sampler and the simulated users.
    pub seed: u64,
    /// The held-out users: rollouts draw only the split's RL users (docs/design.md §8.5).
    pub split: crate::config::SplitConfig,
    /// History items in each prompt.
    pub history_items: usize,
    /// Prompt + response token budget (`--max_seq_len_explainer`): replies are cut to fit.
    pub max_seq_len: usize,
    /// Characters of an explanation kept for scoring and logs (`--explanation_max_len`).
    pub explanation_max_len: usize,
    /// Synthetic secrets appended to training prompts for the audit's canary exposure
    /// (`--canaries`): canary `j` goes into the first prompt of steps with `step % k == j`.
    #[serde(default)]
    pub canaries: usize,
    /// Save a resumable snapshot every this many steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Continue from the snapshot in `<ckpt_dir>/resume/` when there is one (else an earlier
    /// run of the tag is moved aside).
    #[serde(skip)]
    pub resume: bool,
    /// Move an earlier run of the same tag aside and start afresh (without it, and without a
    /// snapshot to resume, an earlier run is refused: its logs are never emptied).
    #[serde(skip)]
    pub overwrite: bool,
}
