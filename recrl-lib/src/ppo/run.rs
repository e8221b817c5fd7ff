//! The shielded PPO loop (DESIGN §7): sample users, explain the ranker's top item with soft
//! tokens, score the explanations with the simulated user, update LoRA, `W_p`, the value head
//! and `E` (shielded or not), and log every step; ranking drift is measured every N steps.

use super::adamw::AdamW;
use super::coupling::Coupling;
use super::policy::{Responses, ValueHead};
use super::resume::{self, Snapshot};
use super::update::{update, PpoConfig, UpdateStats};
use crate::data::Dataset;
use crate::explainer::{init::requests_for, prompt, Explainer, GenerationConfig};
use crate::ranker::{eval, EvalSet, Ranker, Split};
use crate::rng::Rng;
use crate::shield::Shield;
use crate::sim::canary;
pub use crate::sim::simulator::SimParams;
use crate::sim::simulator::{QualityScorer, SimUser};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Kind, Tensor};

/// How `E` is coupled to the explainer in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coupled {
    /// `E` trained, every update projected (the method).
    Shielded,
    /// `E` trained without projection (`--no_projection`).
    NoProjection,
    /// `E` frozen (control).
    Frozen,
}

/// Everything a run needs besides the models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOptions {
    /// Arm name (log folder `logs/<ds>/<tag>/`).
    pub tag: String,
    /// How `E` is coupled.
    pub coupled: Coupled,
    /// PPO steps.
    pub max_steps: usize,
    /// Rollouts per step.
    pub ppo_batch: usize,
    /// Validation drift every this many steps (and at the last).
    pub eval_every: usize,
    /// Learning rate of LoRA, `W_p`, the value head and `E`.
    pub lr: f64,
    /// PPO settings.
    pub ppo: PpoConfig,
    /// Sampling settings (temperature should equal `ppo.temperature`).
    pub generation: GenerationConfig,
    /// Simulated user.
    pub sim: SimParams,
    /// Seed of user sampling, the sampler and the simulated users.
    pub seed: u64,
    /// History items in each prompt.
    pub history_items: usize,
    /// Prompt + response token budget (`--max_seq_len_explainer`): replies are cut to fit.
    pub max_seq_len: usize,
    /// Characters of an explanation kept for scoring and logs (`--explanation_max_len`).
    pub explanation_max_len: usize,
    /// Synthetic secrets appended to training prompts for the audit's canary exposure
    /// (`--canaries`): canary `j` goes into the first prompt of steps with `step % k == j`.
    #[serde(default)]
    pub canaries: usize,
    /// Save a resumable snapshot every this many steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Continue from the snapshot in `<ckpt_dir>/resume/` when there is one.
    #[serde(skip)]
    pub resume: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepLog {
    /// Step (1-based; 0 = before training, evaluation only).
    pub step: usize,
    /// PPO statistics (reward = mean click probability).
    #[serde(flatten)]
    pub stats: UpdateStats,
    /// Mean `q(x)`.
    pub quality: f64,
    /// Simulated CTR: mean click probability of the step's explanations.
    pub ctr: f64,
    /// Mean share of each `E` update removed by the shield.
    pub shield_removed: f64,
    /// Seconds of this step.
    pub seconds: f64,
    /// Drift measurements, on evaluation steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// Ranking drift against step 0, full-ranking protocol on the validation split.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Drift {
    /// Always "full".
    pub protocol: String,
    /// Validation NDCG@10.
    pub ndcg10: f64,
    /// Validation HR@10.
    pub hr10: f64,
    /// Change of NDCG@10 from step 0.
    pub d_ndcg10: f64,
    /// Change of HR@10 from step 0.
    pub d_hr10: f64,
    /// Mean share of each user's top 10 still in the step-0 top 10.
    pub top10_overlap: f64,
    /// Largest `|δs(u,i)|` over validation users and items.
    pub max_abs_ds: f64,
}

/// The state drift is measured against.
struct Baseline {
    set: EvalSet,
    histories: Vec<Vec<u32>>,
    scores: Tensor,
    top10: Tensor,
    metrics: (f64, f64),
}

