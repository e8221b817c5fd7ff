//! Training: every position supervised (next item), AdamW, early stopping on validation
//! NDCG@10 under full ranking, the best epoch's weights kept. Deterministic on CPU for a seed.

use super::batch::{left_pad, training_windows, Window};
use super::eval::{evaluate, EvalSet, Split};
use super::metrics::RankMetrics;
use super::model::{lookup, Sasrec, SasrecShape};
use super::Ranker;
use crate::config::{RankerConfig, RankerLoss};
use crate::data::Dataset;
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

/// What a training run needs besides the data.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model and optimisation settings (`ranker` section of the configuration).
    pub config: RankerConfig,
    /// Seeds torch (initialisation, dropout, negatives) and the batch order.
    pub seed: u64,
    /// Where to train.
    pub device: Device,
    /// bf16 autocast for the forward pass (CUDA only; ignored on CPU).
    pub bf16: bool,
    /// JSON-lines log, one line per epoch (truncated at the start).
    pub log_path: Option<PathBuf>,
}

/// One epoch's numbers, as logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss per supervised position.
    pub loss: f64,
    /// Supervised target positions trained on.
    pub positions: usize,
    /// Seconds of training (evaluation excluded).
    pub train_seconds: f64,
    /// Training throughput, supervised positions per second.
    pub positions_per_s: f64,
    /// Seconds of the validation pass.
    pub eval_seconds: f64,
    /// Validation metrics under full ranking (the early-stopping criterion is its NDCG@10).
    pub valid: RankMetrics,
    /// True when this epoch is the best so far.
    pub best: bool,
}

/// Progress reported while training.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// A batch finished.
    Batch {
        /// 1-based epoch.
        epoch: usize,
        /// Batches done in this epoch.
        done: usize,
        /// Batches per epoch.
        total: usize,
        /// Loss of this batch.
        loss: f64,
        /// Supervised positions per second so far in this epoch.
        positions_per_s: f64,
    },
    /// An epoch finished and was evaluated.
    Epoch(&'a EpochLog),
}

/// The outcome of [`train`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Every epoch run.
    pub epochs: Vec<EpochLog>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// True when patience ran out before the epoch budget.
    pub stopped_early: bool,
    /// Validation metrics of the kept weights: `[full, sampled-100]`.
    pub valid: Vec<RankMetrics>,
    /// Test metrics of the kept weights: `[full, sampled-100]`.
    pub test: Vec<RankMetrics>,
    /// Wall-clock seconds, training and evaluation.
    pub seconds: f64,
}

