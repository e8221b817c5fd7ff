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
//! * the simulated user it trains against lives in [`crate::sim`].
//!
//! * [`run()`]: the rollout loop (ranker top item, soft tokens, simulated clicks), logs, drift
//!   every N steps, final checkpoints and resumable snapshots ([`resume`], [`adamw`]);
//! * [`arms`]: the named arms (shielded, no_proj, frozen, kl0, lora4, τ sweep) as one call each.

pub mod adamw;
pub mod advantage;
pub mod arms;
pub mod coupling;
pub mod policy;
pub mod resume;
pub mod run;
pub mod update;

pub use advantage::{approx_kl, clipped_surrogate, gae, token_rewards, whiten};
pub use arms::{run_arm, Arm};
pub use coupling::Coupling;
pub use run::{run, Coupled, Drift, RunOptions, SimParams, StepLog};
pub use update::{update, PpoConfig, UpdateStats};