fn measure(ranker: &Ranker, base: &Baseline) -> Result<Drift> {
    let m = eval::evaluate(&ranker.net, &base.set, ranker.device())?;
    let scores = ranker
        .scores(&base.histories)
        .narrow(1, 1, base.scores.size()[1]);
    let top = scores.topk(10, 1, true, true).1;
    let overlap = top
        .unsqueeze(2)
        .eq_tensor(&base.top10.unsqueeze(1))
        .any_dim(2, false)
        .to_kind(Kind::Float)
        .mean(Kind::Float);
    Ok(Drift {
        protocol: m[0].protocol.to_string(),
        ndcg10: m[0].ndcg10,
        hr10: m[0].hr10,
        d_ndcg10: m[0].ndcg10 - base.metrics.0,
        d_hr10: m[0].hr10 - base.metrics.1,
        top10_overlap: f64::try_from(overlap)?,
        max_abs_ds: f64::try_from((scores - &base.scores).abs().max())?,
    })
}

/// Log lines of `path` (JSON with a `step`) up to step `last`; none when the file is absent.
fn lines_upto(path: &std::path::Path, last: usize) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut keep = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: bad log line", path.display(), n + 1))?;
        if v["step"].as_u64().is_some_and(|s| s as usize <= last) {
            keep.push(line.to_string());
        }
    }
    Ok(keep)
}