/// Trains SASRec on `ds.train` with early stopping on `ds.valid`, then evaluates on `ds.test`.
///
/// Deterministic on CPU for a seed, as long as nothing else in the process draws from torch's
/// (process-wide) random generator at the same time.
pub fn train(
    ds: &Dataset,
    opts: &TrainOptions,
    mut on_event: impl FnMut(TrainEvent),
) -> Result<(Ranker, TrainReport)> {
    let t0 = Instant::now();
    let cfg = &opts.config;
    if cfg.heads == 0 || !cfg.hidden.is_multiple_of(cfg.heads) {
        bail!(
            "ranker.hidden ({}) must be a positive multiple of ranker.heads ({})",
            cfg.hidden,
            cfg.heads
        );
    }
    crate::env::seed_everything(opts.seed);
    let mut rng = Rng::new(opts.seed);
    let ranker = Ranker::new(SasrecShape::new(cfg, ds.n_items()), opts.device);
    let mut opt = nn::AdamW {
        wd: cfg.weight_decay,
        ..Default::default()
    }
    .build(&ranker.vs, cfg.lr)?;
    let mut windows = training_windows(&ds.train, cfg.max_len);
    let valid_set = EvalSet::new(ds, Split::Valid, opts.seed)?;
    let mut log = EpochLogs::open(opts.log_path.as_deref())?;
    let (mut epochs, mut best, mut best_ndcg) = (Vec::new(), Vec::new(), f64::NEG_INFINITY);
    let mut best_epoch = 0;
    for epoch in 1..=cfg.epochs {
        let t = Instant::now();
        rng.shuffle(&mut windows);
        let (loss_sum, positions) = one_epoch(
            (&ranker, &mut opt),
            ds,
            opts,
            (epoch, &windows),
            t,
            &mut on_event,
        )?;
        let train_seconds = t.elapsed().as_secs_f64();
        let te = Instant::now();
        let [valid, _] = evaluate(&ranker.net, &valid_set, opts.device)?;
        let improved = valid.ndcg10 > best_ndcg;
        if improved {
            best_ndcg = valid.ndcg10;
            best_epoch = epoch;
            best = snapshot(&ranker);
        }
        let entry = EpochLog {
            epoch,
            loss: loss_sum / positions.max(1) as f64,
            positions,
            train_seconds,
            positions_per_s: positions as f64 / train_seconds.max(1e-9),
            eval_seconds: te.elapsed().as_secs_f64(),
            valid,
            best: improved,
        };
        log.write(&entry)?;
        on_event(TrainEvent::Epoch(&entry));
        epochs.push(entry);
        if epoch - best_epoch >= cfg.patience {
            break;
        }
    }
    restore(&ranker.vs, &best);
    let test_set = EvalSet::new(ds, Split::Test, opts.seed)?;
    let report = TrainReport {
        stopped_early: epochs.len() < cfg.epochs,
        best_epoch,
        valid: evaluate(&ranker.net, &valid_set, opts.device)?.to_vec(),
        test: evaluate(&ranker.net, &test_set, opts.device)?.to_vec(),
        epochs,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((ranker, report))
}

/// One epoch over the shuffled `windows`: a step per batch, each reported to `on_event`
/// (`t`: when the epoch began). Returns the summed loss over supervised positions and their
/// count.
fn one_epoch(
    (ranker, opt): (&Ranker, &mut nn::Optimizer),
    ds: &Dataset,
    opts: &TrainOptions,
    (epoch, windows): (usize, &[Window]),
    t: Instant,
    on_event: &mut impl FnMut(TrainEvent),
) -> Result<(f64, usize)> {
    let cfg = &opts.config;
    let autocast = opts.bf16 && opts.device.is_cuda();
    let batches = windows.len().div_ceil(cfg.batch_size.max(1));
    let (mut loss_sum, mut positions) = (0.0, 0usize);
    for (b, chunk) in windows.chunks(cfg.batch_size.max(1)).enumerate() {
        let inputs: Vec<&[u32]> = chunk
            .iter()
            .map(|w| &ds.train[w.user][w.start..w.end - 1])
            .collect();
        let targets: Vec<&[u32]> = chunk
            .iter()
            .map(|w| &ds.train[w.user][w.start + 1..w.end])
            .collect();
        let x = left_pad(&inputs, cfg.max_len, opts.device);
        let y = left_pad(&targets, cfg.max_len, opts.device);
        // tch::autocast calls libtorch's deprecated CUDA autocast switches, which warn on
        // every call on a GPU even to disable it: enter it only when it is on
        let forward = || loss_of(&ranker.net, cfg, &x, &y);
        let loss = if autocast {
            tch::autocast(true, forward)
        } else {
            forward()
        };
        opt.backward_step(&loss);
        let loss = loss.double_value(&[]);
        if !loss.is_finite() {
            bail!(
                "epoch {epoch}, batch {}: the loss is {loss} (try a lower ranker.lr)",
                b + 1
            );
        }
        let n: usize = targets.iter().map(|t| t.len()).sum();
        loss_sum += loss * n as f64;
        positions += n;
        on_event(TrainEvent::Batch {
            epoch,
            done: b + 1,
            total: batches,
            loss,
            positions_per_s: positions as f64 / t.elapsed().as_secs_f64().max(1e-9),
        });
    }
    Ok((loss_sum, positions))
}

/// The epoch logs of a training: JSON lines at the log path and TensorBoard scalars beside
/// them (a new event file each training); nothing without a log path.
struct EpochLogs {
    lines: Option<std::fs::File>,
    events: Option<crate::tensorboard::EventWriter>,
}

impl EpochLogs {
    fn open(path: Option<&std::path::Path>) -> Result<EpochLogs> {
        let Some(p) = path else {
            return Ok(EpochLogs {
                lines: None,
                events: None,
            });
        };
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let lines =
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
        let events = dir
            .map(crate::tensorboard::EventWriter::create)
            .transpose()?;
        Ok(EpochLogs {
            lines: Some(lines),
            events,
        })
    }

    fn write(&mut self, entry: &EpochLog) -> Result<()> {
        if let Some(f) = self.lines.as_mut() {
            writeln!(f, "{}", serde_json::to_string(entry)?)?;
            f.flush()?;
        }
        if let Some(ev) = self.events.as_mut() {
            ev.scalars(
                entry.epoch as i64,
                &[
                    ("train/loss", entry.loss),
                    ("train/positions_per_s", entry.positions_per_s),
                    ("valid/ndcg10", entry.valid.ndcg10),
                    ("valid/hr10", entry.valid.hr10),
                    ("valid/mrr", entry.valid.mrr),
                ],
            )?;
        }
        Ok(())
    }
}

/// Mean loss over the supervised (non-padding) positions of a batch.
fn loss_of(net: &Sasrec, cfg: &RankerConfig, x: &Tensor, y: &Tensor) -> Tensor {
    let h = net.encode(x, true);
    let d = h.size()[2];
    let y = y.view([-1]);
    let at = y.nonzero().squeeze_dim(1);
    let h = h.view([-1, d]).index_select(0, &at);
    let y = y.index_select(0, &at);
    match cfg.loss {
        RankerLoss::Ce => net.scores(&h).cross_entropy_for_logits(&y),
        RankerLoss::Bce => {
            let e = net.output_table();
            let n = y.size()[0];
            let k = cfg.negatives.max(1) as i64;
            let rows = net.shape.n_items as i64 + 1;
            let negs = Tensor::randint_low(1, rows, [n, k], (Kind::Int64, y.device()));
            let pos = (&h * e.index_select(0, &y)).sum_dim_intlist(-1, false, None);
            let neg = (h.unsqueeze(1) * lookup(e, &negs)).sum_dim_intlist(-1, false, None);
            // a negative that happens to be the positive is not counted as one
            let valid = negs.ne_tensor(&y.unsqueeze(1)).to_kind(Kind::Float);
            let pos_loss = pos.binary_cross_entropy_with_logits::<Tensor>(
                &pos.ones_like(),
                None,
                None,
                tch::Reduction::None,
            );
            let neg_loss = neg.binary_cross_entropy_with_logits::<Tensor>(
                &neg.zeros_like(),
                None,
                None,
                tch::Reduction::None,
            ) * valid;
            (pos_loss + neg_loss.sum_dim_intlist(1, false, None)).mean(None)
        }
    }
}

/// Copies of every variable, sorted by name.
fn snapshot(ranker: &Ranker) -> Vec<(String, Tensor)> {
    ranker
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// Writes a [`snapshot`] back into the variables.
fn restore(vs: &nn::VarStore, saved: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, t) in saved {
            vars[name].shallow_clone().copy_(t);
        }
    });
}
