//! The shielded PPO loop (docs/design.md §7): sample users, explain the ranker's top item with soft
//! tokens, score the explanations with the simulated user, update LoRA, `W_p`, the value head
//! and `E` (shielded or not), and log every step; ranking drift is measured every N steps.
//!
//! [`Trainer`] holds a run's state and takes one [`Trainer::step`] at a time; [`train`] is
//! the loop around it, with the logs, snapshots and final checkpoints.

use super::adamw::AdamW;
use super::coupling::Coupling;
use super::drift::Baseline;
pub use super::drift::Drift;
use super::log::Logs;
pub use super::log::{step_line, StepLog};
pub use super::options::{Coupled, RunOptions};
use super::policy::ValueHead;
use super::resume::{self, Snapshot};
use super::rollout::Env;
use super::step::{Learner, SoftTokens};
use crate::data::Dataset;
use crate::explainer::{Explainer, GenerationConfig, PromptBatch};
use crate::paths::Layout;
use crate::ranker::Ranker;
use crate::shield::Shield;
use crate::sim::quality::{Grader, QualityParts};
pub use crate::sim::simulator::SimParams;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Tensor;

/// What a run trains on and where its outputs go.
pub struct Setup<'a> {
    /// The dataset.
    pub ds: &'a Dataset,
    /// The ranker whose `E` the soft tokens read (the run writes the current `E` into it).
    pub ranker: &'a Ranker,
    /// The shield, used when `opts.coupled` is [`Coupled::Shielded`].
    pub shield: Option<Shield>,
    /// The grader of `q(x)` ([`Grader::load`]).
    pub grader: Grader,
    /// What the run depends on, merged into `run.json`: the resolved configuration, the arm,
    /// the shield's τ and k, and the [`crate::record::Provenance`] (an object; `null` for none).
    pub record: serde_json::Value,
    /// Where LoRA and `W_p` started (the step-0 log line and `run.json` say it).
    pub start: String,
    /// The run's settings.
    pub opts: &'a RunOptions,
    /// Logs: `metrics.jsonl`, `samples.jsonl`, `members.json`, `run.json`, `canaries.json`.
    pub log_dir: PathBuf,
    /// Final checkpoints, and snapshots in `resume/`.
    pub ckpt_dir: PathBuf,
}

/// The state of a run between steps.
pub struct Trainer<'a> {
    ranker: &'a Ranker,
    ex: &'a mut Explainer,
    opts: &'a RunOptions,
    log_dir: PathBuf,
    ckpt_dir: PathBuf,
    learner: Learner<AdamW>,
    coupling: Coupling,
    env: Env<'a>,
    base: Baseline,
    start: String,
    record: serde_json::Value,
}

