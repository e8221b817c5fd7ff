//! The simulated environment that RL trains against and the audit measures with: the
//! simulated user ([`simulator`]: click probability from the ranker's score and the
//! explanation's quality), the grounded quality `q(x)` itself ([`quality`]) and the canaries ([`canary`]: synthetic secrets planted in PPO
//! prompts whose exposure the audit measures). Both [`crate::ppo`] and [`crate::audit`] import
//! this module; it imports only the steps below it (data, ranker, explainer, minilm).

pub mod canary;
pub mod quality;
pub mod simulator;

pub use quality::{Grader, QualityParts, QualityScorer};
pub use simulator::SimUser;
