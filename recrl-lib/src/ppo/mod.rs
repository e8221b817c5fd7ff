//! Step 5: shielded PPO. The pieces, each tested against hand computations and closed forms:
//!
//! * [`advantage`]: GAE (γ, λ), per-token rewards with the KL penalty, whitening, the clipped
//!   surrogate and the approximate-KL estimator;
//! * [`policy`]: prompt + response scoring in one forward pass (log-probs at the sampling
//!   temperature, hidden states for the [`policy::ValueHead`]) and the clipped PPO loss;
//! * [`update()`]: one PPO update — reference/old log-probs, KL-penalised rewards, GAE,
//!   whitened advantages, clipped objective + value loss, gradient clipping, a hook after each
//!   optimiser step for the shield;
//! * [`coupling`]: the trainable copy of `E` behind the soft tokens, with the shield applied
//!   to every optimiser step (arms shielded / no projection / frozen);
//! * the simulated user it trains against lives in [`crate::sim`];
//! * [`step`]: one PPO step whatever the reward ([`step::Learner::step`]: sample, score,
//!   update), called by the run and by the tests;
//! * [`rollout`]: the run's environment (sampled users, prompts with canaries, simulated
//!   clicks); [`drift`]: ranking drift against step 0; [`log`]: `metrics.jsonl` and
//!   `samples.jsonl`; [`options`]: the run's settings;
//! * [`run`]: the loop ([`run::train`]; [`run::Trainer`] holds the state, one step at a
//!   time), logs, drift every N steps, final checkpoints and resumable snapshots ([`resume`],
//!   [`adamw`]);
//! * [`arms`]: the arm table (shielded, no_proj, frozen, kl0, lora4, τ sweep) and the baselines
//!   without RL ([`arms::BASELINES`]), their [`arms::Places`] ([`arms::places`]), each arm as
//!   one call ([`arms::run_arm`], in [`arms::launch`]) and the notebooks' views
//!   ([`arms::view`]).

pub mod adamw;
pub mod advantage;
pub mod arms;
pub mod coupling;
pub mod drift;
pub mod log;
pub mod options;
pub mod policy;
pub mod resume;
pub mod rollout;
pub mod run;
pub mod step;
pub mod update;

pub use advantage::{approx_kl, clipped_surrogate, gae, token_rewards, whiten};
pub use arms::{run_arm, Arm};
pub use coupling::Coupling;
pub use run::{train, Coupled, Drift, RunOptions, Setup, SimParams, StepLog, Trainer};
pub use step::{Learner, Phases, Prompts, SoftTokens};
pub use update::{update, PpoConfig, Rollouts, UpdateStats};
