//! The simulated environment that RL trains against and the audit measures with: the
//! simulated user ([`simulator`]: click probability from the ranker's score and the
//! explanation's quality) and the canaries ([`canary`]: synthetic secrets planted in PPO
//! prompts whose exposure the audit measures). Both [`crate::ppo`] and [`crate::audit`] import
//! this module; it imports only the steps below it (data, ranker, explainer).

pub mod canary;
pub mod simulator;

pub use simulator::{QualityScorer, SimUser};
