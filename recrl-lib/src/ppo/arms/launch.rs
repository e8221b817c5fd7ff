//! Running an arm: [`run_arm`] (shared by `recrl ppo` and notebook 05), and the notebooks'
//! helpers that start runs ([`run_arm_shown`], [`prepare`], [`ensure_checkpoint`]). Only the
//! CLI and the notebooks launch runs (`sweep` through `recrl` commands); `audit` and `report`
//! don't.

use super::places::{dirs, run_options, Places, Schedule};
use super::{Arm, Baseline};
use crate::config::Config;
use crate::data::Dataset;
use crate::explainer::init;
use crate::paths::Layout;
use crate::ppo::log::Sample;
use crate::ppo::run::{train, Coupled, Setup, StepLog};
use crate::ranker::{self, Ranker, TrainOptions};
use crate::record::Provenance;
use crate::shield::{self, Basis, Shield};
use crate::sim::quality::Grader;
use anyhow::Result;
use std::path::Path;
use tch::Device;

/// Runs one arm (from a fresh start, or from its snapshot with `schedule.resume`): the ranker
/// from `places.ranker_dir` (reloaded, since a run writes its `E` into the ranker), the
/// shield's basis from `places.basis_dir` (or refitted at the arm's τ), the configured
/// explainer with the step-4 LoRA and `W_p` ([`init::start_for_ppo`]; the step-0 log line
/// says which). Outputs under `places.out`.
pub fn run_arm(
    places: &Places,
    ds: &Dataset,
    cfg: &Config,
    arm: &Arm,
    schedule: &Schedule,
    on_step: impl FnMut(&StepLog, &[(String, String)]),
) -> Result<Vec<StepLog>> {
    crate::paths::check_run_tag(&arm.tag)?;
    let device = places.device;
    let ranker = Ranker::load(&places.ranker_dir, ds, device)?;
    let guard = match (arm.coupled, arm.tau) {
        (Coupled::Shielded, Some(tau)) => Some(Shield {
            basis: Basis::fit(
                &shield::probe_states(&ranker, ds, cfg.shield.probe_users, cfg.seed),
                tau,
            )?,
        }),
        (Coupled::Shielded, None) => Some(Shield {
            basis: Basis::load(&places.basis_dir, ds.name.as_str(), &ranker)?.0,
        }),
        _ => None,
    };
    crate::env::seed_everything(cfg.seed);
    let (mut ex, start) = init::start_for_ppo(
        places.models.root(),
        &places.out.lora_init_dir(ds.name.as_str()),
        cfg,
        ranker.output_table(),
        device,
    )?;
    let grader = Grader::load(&places.models, &mut ex, &cfg.reward)?;
    let mut inputs = places.inputs(ds, cfg);
    inputs.push(places.out.lora_init_dir(ds.name.as_str()));
    if arm.coupled == Coupled::Shielded && arm.tau.is_none() {
        let (w, j) = crate::paths::basis_files_in(&places.basis_dir, ds.name.as_str());
        inputs.extend([w, j]);
    }
    let record = serde_json::json!({
        "config": cfg,
        "arm": { "coupled": arm.coupled, "tau": arm.tau, "sets": arm.sets },
        "shield": guard.as_ref().map(|g| serde_json::json!({
            "tau": g.basis.tau,
            "k": g.basis.k(),
            "d": g.basis.d(),
            "probe_users": g.basis.probes,
            "basis": if arm.tau.is_some() { "refitted at the arm's τ" } else { "checkpoints/basis_<ds> (step 3)" },
        })),
        "provenance": Provenance::of(places.models.root(), &inputs)?,
    });
    let setup = Setup {
        ds,
        ranker: &ranker,
        shield: guard,
        grader,
        record,
        start,
        opts: &run_options(cfg, arm, schedule),
        log_dir: places.out.run_logs(ds.name.as_str(), &arm.tag),
        ckpt_dir: places.out.ppo_dir(ds.name.as_str(), &arm.tag),
    };
    train(setup, &mut ex, on_step)
}

/// For notebooks: [`run_arm`], with every step's line given to `print` (the steps of a run
/// read back by [`Schedule::reuse`] too, after a line that says so); returns the log and the
/// first sample explanation of each step (from `samples.jsonl`).
pub fn run_arm_shown(
    places: &Places,
    ds: &Dataset,
    cfg: &Config,
    arm: &Arm,
    schedule: &Schedule,
    mut print: impl FnMut(&str),
) -> Result<(Vec<StepLog>, Vec<Sample>)> {
    let mut live = 0;
    let logs = run_arm(places, ds, cfg, arm, schedule, |line, _| {
        live += 1;
        print(&crate::ppo::log::step_line(line));
    })?;
    let dir = places.out.run_logs(ds.name.as_str(), &arm.tag);
    let earlier = logs.len().saturating_sub(live);
    if earlier > 0 {
        print(&format!(
            "steps 0–{} read back from {} (a run with these settings)",
            logs[earlier - 1].step,
            dir.display()
        ));
        for line in &logs[..earlier] {
            print(&crate::ppo::log::step_line(line));
        }
    }
    let mut shown = crate::ppo::log::read_samples(&dir)?;
    shown.dedup_by_key(|s| s.0);
    Ok((logs, shown))
}

/// For notebooks: the [`Places`] later steps use, with outputs under `out_root` and models
/// under `models_root`. The ranker comes from [`ranker::for_later_steps`] (with its `fallback`
/// folder); the basis from `<out_root>/checkpoints`, refitted there when missing or fitted on
/// other ranker weights.
pub fn prepare(
    out_root: &Path,
    models_root: &Path,
    ds: &Dataset,
    cfg: &Config,
    fallback: Option<&Path>,
    device: Device,
) -> Result<Places> {
    let opts = TrainOptions {
        config: cfg.ranker.clone(),
        seed: cfg.seed,
        device,
        bf16: false,
        log_path: None,
    };
    let (rk, ranker_dir) = ranker::for_later_steps(out_root, ds, &opts, fallback)?;
    let basis_dir = Layout::new(out_root).checkpoints();
    if Basis::load(&basis_dir, ds.name.as_str(), &rk).is_err() {
        let _ = shield::report::fit_and_save(out_root, ds, &rk, &cfg.shield, cfg.seed)?;
    }
    Ok(Places {
        out: Layout::new(out_root),
        models: Layout::new(models_root),
        ranker_dir,
        basis_dir,
        device,
    })
}

/// Makes the checkpoint of `tag` under `places.out` when it is missing: the step-4
/// initialisation for a baseline, else a PPO run of the arm with `cfg`'s steps (for smoke
/// runs, whose steps may run in any order). Returns whether it had to.
pub fn ensure_checkpoint(places: &Places, ds: &Dataset, cfg: &Config, tag: &str) -> Result<bool> {
    let device = places.device;
    let (_, ckpt) = dirs(places.out.root(), ds.name.as_str(), tag)?;
    if ckpt.join(crate::paths::files::EXPLAINER).is_file() {
        return Ok(false);
    }
    if Baseline::named(tag).is_some() {
        let ranker = Ranker::load(&places.ranker_dir, ds, device)?;
        crate::env::seed_everything(cfg.seed);
        let mut ex = init::load_configured(places.models.root(), cfg, device)?;
        init::init_and_save(&mut ex, cfg, &ranker, &ckpt)?;
    } else {
        let arm = Arm::named(tag)?;
        let schedule = Schedule::every(cfg.max_steps);
        run_arm(places, ds, cfg, &arm, &schedule, |_, _| {})?;
    }
    Ok(true)
}