impl<'a> Trainer<'a> {
    /// Sets a run up: the value head, the trainable copy of `E` and the optimiser join `ex`'s
    /// trainable variables; the simulated users and the drift baseline are taken from the
    /// ranker as it is now. Creates `setup.log_dir`.
    pub fn new(setup: Setup<'a>, ex: &'a mut Explainer) -> Result<Trainer<'a>> {
        let Setup {
            ds,
            ranker,
            shield,
            grader,
            record,
            start,
            opts,
            log_dir,
            ckpt_dir,
        } = setup;
        let group = opts.ppo.group_size.max(1);
        anyhow::ensure!(
            opts.ppo_batch >= group && opts.ppo_batch.is_multiple_of(group),
            "ppo_batch = {} is not a multiple of group_size = {group} (each user prompt is sampled group_size times)",
            opts.ppo_batch
        );
        anyhow::ensure!(
            opts.ppo.algorithm == crate::config::Algorithm::Ppo || group >= 2,
            "algorithm grpo needs group_size ≥ 2 (each prompt sampled several times), not {group}; --algorithm ppo --group_size 1 (or an arm name ending in _ppo) uses the value head"
        );
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        // temporaries a killed run of this tag left in its checkpoint folders
        let parent = ckpt_dir.parent().map(Path::to_path_buf);
        for dir in [ckpt_dir.clone(), Layout::resume_dir(&ckpt_dir)]
            .into_iter()
            .chain(parent)
        {
            crate::io::recover(&dir)?;
        }
        let value = ValueHead::new(&ex.trainable.root(), ex.model.config.hidden_size as i64);
        let shield = (opts.coupled == Coupled::Shielded)
            .then_some(shield)
            .flatten();
        let frozen = opts.coupled == Coupled::Frozen;
        let coupling = Coupling::new(&ex.trainable.root(), ranker, shield, frozen);
        let opt = AdamW::new(&ex.trainable, opts.lr, 0.0);
        let soft = SoftTokens::new(&coupling, ex)?;
        let env = Env::new(ds, ranker, opts, &coupling.e, grader);
        let base = Baseline::new(ds, ranker, opts.seed)?;
        let learner = Learner {
            value,
            opt,
            soft: Some(soft),
            ppo: opts.ppo.clone(),
        };
        Ok(Trainer {
            ranker,
            ex,
            opts,
            log_dir,
            ckpt_dir,
            learner,
            coupling,
            env,
            base,
            start,
            record,
        })
    }

    /// With `opts.resume`, restores the snapshot in `<ckpt_dir>/resume/` when there is one:
    /// trainable variables, optimiser, user sampler, members and canaries. With
    /// `opts.overwrite` as well, a snapshot made with other options is not an error: the run
    /// starts afresh and `make_room` moves the earlier one aside.
    pub fn resume(&mut self) -> Result<Option<Snapshot>> {
        if !self.opts.resume {
            return Ok(None);
        }
        let dir = Layout::resume_dir(&self.ckpt_dir);
        if self.opts.overwrite && resume::made_with_other_options(&dir, self.opts)? {
            // --resume --overwrite: continue a run of these options, else start afresh
            self.start = format!("{}; the snapshot was made with other options", self.start);
            return Ok(None);
        }
        let Learner { opt, soft, .. } = &mut self.learner;
        let mut fixed: Vec<(&str, &mut Tensor)> = soft
            .iter_mut()
            .map(|s| (resume::REFERENCE_W_P, s.reference_projector_mut()))
            .collect();
        let snap = resume::load(&dir, self.opts, &self.ex.trainable, &mut fixed, opt)?;
        if let Some(snap) = &snap {
            self.env.rng = crate::rng::Rng::new(snap.rng);
            self.env.members = snap.members.clone();
            self.env.canaries = snap.canaries.clone();
            self.coupling.restart_from_current();
            self.coupling.sync_into(self.ranker);
        }
        Ok(snap)
    }

    /// The log line of step 0: drift only (zero, measured before training).
    pub fn zero(&self) -> Result<StepLog> {
        Ok(StepLog {
            drift: Some(self.base.measure(self.ranker)?),
            note: Some(self.start.clone()),
            ..Default::default()
        })
    }

    /// PPO step `step` (1-based): samples users, explains the ranker's top item to each,
    /// scores the replies with the simulated users, updates, and measures drift when due.
    /// Returns the log line and the sample explanations (item title, text) to log.
    pub fn step(&mut self, step: usize) -> Result<(StepLog, Vec<(String, String)>)> {
        let t0 = Instant::now();
        // torch's generator (LoRA dropout) restarts from the step, so a resumed run draws the same.
        tch::manual_seed((self.opts.seed ^ (step as u64).wrapping_mul(0x9e37_79b9)) as i64);
        let round = self.env.round(self.ex, step)?;
        let gen = generation(self.opts, step, &round.prompts.batch)?;
        let (mut qs, mut removed) = (Vec::new(), Vec::new());
        let (env, coupling) = (&self.env, &mut self.coupling);
        let out = self.learner.step(
            self.ex,
            &round.prompts,
            &gen,
            |ex, gens| {
                let (rewards, parts) = env.clicks(ex, &round.requests, gens)?;
                qs = parts;
                Ok(rewards)
            },
            &mut || {
                coupling.after_step();
                removed.push(coupling.removed.shallow_clone());
            },
        )?;
        self.coupling.sync_into(self.ranker);
        let n = out.rewards.len() as f64;
        let mut line = StepLog {
            step,
            ctr: out.rewards.iter().sum::<f64>() / n,
            quality: qs.iter().map(QualityParts::q).sum::<f64>() / n,
            quality_parts: QualityParts::mean(&qs),
            shield_removed: mean_of(&removed),
            stats: out.stats,
            phases: out.phases,
            seconds: 0.0,
            drift: None,
            note: None,
        };
        if step.is_multiple_of(self.opts.eval_every.max(1)) || step == self.opts.max_steps {
            line.drift = Some(self.base.measure(self.ranker)?);
        }
        line.seconds = t0.elapsed().as_secs_f64();
        Ok((line, self.env.shown(&round.requests, &out.gens)))
    }

    /// Whether a snapshot is due after `step`: every `checkpoint_every` steps and at the last.
    pub fn snapshot_due(&self, step: usize) -> bool {
        let every = self.opts.checkpoint_every;
        step == self.opts.max_steps || (every > 0 && step.is_multiple_of(every))
    }

    /// Before a fresh start: an earlier run of the same tag (a `metrics.jsonl` in `log_dir`, or
    /// a non-empty `ckpt_dir`) is refused, unless `opts.overwrite` or `opts.resume` (which found
    /// no snapshot) say to move it aside ([`crate::paths::aside`]); the step-0 note says where.
    fn make_room(&mut self) -> Result<()> {
        let had_logs = self.log_dir.join(crate::paths::files::METRICS).is_file();
        let had_ckpt = std::fs::read_dir(&self.ckpt_dir).is_ok_and(|mut d| d.next().is_some());
        if !had_logs && !had_ckpt {
            return Ok(());
        }
        anyhow::ensure!(
            self.opts.overwrite || self.opts.resume,
            "run {:?} already exists ({}{}): --resume continues it from its last snapshot, --overwrite moves it aside and starts afresh, or choose another --tag",
            self.opts.tag,
            self.log_dir.display(),
            if had_ckpt { format!(", {}", self.ckpt_dir.display()) } else { String::new() },
        );
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut moved = Vec::new();
        for dir in [&self.log_dir, &self.ckpt_dir]
            .into_iter()
            .filter(|d| d.exists())
        {
            let to = crate::paths::aside(dir, stamp);
            std::fs::create_dir_all(to.parent().expect("aside has a parent"))?;
            std::fs::rename(dir, &to).with_context(|| {
                format!(
                    "moving the earlier run {} aside to {}",
                    dir.display(),
                    to.display()
                )
            })?;
            moved.push(to.display().to_string());
        }
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("creating {}", self.log_dir.display()))?;
        let why = if self.opts.overwrite {
            "--overwrite"
        } else {
            "no snapshot to resume"
        };
        self.start = format!(
            "{}; the earlier run moved aside ({why}) to {}",
            self.start,
            moved.join(" and ")
        );
        Ok(())
    }

    /// Saves a resumable snapshot after `step` into `<ckpt_dir>/resume/`.
    pub fn snapshot(&self, step: usize) -> Result<()> {
        let snap = Snapshot {
            format: "recrl-ppo-resume/1".into(),
            step,
            options: self.opts.clone(),
            rng: self.env.rng.state(),
            members: self.env.members.clone(),
            canaries: self.env.canaries.clone(),
            files: Vec::new(),
        };
        let fixed: Vec<(&str, &Tensor)> = self
            .learner
            .soft
            .iter()
            .map(|s| (resume::REFERENCE_W_P, s.reference_projector()))
            .collect();
        resume::save(
            &Layout::resume_dir(&self.ckpt_dir),
            snap,
            &self.ex.trainable,
            &fixed,
            &self.learner.opt,
        )
    }

    /// Saves the final checkpoints (the change of `E`, then the adapter and `W_p`) into
    /// `ckpt_dir`, and the canaries, the members and the run record (`started`: when this
    /// session's steps began) into `log_dir`.
    pub fn finish(self, started: Instant, resumed_from_step: Option<usize>) -> Result<()> {
        let (log_dir, ckpt_dir) = (&self.log_dir, &self.ckpt_dir);
        // one commit: the change of `E`, the adapter, `W_p`, then explainer.json with their
        // sha256s; `resume/` carries over
        let e_delta = &self.coupling.e - &self.coupling.e0;
        self.ex.save_with(ckpt_dir, |dir| {
            crate::io::save_tensors(&dir.join("e_delta.safetensors"), &[("e_delta", e_delta)])
        })?;
        if !self.env.canaries.is_empty() {
            crate::io::write_atomic(
                &log_dir.join(crate::paths::files::CANARIES),
                serde_json::to_string_pretty(&self.env.canaries)?.as_bytes(),
            )?;
        }
        let members: Vec<usize> = self.env.members.iter().copied().collect();
        crate::io::write_atomic(
            &log_dir.join(crate::paths::files::MEMBERS),
            serde_json::to_string(&members)?.as_bytes(),
        )?;
        let mut record = serde_json::to_value(self.opts)?;
        record["device"] = format!("{:?}", self.ex.model.device()).into();
        record["fluency_anchors"] = serde_json::to_value(self.env.fluency())?;
        record["start"] = self.start.clone().into();
        if let serde_json::Value::Object(extra) = &self.record {
            for (k, v) in extra {
                record[k] = v.clone();
            }
        }
        record["wall_seconds_this_session"] = started.elapsed().as_secs_f64().into();
        record["resumed_from_step"] = resumed_from_step.into();
        crate::io::write_atomic(
            &log_dir.join(crate::paths::files::RUN),
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )
    }
}

