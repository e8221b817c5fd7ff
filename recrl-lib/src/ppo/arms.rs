//! Step 5 as one call per arm (shared by `recrl ppo` and notebook 05), and the per-arm curves.

use super::log::Sample;
use super::run::{train, Coupled, RunOptions, Setup, StepLog};
use super::update::PpoConfig;
use crate::config::Config;
use crate::data::Dataset;
use crate::display::charts::{self, Series};
use crate::explainer::{init, GenerationConfig};
use crate::paths::Layout;
use crate::ranker::{self, Ranker, TrainOptions};
use crate::record::Provenance;
use crate::shield::{self, Basis, Shield};
use crate::sim::quality::{Grader, PART_NAMES};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tch::Device;

/// One row of [`ARMS`]: a named arm and what it changes against the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmRow {
    /// Name, also the run's tag (`logs/<ds>/<name>/`).
    pub name: &'static str,
    /// How `E` is coupled (`recrl ppo --no_projection`, `--freeze_items`).
    pub coupled: Coupled,
    /// Configuration keys the arm sets, as `--set key=value` would.
    pub sets: &'static [(&'static str, &'static str)],
}

/// The arms of the comparison: `recrl ppo --arm`, notebook 05, `experiments/cpu_runs_ml100k.sh`,
/// and (after `base`, the step-4 checkpoint) the rows `recrl aggregate` expects per dataset.
/// [`Arm::named`] also reads `tau<τ>` (the basis refitted at τ) and the suffixes `_g<G>`
/// (`group_size` G) and `_e<E>` (E PPO epochs of one micro-batch per optimiser step).
pub const ARMS: [ArmRow; 5] = [
    ArmRow {
        name: "shielded",
        coupled: Coupled::Shielded,
        sets: &[],
    },
    ArmRow {
        name: "no_proj",
        coupled: Coupled::NoProjection,
        sets: &[],
    },
    ArmRow {
        name: "frozen",
        coupled: Coupled::Frozen,
        sets: &[],
    },
    ArmRow {
        name: "kl0",
        coupled: Coupled::Shielded,
        sets: &[("kl_beta", "0")],
    },
    ArmRow {
        name: "lora4",
        coupled: Coupled::Shielded,
        sets: &[("lora_rank", "4")],
    },
];

/// An explainer without RL, audited on the same held-out panel as every RL arm (docs/design.md
/// §8.5): the rows of [`BASELINES`]. None of them trains; all read step 4's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Step 4's explainer (LoRA at B = 0, initial `W_p`), sampled like an arm.
    Base,
    /// Step 4's explainer with prompts without soft item tokens.
    BaseNoSoft,
    /// A fixed sentence filled from the metadata (`judge::template`), no model.
    Template,
    /// For each panel reply, the best by the training reward of `audit.best_of` fresh samples of
    /// `base`: G× the samples of an arm at evaluation, none at training.
    BestOfN,
}

/// The baselines by name (their tags), with what each is.
pub const BASELINES: [(Baseline, &str, &str); 4] = [
    (
        Baseline::Base,
        crate::paths::BASE_TAG,
        "step 4's explainer (LoRA at B = 0, initial W_p and E), no RL",
    ),
    (
        Baseline::BaseNoSoft,
        "base_no_soft",
        "step 4's explainer with prompts without soft item tokens, no RL",
    ),
    (
        Baseline::Template,
        "template",
        "a fixed sentence filled from the catalogue (judge::template), no model",
    ),
    (
        Baseline::BestOfN,
        "best_of_n",
        "best of audit.best_of fresh base samples per reply by the training reward (G x an arm's samples at evaluation, none at training)",
    ),
];

impl Baseline {
    /// The baseline whose tag is `tag`, if any.
    pub fn named(tag: &str) -> Option<Baseline> {
        BASELINES.iter().find(|b| b.1 == tag).map(|b| b.0)
    }

    /// Its tag.
    pub fn name(self) -> &'static str {
        BASELINES.iter().find(|b| b.0 == self).map_or("", |b| b.1)
    }

    /// What it is.
    pub fn describe(self) -> &'static str {
        BASELINES.iter().find(|b| b.0 == self).map_or("", |b| b.2)
    }
}

