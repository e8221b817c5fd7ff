//! Step 5 as one call per arm (shared by `recrl ppo` and notebook 05), and the per-arm curves.

use super::run::{run, Coupled, RunOptions, SimParams, StepLog};
use super::update::PpoConfig;
use crate::config::Config;
use crate::data::Dataset;
use crate::display::charts::{self, Series};
use crate::explainer::{init, GenerationConfig};
use crate::ranker::{self, Ranker, TrainOptions};
use crate::shield::{self, Basis, Shield};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tch::Device;

/// One arm of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Run name (`logs/<ds>/<tag>/`).
    pub tag: String,
    /// How `E` is coupled.
    pub coupled: Coupled,
    /// Refit the basis at this τ instead of loading `checkpoints/basis_<ds>` (τ sweep).
    pub tau: Option<f64>,
}

impl Arm {
    /// The named arms: `shielded`, `no_proj`, `frozen`, `kl0` (set `kl_beta: 0` too),
    /// `lora4` (set `lora_rank: 4` too), `tau<τ>` (e.g. `tau0.99`).
    pub fn named(name: &str) -> Result<Arm> {
        let arm = |c| Arm {
            tag: name.to_string(),
            coupled: c,
            tau: None,
        };
        Ok(match name {
            "shielded" | "kl0" | "lora4" => arm(Coupled::Shielded),
            "no_proj" => arm(Coupled::NoProjection),
            "frozen" => arm(Coupled::Frozen),
            t if t.starts_with("tau") => {
                Arm {
                    tau: Some(t[3..].parse().map_err(|_| {
                        anyhow::anyhow!("arm {t}: expected tau<number>, e.g. tau0.99")
                    })?),
                    ..arm(Coupled::Shielded)
                }
            }
            other => anyhow::bail!(
                "unknown arm {other:?}: shielded, no_proj, frozen, kl0, lora4, tau<τ>"
            ),
        })
    }
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
}