/// The mean of scalar tensors (0 for none), read back once.
fn mean_of(values: &[Tensor]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    f64::try_from(Tensor::stack(values, 0).mean(tch::Kind::Double)).unwrap_or(f64::NAN)
}

/// The sampling settings of `step`: its own seed, and replies cut to fit `max_seq_len` after
/// the prompts of `batch`.
fn generation(opts: &RunOptions, step: usize, batch: &PromptBatch) -> Result<GenerationConfig> {
    let prompt_len = batch.ids.size()[1] as usize;
    anyhow::ensure!(
        prompt_len < opts.max_seq_len,
        "prompts of {prompt_len} tokens leave no room for a reply within max_seq_len_explainer = {}",
        opts.max_seq_len
    );
    Ok(GenerationConfig {
        seed: opts.seed.wrapping_mul(1_000_003).wrapping_add(step as u64),
        max_new_tokens: opts
            .generation
            .max_new_tokens
            .min(opts.max_seq_len - prompt_len),
        ..opts.generation.clone()
    })
}

/// Runs PPO; `on_step` sees every log line (after it is written to `log_dir/metrics.jsonl`,
/// with sample explanations in `samples.jsonl`). At the end the adapter, `W_p` and the change
/// of `E` are saved into `ckpt_dir` (see [`Explainer::save`]; `e_delta.safetensors`), and the
/// users trained on into `log_dir/members.json`. Every `opts.checkpoint_every` steps and at the
/// end a snapshot goes to `ckpt_dir/resume/`; with `opts.resume` the run continues from it
/// (the logs are cut back to its step), and the result equals an uninterrupted run.
pub fn train(
    setup: Setup<'_>,
    ex: &mut Explainer,
    mut on_step: impl FnMut(&StepLog, &[(String, String)]),
) -> Result<Vec<StepLog>> {
    let max_steps = setup.opts.max_steps;
    let _owner = crate::io::Owner::acquire(
        &crate::paths::owner_lock(&setup.log_dir),
        &format!("PPO run {}", setup.log_dir.display()),
    )?;
    let mut trainer = Trainer::new(setup, ex)?;
    let resumed = trainer.resume()?;
    let (first, mut logs, mut out) = match &resumed {
        Some(snap) => {
            let (logs, out) = Logs::resume(&trainer.log_dir, snap.step)?;
            (snap.step + 1, logs, out)
        }
        None => {
            trainer.make_room()?;
            let (logs, zero) =
                Logs::start(&trainer.log_dir, || trainer.zero(), |z| on_step(z, &[]))?;
            (1, logs, vec![zero])
        }
    };
    let started = Instant::now();
    for step in first..=max_steps {
        let (line, shown) = trainer.step(step)?;
        logs.write(&line, &shown)?;
        on_step(&line, &shown);
        out.push(line);
        if trainer.snapshot_due(step) {
            trainer.snapshot(step)?;
        }
    }
    trainer.finish(started, resumed.map(|s| s.step))?;
    Ok(out)
}