/// One arm of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Run name (`logs/<ds>/<tag>/`).
    pub tag: String,
    /// How `E` is coupled.
    pub coupled: Coupled,
    /// Refit the basis at this τ instead of loading `checkpoints/basis_<ds>` (τ sweep).
    pub tau: Option<f64>,
    /// Configuration keys the arm sets (`("kl_beta", "0")`), applied by [`Arm::configure`].
    pub sets: Vec<(String, String)>,
}

impl Arm {
    /// The arm called `name`: a row of [`ARMS`] or `tau<τ>` (e.g. `tau0.99`, which also sets
    /// `shield.tau`), then optionally `_grpo` or `_ppo` (set `algorithm`; `_ppo` without `_g<G>`
    /// also sets `group_size` 1, the value head), `_g<G>` (sets
    /// `group_size`), `_e<E>` (sets `epochs` to E and `grad_accum` to 1) and `_s<S>` (sets
    /// `seed`), in this order, e.g. `shielded_grpo_g4_s2`. The tag is `name`; [`Arm::base_name`]
    /// is the name without `_s<S>` (the arm that seeds repeat).
    pub fn named(name: &str) -> Result<Arm> {
        let (rest, seed) = numbered_suffix(name, "_s");
        let (rest, epochs) = numbered_suffix(rest, "_e");
        let (rest, group) = numbered_suffix(rest, "_g");
        let (base, algorithm) = algorithm_suffix(rest);
        let mut arm = Arm::base(base)?;
        arm.tag = name.to_string();
        if let Some(a) = algorithm {
            arm.sets.push(("algorithm".into(), a.into()));
        }
        match (group, algorithm) {
            (Some(g), _) => arm.sets.push(("group_size".into(), g.into())),
            // PPO with the value head: one rollout per prompt unless `_g<G>` says otherwise.
            (None, Some("ppo")) => arm.sets.push(("group_size".into(), "1".into())),
            _ => {}
        }
        if let Some(e) = epochs {
            arm.sets.push(("epochs".into(), e.into()));
            arm.sets.push(("grad_accum".into(), "1".into()));
        }
        if let Some(seed) = seed {
            arm.sets.push(("seed".into(), seed.into()));
        }
        Ok(arm)
    }

    /// `tag` without a final `_s<S>`: the arm a seeded run repeats (`shielded_s2` → `shielded`).
    pub fn base_name(tag: &str) -> &str {
        numbered_suffix(tag, "_s").0
    }

    /// `tag` without any of the suffixes [`Arm::named`] reads (`_grpo`/`_ppo`, `_g<G>`,
    /// `_e<E>`, `_s<S>`): the row of [`ARMS`] (or `tau<τ>`) it is a variant of
    /// (`shielded_grpo_g4_s2` → `shielded`).
    pub fn family(tag: &str) -> &str {
        let rest = numbered_suffix(tag, "_s").0;
        let rest = numbered_suffix(rest, "_e").0;
        let rest = numbered_suffix(rest, "_g").0;
        algorithm_suffix(rest).0
    }

