//! Step 5 (in progress): shielded PPO. The pieces built so far, each tested against hand
//! computations and closed forms:
//!
//! * [`advantage`]: GAE (γ, λ), per-token rewards with the KL penalty, whitening, the clipped
//!   surrogate and the approximate-KL estimator;
//! * [`simulator`]: the simulated user `P(click) = σ(α s + β_q q(x) + b_u)` and the grounded
//!   quality score `q(x)`.
//!
//! The rollout/update loop, `recrl ppo` and notebook 05 are not built yet (issue 6).

pub mod advantage;
pub mod simulator;

pub use advantage::{approx_kl, clipped_surrogate, gae, token_rewards, whiten};
pub use simulator::{QualityScorer, SimUser};