impl Schedule {
    /// Drift every `eval_every` steps, a snapshot every 10, no resuming.
    pub fn every(eval_every: usize) -> Schedule {
        Schedule {
            eval_every,
            checkpoint_every: 10,
            resume: false,
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
        ppo: PpoConfig {
            epochs: cfg.epochs,
            temperature: cfg.temperature,
            kl_beta: cfg.kl_beta,
            micro_batch_size: cfg.micro_batch_size,
            grad_accum: cfg.grad_accum,
            group_size: cfg.group_size,
            ..PpoConfig::default()
        },
        generation: GenerationConfig {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            ..GenerationConfig::default()
        },
        sim: SimParams::default(),
        seed: cfg.seed,
        history_items: 5,
        max_seq_len: cfg.max_seq_len_explainer,
        explanation_max_len: cfg.explanation_max_len,
        canaries: cfg.canaries,
        checkpoint_every: schedule.checkpoint_every,
        resume: schedule.resume,
    }
}

/// Where an arm's outputs go: `(logs/<ds>/<tag>, checkpoints/ppo_<ds>_<tag>)` under `root`.
pub fn arm_dirs(root: &Path, dataset: &str, tag: &str) -> (PathBuf, PathBuf) {
    let layout = crate::paths::Layout::new(root);
    (layout.run_logs(dataset, tag), layout.ppo_dir(dataset, tag))
}

/// Runs one arm (from a fresh start, or from its snapshot with `schedule.resume`): the ranker from `ranker_dir` (reloaded, since a run writes
/// its `E` into the ranker), the shield's basis from `basis_dir` (or refitted at the arm's τ),
/// the configured explainer with new LoRA and `W_p`. Outputs under `out_root`.
#[allow(clippy::too_many_arguments)]
pub fn run_arm(
    out_root: &Path,
    model_root: &Path,
    ranker_dir: &Path,
    basis_dir: &Path,
    ds: &Dataset,
    cfg: &Config,
    arm: &Arm,
    schedule: &Schedule,
    device: Device,
    on_step: impl FnMut(&StepLog, &[(String, String)]),
) -> Result<Vec<StepLog>> {
    let ranker = Ranker::load(ranker_dir, ds, device)?;
    let guard = match (arm.coupled, arm.tau) {
        (Coupled::Shielded, Some(tau)) => Some(Shield {
            basis: Basis::fit(
                &shield::probe_states(&ranker, ds, cfg.shield.probe_users, cfg.seed),
                tau,
            )?,
        }),
        (Coupled::Shielded, None) => Some(Shield {
            basis: Basis::load(basis_dir, ds.name.as_str(), &ranker)?.0,
        }),
        _ => None,
    };
    crate::env::seed_everything(cfg.seed);
    let mut ex = init::load_configured(model_root, cfg, device)?;
    ex.init_lora(&init::lora_config(cfg))?;
    ex.init_projector(ranker.output_table());
    let (log_dir, ckpt_dir) = arm_dirs(out_root, ds.name.as_str(), &arm.tag);
    run(
        ds,
        &ranker,
        &mut ex,
        guard,
        &run_options(cfg, arm, schedule),
        log_dir,
        ckpt_dir,
        on_step,
    )
}

/// For notebooks: the ranker checkpoint folder later steps use (see
/// [`ranker::for_later_steps`]) and the basis folder, `<out_root>/checkpoints`, where the basis
/// is refitted when missing or fitted on other ranker weights.
pub fn prepare(
    root: &Path,
    out_root: &Path,
    ds: &Dataset,
    cfg: &Config,
    smoke: bool,
    device: Device,
) -> Result<(PathBuf, PathBuf)> {
    let opts = TrainOptions {
        config: cfg.ranker.clone(),
        seed: cfg.seed,
        device,
        bf16: false,
        log_path: None,
    };
    let (rk, ranker_dir) = ranker::for_later_steps(root, out_root, ds, &opts, smoke)?;
    let basis_dir = out_root.join("checkpoints");
    if Basis::load(&basis_dir, ds.name.as_str(), &rk).is_err() {
        let _ = shield::report::fit_and_save(out_root, ds, &rk, &cfg.shield, cfg.seed)?;
    }
    Ok((ranker_dir, basis_dir))
}

/// One metric per arm against the step (`metric` picks it from a log line; `None` skips it).
pub fn curves(
    title: &str,
    y: &str,
    arms: &[(String, Vec<StepLog>)],
    metric: impl Fn(&StepLog) -> Option<f64>,
) -> plotly::Plot {
    let series = arms
        .iter()
        .map(|(tag, logs)| {
            let (x, v): (Vec<f64>, Vec<f64>) = logs
                .iter()
                .filter_map(|l| metric(l).map(|m| (l.step as f64, m)))
                .unzip();
            Series::new(tag.clone(), x, v)
        })
        .collect();
    charts::lines(title, "PPO step", y, series, false, false)
}

/// Per arm: steps, CTR at the first and last step, final KL, validation NDCG@10 at step 0 and
/// at the last evaluation (full ranking) with its change, top-10 overlap and max |δs|.
pub fn summary_table(arms: &[(String, Vec<StepLog>)]) -> crate::display::Table {
    let rows = arms
        .iter()
        .map(|(tag, logs)| {
            let steps: Vec<&StepLog> = logs.iter().filter(|l| l.step > 0).collect();
            let first = steps.first().map_or(f64::NAN, |l| l.ctr);
            let last = steps.last().map_or(f64::NAN, |l| l.ctr);
            let kl = steps.last().map_or(f64::NAN, |l| l.stats.kl);
            let d0 = logs.first().and_then(|l| l.drift.as_ref());
            let dn = logs.iter().rev().find_map(|l| l.drift.as_ref());
            let f =
                |v: Option<f64>, p: usize| v.map_or("missing".to_string(), |x| format!("{x:.p$}"));
            vec![
                tag.clone(),
                steps.len().to_string(),
                format!("{first:.4} → {last:.4}"),
                format!("{kl:.3}"),
                format!(
                    "{} → {}",
                    f(d0.map(|d| d.ndcg10), 4),
                    f(dn.map(|d| d.ndcg10), 4)
                ),
                f(dn.map(|d| d.d_ndcg10), 5),
                f(dn.map(|d| d.top10_overlap), 3),
                dn.map_or("missing".into(), |d| format!("{:.2e}", d.max_abs_ds)),
            ]
        })
        .collect();
    crate::display::Table::new(
        &[
            "arm",
            "steps",
            "CTR first → last step",
            "KL (last)",
            "valid NDCG@10 full (0 → last)",
            "ΔNDCG@10",
            "top-10 overlap",
            "max |δs|",
        ],
        rows,
    )
}

/// An arm's sample explanations: `(arm, [(step, item title, explanation)])`.
pub type ArmSamples = (String, Vec<(usize, String, String)>);

/// The first and last sample explanation of each arm.
pub fn samples_table(samples: &[ArmSamples]) -> crate::display::Table {
    let mut rows = Vec::new();
    for (tag, shown) in samples {
        for (step, item, text) in [shown.first(), shown.last()].into_iter().flatten() {
            rows.push(vec![
                tag.clone(),
                step.to_string(),
                item.clone(),
                text.replace('\n', " "),
            ]);
        }
    }
    crate::display::Table::new(&["arm", "step", "item", "explanation"], rows)
}