    /// A row of [`ARMS`], or `tau<τ>`.
    fn base(name: &str) -> Result<Arm> {
        if let Some(row) = ARMS.iter().find(|r| r.name == name) {
            return Ok(Arm {
                tag: name.to_string(),
                coupled: row.coupled,
                tau: None,
                sets: row
                    .sets
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
        let Some(tau) = name.strip_prefix("tau") else {
            let names: Vec<&str> = ARMS.iter().map(|r| r.name).collect();
            anyhow::bail!(
                "unknown arm {name:?}: {}, tau<τ>, each with optional _grpo or _ppo, _g<G>, _e<E> and _s<seed>",
                names.join(", ")
            );
        };
        let value: f64 = tau
            .parse()
            .map_err(|_| anyhow::anyhow!("arm {name}: expected tau<number>, e.g. tau0.99"))?;
        Ok(Arm {
            tag: name.to_string(),
            coupled: Coupled::Shielded,
            tau: Some(value),
            sets: vec![("shield.tau".into(), tau.into())],
        })
    }

    /// `cfg` with the arm's keys set (e.g. `kl_beta: 0` for `kl0`).
    pub fn configure(&self, cfg: &Config) -> Result<Config> {
        cfg.with_sets(&self.sets)
    }
}

/// `name` split into the part before a final `_grpo` or `_ppo` and that algorithm, if it ends so.
fn algorithm_suffix(name: &str) -> (&str, Option<&'static str>) {
    for algorithm in ["grpo", "ppo"] {
        if let Some(head) = name.strip_suffix(&format!("_{algorithm}")) {
            if !head.is_empty() {
                return (head, Some(algorithm));
            }
        }
    }
    (name, None)
}

/// `name` split into the part before a final `<suffix><digits>` and the digits, if it ends so.
fn numbered_suffix<'a>(name: &'a str, suffix: &str) -> (&'a str, Option<&'a str>) {
    match name.rsplit_once(suffix) {
        Some((head, n))
            if !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (head, Some(n))
        }
        _ => (name, None),
    }
}

/// The tag of a run set up by flags rather than by an arm's name (`recrl ppo` without `--arm`
/// or `--tag`): the coupling's arm in [`ARMS`] (`kl0` instead when `kl_beta` is 0), then
/// `_tau<τ>` when the basis is refitted and `_lora<r>` when the rank is given.
pub fn tag_for(
    coupled: Coupled,
    kl_beta: f64,
    tau: Option<f64>,
    lora_rank: Option<usize>,
) -> String {
    let plain = |row: &&ArmRow| row.coupled == coupled && row.sets.is_empty();
    let kl0 = |row: &&ArmRow| row.sets == [("kl_beta", "0")];
    let row = if kl_beta == 0.0 {
        ARMS.iter().find(kl0)
    } else {
        ARMS.iter().find(plain)
    };
    let mut tag = row
        .expect("ARMS has a plain row per coupling and a kl0 row")
        .name
        .to_string();
    if let Some(tau) = tau {
        tag.push_str(&format!("_tau{tau}"));
    }
    if let Some(r) = lora_rank {
        tag.push_str(&format!("_lora{r}"));
    }
    tag
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
        ppo: PpoConfig {
            epochs: cfg.epochs,
            temperature: cfg.temperature,
            kl_beta: cfg.kl_beta,
            micro_batch_size: cfg.micro_batch_size,
            grad_accum: cfg.grad_accum,
            exec_batch: cfg.exec_batch,
            group_size: cfg.group_size,
            algorithm: cfg.algorithm,
            sim_batch: cfg.sim_batch,
            shared_prompts: cfg.shared_prompts,
            old_logprobs: cfg.old_logprobs,
            ..PpoConfig::default()
        },
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
        print(&super::log::step_line(line));
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
            print(&super::log::step_line(line));
        }
    }
    let mut shown = super::log::read_samples(&dir)?;
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