/// Opens `path` for appending after rewriting it with `lines` (atomically).
fn reopen(path: &std::path::Path, lines: &[String]) -> Result<std::fs::File> {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    crate::io::write_atomic(path, body.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Runs PPO; `on_step` sees every log line (after it is written to `log_dir/metrics.jsonl`,
/// with sample explanations in `samples.jsonl`). At the end the adapter, `W_p` and the change
/// of `E` are saved into `ckpt_dir` (see [`Explainer::save`]; `e_delta.safetensors`), and the
/// users trained on into `log_dir/members.json`. Every `opts.checkpoint_every` steps and at the
/// end a snapshot goes to `ckpt_dir/resume/`; with `opts.resume` the run continues from it
/// (the logs are cut back to its step), and the result equals an uninterrupted run.
#[allow(clippy::too_many_arguments)]
pub fn run(
    ds: &Dataset,
    ranker: &Ranker,
    ex: &mut Explainer,
    shield: Option<Shield>,
    opts: &RunOptions,
    log_dir: PathBuf,
    ckpt_dir: PathBuf,
    mut on_step: impl FnMut(&StepLog, &[(String, String)]),
) -> Result<Vec<StepLog>> {
    let group = opts.ppo.group_size.max(1);
    anyhow::ensure!(
        opts.ppo_batch >= group && opts.ppo_batch.is_multiple_of(group),
        "ppo_batch = {} is not a multiple of group_size = {group} (each user prompt is sampled group_size times)",
        opts.ppo_batch
    );
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let device = ex.model.device();
    let value = ValueHead::new(&ex.trainable.root(), ex.model.config.hidden_size as i64);
    let frozen = opts.coupled == Coupled::Frozen;
    let shield = if opts.coupled == Coupled::Shielded {
        shield
    } else {
        None
    };
    let mut coupling = Coupling::new(&ex.trainable.root(), ranker, shield, frozen);
    let mut opt = AdamW::new(&ex.trainable, opts.lr, 0.0);
    let proj = ex
        .projector
        .as_ref()
        .context("init_projector first: the soft tokens need W_p")?
        .weight
        .shallow_clone();
    let e_now = coupling.e.shallow_clone();
    let scorer = QualityScorer::default();
    let train_users: Vec<usize> = (1..=ds.n_users())
        .filter(|&u| !ds.train[u - 1].is_empty())
        .collect();
    let sim = SimUser::for_run(ds, ranker, &opts.sim, opts.seed);
    let all_h = crate::shield::states_of(ranker, &train_users, |u| ds.train[u - 1].clone());
    let base = {
        let set = EvalSet::new(ds, Split::Valid, opts.seed)?;
        let histories: Vec<Vec<u32>> = (1..=ds.n_users())
            .map(|u| Split::Valid.history(ds, u))
            .collect();
        let scores = ranker.scores(&histories).narrow(1, 1, ds.n_items() as i64);
        let top10 = scores.topk(10, 1, true, true).1;
        let m = eval::evaluate(&ranker.net, &set, ranker.device())?;
        Baseline {
            set,
            histories,
            scores,
            top10,
            metrics: (m[0].ndcg10, m[0].hr10),
        }
    };
    let mut rng = Rng::new(opts.seed);
    // Users whose prompts the run trained on (`members.json`, for membership inference).
    let mut members = std::collections::BTreeSet::new();
    let mut canaries = canary::make(opts.canaries, opts.seed);
    let snapshot_dir = resume::dir(&ckpt_dir);
    let resumed = if opts.resume {
        resume::load(&snapshot_dir, opts, &ex.trainable, &mut opt)?
    } else {
        None
    };
    let (metrics_path, samples_path) =
        (log_dir.join("metrics.jsonl"), log_dir.join("samples.jsonl"));
    let mut out: Vec<StepLog> = Vec::new();
    let (first, mut log, mut samples) = match &resumed {
        Some(snap) => {
            rng = Rng::new(snap.rng);
            members = snap.members.clone();
            canaries = snap.canaries.clone();
            coupling.restart_from_current();
            coupling.sync_into(ranker);
            let kept = lines_upto(&metrics_path, snap.step)?;
            for line in &kept {
                out.push(serde_json::from_str(line)?);
            }
            let log = reopen(&metrics_path, &kept)?;
            let samples = reopen(&samples_path, &lines_upto(&samples_path, snap.step)?)?;
            (snap.step + 1, log, samples)
        }
        None => {
            let mut log = std::fs::File::create(&metrics_path)?;
            let zero = StepLog {
                drift: Some(measure(ranker, &base)?),
                ..Default::default()
            };
            writeln!(log, "{}", serde_json::to_string(&zero)?)?;
            on_step(&zero, &[]);
            out.push(zero);
            (1, log, std::fs::File::create(&samples_path)?)
        }
    };
    let started = Instant::now();
    for step in first..=opts.max_steps {
        let t0 = Instant::now();
        // torch's generator (LoRA dropout) restarts from the step, so a resumed run draws the same.
        tch::manual_seed((opts.seed ^ (step as u64).wrapping_mul(0x9e37_79b9)) as i64);
        let users: Vec<usize> = (0..opts.ppo_batch / group)
            .map(|_| train_users[rng.below(train_users.len())])
            .flat_map(|u| std::iter::repeat_n(u, group))
            .collect();
        members.extend(users.iter().copied());
        let requests = requests_for(ds, ranker, &users, opts.history_items);
        let mut prompts = ex.prompts(ds, &requests)?;
        if !canaries.is_empty() {
            let c = &mut canaries[step % opts.canaries];
            let message = format!(
                "{} {}",
                prompt::user_message(ds, &requests[0], ex.projector.is_some()),
                canary::sentence(&c.secret)
            );
            prompts[0] = prompt::build_message(&ex.tokenizer, &message, &requests[0])?;
            c.inserted += 1;
        }
        let (batch, _) = ex.batch(&prompts, None);
        let items: Vec<i64> = prompts
            .iter()
            .flat_map(|p| p.soft_items.iter().map(|&i| i as i64))
            .collect();
        let items = Tensor::from_slice(&items).to_device(device);
        let soft = || {
            Some(
                e_now
                    .index_select(0, &items)
                    .to_device(device)
                    .linear::<Tensor>(&proj, None),
            )
        };
        let soft0 = tch::no_grad(|| {
            coupling
                .e0
                .index_select(0, &items)
                .to_device(device)
                .linear::<Tensor>(&proj, None)
        });
        let prompt_len = batch.ids.size()[1] as usize;
        anyhow::ensure!(
            prompt_len < opts.max_seq_len,
            "prompts of {prompt_len} tokens leave no room for a reply within max_seq_len_explainer = {}",
            opts.max_seq_len
        );
        let gen = GenerationConfig {
            seed: opts.seed.wrapping_mul(1_000_003).wrapping_add(step as u64),
            max_new_tokens: opts
                .generation
                .max_new_tokens
                .min(opts.max_seq_len - prompt_len),
            ..opts.generation.clone()
        };
        let mut gens =
            crate::explainer::generate(&ex.model, &ex.tokenizer, &batch, soft().as_ref(), &gen)?;
        for g in &mut gens {
            if let Some((cut, _)) = g.text.char_indices().nth(opts.explanation_max_len) {
                g.text.truncate(cut);
            }
        }
        // Simulated clicks with s(u, i) from the current E.
        let (mut rewards, mut qs) = (Vec::new(), Vec::new());
        for (req, g) in requests.iter().zip(&gens) {
            let hist: Vec<&crate::data::ItemMeta> =
                req.history.iter().map(|&i| &ds.items[i as usize]).collect();
            let q = scorer.score(&g.text, &ds.items[req.recommended as usize], &hist);
            let idx = train_users.binary_search(&req.user).unwrap_or(0) as i64;
            let s = tch::no_grad(|| {
                f64::try_from(
                    all_h.get(idx).dot(
                        &coupling
                            .e
                            .get(req.recommended as i64)
                            .to_device(all_h.device()),
                    ),
                )
            })?;
            rewards.push(sim.click_probability(req.user, s, q));
            qs.push(q);
        }
        let resp = Responses::new(&batch, &gens, ex.tokenizer.pad);
        let mut removed = Vec::new();
        let stats = update(
            &mut ex.model,
            &value,
            &mut opt,
            &resp,
            &soft,
            Some(&soft0),
            &rewards,
            &opts.ppo,
            &mut || {
                coupling.after_step();
                removed.push(coupling.removed);
            },
        );
        coupling.sync_into(ranker);
        let n = rewards.len() as f64;
        let mut line = StepLog {
            step,
            ctr: rewards.iter().sum::<f64>() / n,
            quality: qs.iter().sum::<f64>() / n,
            shield_removed: removed.iter().sum::<f64>() / removed.len().max(1) as f64,
            stats,
            seconds: 0.0,
            drift: None,
        };
        if step % opts.eval_every.max(1) == 0 || step == opts.max_steps {
            line.drift = Some(measure(ranker, &base)?);
        }
        line.seconds = t0.elapsed().as_secs_f64();
        writeln!(log, "{}", serde_json::to_string(&line)?)?;
        log.flush()?;
        let shown: Vec<(String, String)> = requests
            .iter()
            .zip(&gens)
            .take(2)
            .map(|(r, g)| (ds.title(r.recommended).to_string(), g.text.clone()))
            .collect();
        for (title, text) in &shown {
            writeln!(
                samples,
                "{}",
                serde_json::json!({"step": step, "item": title, "explanation": text})
            )?;
        }
        on_step(&line, &shown);
        out.push(line);
        let every = opts.checkpoint_every;
        if step == opts.max_steps || (every > 0 && step % every == 0) {
            let snap = Snapshot {
                format: "recrl-ppo-resume/1".into(),
                step,
                options: opts.clone(),
                rng: rng.state(),
                members: members.clone(),
                canaries: canaries.clone(),
                files: Vec::new(),
            };
            resume::save(&snapshot_dir, snap, &ex.trainable, &opt)?;
        }
    }
    std::fs::create_dir_all(&ckpt_dir)
        .with_context(|| format!("creating {}", ckpt_dir.display()))?;
    crate::io::save_tensors(
        &ckpt_dir.join("e_delta.safetensors"),
        &[("e_delta", &coupling.e - &coupling.e0)],
    )?;
    // After e_delta, so that explainer.json records its sha256 too.
    ex.save(&ckpt_dir)?;
    if !canaries.is_empty() {
        crate::io::write_atomic(
            &log_dir.join("canaries.json"),
            serde_json::to_string_pretty(&canaries)?.as_bytes(),
        )?;
    }
    let members: Vec<usize> = members.into_iter().collect();
    crate::io::write_atomic(
        &log_dir.join("members.json"),
        serde_json::to_string(&members)?.as_bytes(),
    )?;
    let mut record = serde_json::to_value(opts)?;
    record["device"] = format!("{device:?}").into();
    record["wall_seconds_this_session"] = started.elapsed().as_secs_f64().into();
    record["resumed_from_step"] = resumed.map(|s| s.step).into();
    crate::io::write_atomic(
        &log_dir.join("run.json"),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    Ok(out)
}

/// A one-line summary of a step for terminals and notebooks.
pub fn step_line(line: &StepLog) -> String {
    let drift = line
        .drift
        .as_ref()
        .map(|d| {
            format!(
                "  ΔNDCG@10 {:+.5} ({})  top-10 overlap {:.3}  max|δs| {:.2e}",
                d.d_ndcg10, d.protocol, d.top10_overlap, d.max_abs_ds
            )
        })
        .unwrap_or_default();
    format!(
        "step {:>4}  reward {:.4}  q {:.3}  KL {:.3}  clip {:.3}  len {:.1}  removed {:.3}  {:.1}s{drift}",
        line.step, line.ctr, line.quality, line.stats.kl, line.stats.clip_frac, line.stats.response_len, line.shield_removed, line.seconds
    )
}
