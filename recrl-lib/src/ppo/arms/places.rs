//! Where an arm's steps read and write ([`Places`], [`dirs`]) and the run settings of a
//! configuration ([`run_options`], [`Schedule`]). Nothing here launches a run: `audit` and
//! `report` read these.

use super::{Arm, Baseline};
use crate::config::Config;
use crate::data::Dataset;
use crate::explainer::GenerationConfig;
use crate::paths::Layout;
use crate::ppo::run::RunOptions;
use crate::ppo::update::PpoConfig;
use anyhow::Result;
use std::path::{Path, PathBuf};
use tch::Device;

/// The checkpoint a tag reads: `checkpoints/lora_init_<ds>` for a baseline
/// ([`Baseline`]: `base`, `base_no_soft`, `template`, `best_of_n`), else the
/// PPO arm's `checkpoints/ppo_<ds>_<tag>`; and its log folder `logs/<ds>/<tag>`. A tag that
/// would leave those folders is refused ([`crate::paths::check_tag`]).
pub fn dirs(root: &Path, dataset: &str, tag: &str) -> Result<(PathBuf, PathBuf)> {
    crate::paths::check_tag(tag)?;
    let layout = Layout::new(root);
    let ckpt = if Baseline::named(tag).is_some() {
        layout.lora_init_dir(dataset)
    } else {
        layout.ppo_dir(dataset, tag)
    };
    Ok((layout.run_logs(dataset, tag), ckpt))
}

/// When a run measures drift and saves snapshots, and whether it resumes from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Validation drift every this many steps (and at the last).
    pub eval_every: usize,
    /// A resumable snapshot every this many steps (and at the last).
    pub checkpoint_every: usize,
    /// Continue from the arm's snapshot when there is one.
    pub resume: bool,
    /// Move an earlier run of the arm's tag aside instead of refusing to start.
    pub overwrite: bool,
}

impl Schedule {
    /// Drift every `eval_every` steps, a snapshot every 10, no resuming; an earlier run of
    /// the tag is moved aside (a notebook cell that runs again replaces its own run).
    pub fn every(eval_every: usize) -> Schedule {
        Schedule {
            eval_every,
            checkpoint_every: 10,
            resume: false,
            overwrite: true,
        }
    }
}

impl Schedule {
    /// Like [`Schedule::every`], but a run of the tag with the same options is continued from
    /// its last snapshot (a finished one is read back, not re-run; a larger `max_steps`
    /// extends it), and one with other options is moved aside: what a notebook run a second
    /// time wants.
    pub fn reuse(eval_every: usize) -> Schedule {
        Schedule {
            resume: true,
            ..Schedule::every(eval_every)
        }
    }
}

/// The run settings of the configuration (`epochs`, `ppo_batch`, `lr`, `kl_beta`, …).
pub fn run_options(cfg: &Config, arm: &Arm, schedule: &Schedule) -> RunOptions {
    RunOptions {
        tag: arm.tag.clone(),
        coupled: arm.coupled,
        max_steps: cfg.max_steps,
        ppo_batch: cfg.ppo_batch,
        eval_every: schedule.eval_every,
        lr: cfg.lr,
        ppo: PpoConfig::of(cfg),
        // The seed is each step's (`ppo::run`).
        generation: GenerationConfig {
            seed: 0,
            ..GenerationConfig::sampling(cfg)
        },
        sim: cfg.sim.clone(),
        seed: cfg.seed,
        split: cfg.split.clone(),
        history_items: 5,
        max_seq_len: cfg.max_seq_len_explainer,
        explanation_max_len: cfg.explanation_max_len,
        canaries: cfg.canaries,
        checkpoint_every: schedule.checkpoint_every,
        resume: schedule.resume,
        overwrite: schedule.overwrite,
    }
}

/// Where the steps of an arm read and write, and on which device: outputs (logs,
/// checkpoints) under `out`, the configured explainer and the audit's word lists under
/// `models`, the ranker and the shield's basis from their checkpoint folders.
#[derive(Debug, Clone)]
pub struct Places {
    /// Where outputs go.
    pub out: Layout,
    /// Where the configured models (and `data/lexicons`) are.
    pub models: Layout,
    /// The ranker's checkpoint folder.
    pub ranker_dir: PathBuf,
    /// The shield basis' checkpoint folder.
    pub basis_dir: PathBuf,
    /// The device every model computes on.
    pub device: Device,
}

impl Places {
    /// The inputs every run and audit of `ds` reads, for its record
    /// ([`crate::record::Provenance`]): the processed dataset, the ranker's checkpoint, the
    /// configured explainer model and the MiniLM encoder of `q(x)`.
    pub fn inputs(&self, ds: &Dataset, cfg: &Config) -> Vec<PathBuf> {
        let (w, j) = crate::paths::ranker_files_in(&self.ranker_dir, ds.name.as_str());
        vec![
            self.models.proc_dir(ds.name.as_str()),
            w,
            j,
            self.models.root().join(&cfg.explainer_model),
            crate::minilm::default_dir(self.models.root()),
        ]
    }

    /// Everything under one project root: models there, the ranker and basis from its
    /// `checkpoints/`.
    pub fn project(root: &Path, device: Device) -> Places {
        let layout = Layout::new(root);
        Places {
            ranker_dir: layout.checkpoints(),
            basis_dir: layout.checkpoints(),
            out: layout.clone(),
            models: layout,
            device,
        }
    }
}