/// The mean of each part of `q(x)` against the step, one line per arm and part
/// (docs/design.md §7.2).
pub fn quality_curves(arms: &[(String, Vec<StepLog>)]) -> plotly::Plot {
    let series = arms
        .iter()
        .flat_map(|(tag, logs)| {
            let names = std::iter::once("q").chain(PART_NAMES);
            names.enumerate().map(move |(k, name)| {
                let (x, v): (Vec<f64>, Vec<f64>) = logs
                    .iter()
                    .filter(|l| l.step > 0)
                    .map(|l| {
                        let part = match k {
                            0 => l.quality,
                            _ => l.quality_parts.named()[k - 1].1,
                        };
                        (l.step as f64, part)
                    })
                    .unzip();
                Series::new(format!("{tag}: {name}"), x, v)
            })
        })
        .collect();
    charts::lines(
        "q(x) and its parts",
        "PPO step",
        "mean over the step's rollouts",
        series,
        false,
        false,
    )
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
pub type ArmSamples = (String, Vec<Sample>);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, EMBEDDED_YAML};

    fn sets(arm: &Arm) -> Vec<(&str, &str)> {
        arm.sets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn the_table_names_the_five_arms_of_the_comparison() {
        let names: Vec<&str> = ARMS.iter().map(|r| r.name).collect();
        assert_eq!(names, ["shielded", "no_proj", "frozen", "kl0", "lora4"]);
        for row in ARMS {
            let arm = Arm::named(row.name).unwrap();
            assert_eq!(
                (arm.tag.as_str(), arm.coupled, arm.tau),
                (row.name, row.coupled, None)
            );
            assert_eq!(sets(&arm), row.sets);
        }
        assert_eq!(
            Arm::named("no_proj").unwrap().coupled,
            Coupled::NoProjection
        );
        assert_eq!(Arm::named("frozen").unwrap().coupled, Coupled::Frozen);
        assert_eq!(sets(&Arm::named("kl0").unwrap()), [("kl_beta", "0")]);
        assert_eq!(sets(&Arm::named("lora4").unwrap()), [("lora_rank", "4")]);
    }

    #[test]
    fn tau_arms_refit_the_basis_and_suffixes_add_keys() {
        let tau = Arm::named("tau0.99").unwrap();
        assert_eq!((tau.coupled, tau.tau), (Coupled::Shielded, Some(0.99)));
        assert_eq!(sets(&tau), [("shield.tau", "0.99")]);
        let arm = Arm::named("no_proj_g4_e3").unwrap();
        assert_eq!(
            (arm.tag.as_str(), arm.coupled),
            ("no_proj_g4_e3", Coupled::NoProjection)
        );
        assert_eq!(
            sets(&arm),
            [("group_size", "4"), ("epochs", "3"), ("grad_accum", "1")]
        );
        assert_eq!(sets(&Arm::named("kl0_e2").unwrap())[0], ("kl_beta", "0"));
        assert_eq!(
            sets(&Arm::named("shielded_g8").unwrap()),
            [("group_size", "8")]
        );
        let seeded = Arm::named("shielded_grpo_g4_s3").unwrap();
        assert_eq!(
            sets(&seeded),
            [("algorithm", "grpo"), ("group_size", "4"), ("seed", "3")]
        );
        assert_eq!(seeded.coupled, Coupled::Shielded);
        assert_eq!(
            sets(&Arm::named("no_proj_ppo_s2").unwrap()),
            [("algorithm", "ppo"), ("group_size", "1"), ("seed", "2")]
        );
        assert_eq!(
            sets(&Arm::named("shielded_ppo_g4").unwrap()),
            [("algorithm", "ppo"), ("group_size", "4")]
        );
        assert_eq!(Arm::base_name("no_proj_s12"), "no_proj");
        assert_eq!(Arm::base_name("tau0.99"), "tau0.99");
        for (tag, family) in [
            ("shielded_grpo_g4_s2", "shielded"),
            ("no_proj_ppo_s1", "no_proj"),
            ("kl0_e4", "kl0"),
            ("tau0.99_grpo_g4_s3", "tau0.99"),
            ("lora4", "lora4"),
            ("mine_s", "mine_s"),
        ] {
            assert_eq!(Arm::family(tag), family, "{tag}");
        }
        assert_eq!(sets(&Arm::named("frozen_s2").unwrap()), [("seed", "2")]);
        for bad in [
            "nope",
            "tau",
            "taux",
            "shielded_e4_g4",
            "shielded_e",
            "_e4",
            "_grpo",
            "_ppo",
            "shielded_s2_g4",
        ] {
            assert!(Arm::named(bad).is_err(), "{bad}");
        }
        let err = Arm::named("nope").unwrap_err().to_string();
        assert!(
            err.contains("shielded, no_proj, frozen, kl0, lora4"),
            "{err}"
        );
    }

    #[test]
    fn configure_sets_the_arms_keys() {
        let cfg =
            Config::from_yaml_str(EMBEDDED_YAML, "test", "ml-100k", &Overrides::default()).unwrap();
        assert_eq!(
            Arm::named("shielded").unwrap().configure(&cfg).unwrap(),
            cfg
        );
        assert_eq!(
            Arm::named("kl0").unwrap().configure(&cfg).unwrap().kl_beta,
            0.0
        );
        assert_eq!(
            Arm::named("lora4")
                .unwrap()
                .configure(&cfg)
                .unwrap()
                .lora_rank,
            4
        );
        let e = Arm::named("frozen_g2_e4").unwrap().configure(&cfg).unwrap();
        assert_eq!((e.group_size, e.epochs, e.grad_accum), (2, 4, 1));
        assert_eq!(
            Arm::named("tau0.9")
                .unwrap()
                .configure(&cfg)
                .unwrap()
                .shield
                .tau,
            0.9
        );
    }

    #[test]
    fn flag_runs_are_tagged_after_their_arm() {
        assert_eq!(tag_for(Coupled::Shielded, 0.05, None, None), "shielded");
        assert_eq!(tag_for(Coupled::NoProjection, 0.05, None, None), "no_proj");
        assert_eq!(
            tag_for(Coupled::Frozen, 0.05, Some(0.99), None),
            "frozen_tau0.99"
        );
        assert_eq!(
            tag_for(Coupled::NoProjection, 0.0, None, Some(4)),
            "kl0_lora4"
        );
        assert_eq!(
            tag_for(Coupled::Shielded, 0.05, None, Some(4)),
            "shielded_lora4"
        );
    }
}
