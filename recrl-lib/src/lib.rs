//! # recrl-lib: Shielded RecRL in Rust
//!
//! A sequential recommender (SASRec) gets chat-style explanations from a small
//! Llama-architecture LLM with LoRA, trained with PPO against a simulated user, while a
//! gradient shield keeps RL from moving the ranker's scores. The design of record is
//! `docs/design.md`; this crate implements it one module per pipeline step:
//!
//! | step | module | notebook |
//! |---|---|---|
//! | 0 environment | [`mod@env`] | `00_environment.ipynb` |
//! | 1 data | [`data`] | `01_data.ipynb` |
//! | 2 ranker | [`ranker`] | `02_ranker.ipynb` |
//! | 3 shield | [`shield`] | `03_shield.ipynb` |
//! | 4 explainer | [`explainer`] | `04_explainer.ipynb` |
//! | 5 shielded PPO | [`ppo`] | `05_ppo.ipynb` |
//! | 6 audit | [`audit`] | `06_audit.ipynb` |
//! | 7 results | [`report`] | `07_results.ipynb` |
//!
//! Beside the steps: [`sim`] (the simulated user and the canaries, shared by steps 5 and 6),
//! and at the bottom the foundation every step may use: [`config`] (the typed
//! `experiments/recrl_default.yaml`), [`assets`] (registry-fetched data and models, verified by
//! sha256), [`rng`] (seeded sampling), [`paths`] (the project root and [`paths::Layout`], every
//! path a step reads or writes), [`display`] (tables, charts, figure files and rich display in
//! the evcxr Jupyter kernel), [`io`] (atomic writes) and [`tensorboard`] (event files). Modules import only the layers below
//! them: `ARCHITECTURE.md` draws the layers and `tests/architecture.rs` checks the rule.
//!
//! ```no_run
//! let cfg = recrl_lib::config::Config::load_default("ml-100k")?;
//! let report = recrl_lib::env::EnvReport::collect();
//! println!("{report}\nseed {}", cfg.seed);
//! # anyhow::Ok(())
//! ```

pub mod assets;
pub mod audit;
pub mod config;
pub mod data;
pub mod display;
pub mod env;
pub mod explainer;
pub mod io;
pub mod judge;
pub mod minilm;
pub mod paths;
pub mod ppo;
pub mod ranker;
pub mod record;
pub mod report;
pub mod rng;
pub mod shield;
pub mod sim;
pub mod stats;
pub mod sweep;
pub mod tensorboard;

/// Re-exported so notebooks and dependents build plots and tensors with the same versions.
pub use plotly;
pub use tch;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
