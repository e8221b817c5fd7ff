//! Step 2: the SASRec ranker — model, training, both evaluation protocols, checkpoints.
//!
//! * [`Sasrec`]: the network (untied output item table `E` by default, see docs/design.md §4);
//! * [`train()`]: AdamW with early stopping on validation NDCG@10 (full ranking);
//! * [`eval`]: full-ranking and sampled-100 metrics, batched on the device;
//! * [`Ranker`]: a trained model with the API later steps use — user states `h_u`, scores,
//!   top-k, the table `E` — and atomic, checksummed checkpoints.
//!
//! ```no_run
//! use recrl_lib::{config::Config, data, ranker};
//! let root = recrl_lib::paths::project_root();
//! let ds = data::store::load(&root, data::DatasetName::Ml100k)?;
//! let ranker = ranker::Ranker::load(&root.join("checkpoints"), &ds, tch::Device::Cpu)?;
//! let top = ranker.top_k(&[ds.train[0].clone()], 10, true);
//! println!("user 1: {:?}", top[0]);
//! # anyhow::Ok(())
//! ```

pub mod batch;
pub mod checkpoint;
pub mod eval;
pub mod metrics;
pub mod model;
mod train;

pub use checkpoint::CheckpointMeta;
pub use eval::{EvalSet, Split};
pub use metrics::{Protocol, RankMetrics};
pub use model::{Sasrec, SasrecShape};
pub use train::{train, EpochLog, TrainEvent, TrainOptions, TrainReport};

use crate::data::Dataset;
use crate::paths::Layout;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// A SASRec model with its variables.
#[derive(Debug)]
pub struct Ranker {
    /// The variables (all trainable).
    pub vs: nn::VarStore,
    /// The network.
    pub net: Sasrec,
    /// The checkpoint's sidecar when loaded from (or saved to) disk.
    pub meta: Option<CheckpointMeta>,
}

impl Ranker {
    /// A freshly initialised model on `device` (initialisation drawn from torch's generator).
    pub fn new(shape: SasrecShape, device: Device) -> Ranker {
        let vs = nn::VarStore::new(device);
        let net = Sasrec::new(&vs.root(), shape);
        Ranker {
            vs,
            net,
            meta: None,
        }
    }

    /// The device the variables are on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The output item table `E`, `[n_items + 1, d]` (row 0 unused).
    pub fn output_table(&self) -> &Tensor {
        self.net.output_table()
    }

    /// User states `h_u` (`[B, d]`, no gradient) of item histories, oldest item first; only the
    /// last `max_len` items of each are read.
    pub fn user_states<S: AsRef<[u32]>>(&self, histories: &[S]) -> Tensor {
        let seqs = batch::left_pad(histories, self.net.shape.max_len, self.device());
        tch::no_grad(|| self.net.user_states(&seqs))
    }

    /// Scores `[B, n_items + 1]` of every item after each history (column 0 is −∞).
    pub fn scores<S: AsRef<[u32]>>(&self, histories: &[S]) -> Tensor {
        tch::no_grad(|| self.net.scores(&self.user_states(histories)))
    }

    /// The `k` best items and their scores after each history, best first; with
    /// `exclude_seen`, items in the history are skipped. Padding (item 0) is never returned,
    /// so a row is shorter than `k` when fewer items qualify.
    pub fn top_k<S: AsRef<[u32]>>(
        &self,
        histories: &[S],
        k: usize,
        exclude_seen: bool,
    ) -> Vec<Vec<(u32, f32)>> {
        let mut scores = self.scores(histories);
        if exclude_seen {
            let seen = batch::left_pad(histories, usize::MAX, self.device());
            scores = scores.scatter_value(1, &seen, f64::NEG_INFINITY);
        }
        let k = k.min(self.net.shape.n_items) as i64;
        let (values, items) = scores.topk(k, 1, true, true);
        let values: Vec<Vec<f32>> = values.to_device(Device::Cpu).try_into().unwrap();
        let items: Vec<Vec<i64>> = items.to_device(Device::Cpu).try_into().unwrap();
        items
            .iter()
            .zip(values)
            .map(|(is, vs)| {
                is.iter()
                    .zip(vs)
                    .filter(|(_, v)| *v > f32::NEG_INFINITY)
                    .map(|(&i, v)| (i as u32, v))
                    .collect()
            })
            .collect()
    }

    /// The variables by name, sorted.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Saves `checkpoints/sasrec_<ds>.{safetensors,json}` under `dir` atomically.
    pub fn save(&mut self, dir: &Path, mut meta: CheckpointMeta) -> Result<()> {
        let (w, j) = crate::paths::ranker_files_in(dir, &meta.dataset);
        checkpoint::save(&w, &j, &self.named_tensors(), &mut meta)?;
        self.meta = Some(meta);
        Ok(())
    }

    /// Loads `sasrec_<ds>.{safetensors,json}` from `dir` after checking the weights' sha256 and
    /// that `ds` is the data they were trained on.
    pub fn load(dir: &Path, ds: &Dataset, device: Device) -> Result<Ranker> {
        let (w, j) = crate::paths::ranker_files_in(dir, ds.name.as_str());
        crate::io::recover(dir)?; // finishes a save that a kill interrupted
        if !j.is_file() {
            anyhow::bail!(
                "{}: no ranker checkpoint; run step 2 (`recrl train-ranker --dataset {}`)",
                j.display(),
                ds.name
            );
        }
        let meta = checkpoint::read_checked(&w, &j, ds)?;
        let shape = meta.shape;
        anyhow::ensure!(
            shape.heads > 0 && shape.hidden > 0 && shape.hidden.is_multiple_of(shape.heads),
            "{}: shape.hidden = {} and shape.heads = {} cannot describe a model (heads must divide hidden); the file was edited? re-run step 2",
            j.display(),
            shape.hidden,
            shape.heads
        );
        let mut ranker = Ranker::new(shape, device);
        checkpoint::check_shapes(&w, &j, &ranker.vs)?;
        ranker
            .vs
            .load(&w)
            .with_context(|| format!("loading {}", w.display()))?;
        ranker.meta = Some(meta);
        Ok(ranker)
    }
}

/// Step 2 as one call: trains on `ds` and saves `<root>/checkpoints/sasrec_<ds>.*`, with the
/// per-epoch log in `<root>/logs/<ds>/ranker/train.jsonl` unless `opts.log_path` says otherwise.
pub fn train_and_save(
    root: &Path,
    ds: &Dataset,
    opts: &TrainOptions,
    on_event: impl FnMut(TrainEvent),
) -> Result<(Ranker, TrainReport)> {
    let layout = Layout::new(root);
    let _owner = crate::io::Owner::acquire(
        &crate::paths::owner_lock(&layout.ranker_files(ds.name.as_str()).0),
        &format!("the ranker checkpoint of {}", ds.name.as_str()),
    )?;
    let mut opts = opts.clone();
    opts.log_path
        .get_or_insert_with(|| layout.ranker_log(ds.name.as_str()));
    let (mut ranker, report) = train(ds, &opts, on_event)?;
    let data_files = std::fs::read_to_string(layout.checksum_file(ds.name.as_str()))
        .ok()
        .and_then(|t| serde_json::from_str::<crate::data::store::Checksums>(&t).ok())
        .map(|c| c.processed)
        .unwrap_or_default();
    let meta = CheckpointMeta {
        format: checkpoint::FORMAT.to_string(),
        dataset: ds.name.to_string(),
        n_users: ds.n_users(),
        shape: ranker.net.shape,
        config: opts.config.clone(),
        seed: opts.seed,
        epoch: report.best_epoch,
        epochs_run: report.epochs.len(),
        valid: report.valid.clone(),
        test: report.test.clone(),
        dataset_sha256: checkpoint::dataset_fingerprint(ds),
        data_files,
        weights_sha256: String::new(),
        device: format!("{:?}", opts.device),
        train_seconds: report.seconds,
        code: Some(crate::record::code()),
    };
    ranker.save(&layout.checkpoints(), meta)?;
    Ok((ranker, report))
}

impl EpochLog {
    /// `epoch   3  loss 6.1234  41.2k pos/s  valid NDCG@10 0.0412  HR@10 0.0891 (full) *`
    pub fn line(&self) -> String {
        format!(
            "epoch {:>3}  loss {:.4}  {:.1}k pos/s  valid NDCG@10 {:.4}  HR@10 {:.4} ({}){}",
            self.epoch,
            self.loss,
            self.positions_per_s / 1e3,
            self.valid.ndcg10,
            self.valid.hr10,
            self.valid.protocol,
            if self.best { "  *best" } else { "" }
        )
    }
}

impl TrainReport {
    /// Split × protocol table of the kept weights' metrics.
    pub fn metrics_table(&self) -> crate::display::Table {
        metrics_table(&self.valid, &self.test)
    }
}

/// Split × protocol table: `split | protocol | users | HR@10 | NDCG@10 | HR@20 | NDCG@20 | MRR`.
pub fn metrics_table(valid: &[RankMetrics], test: &[RankMetrics]) -> crate::display::Table {
    let mut header = vec!["split"];
    header.extend(RankMetrics::COLUMNS);
    let rows = [("valid", valid), ("test", test)]
        .iter()
        .flat_map(|(split, ms)| {
            ms.iter().map(move |m| {
                let mut r = vec![split.to_string()];
                r.extend(m.row());
                r
            })
        })
        .collect();
    crate::display::Table::new(&header, rows)
}

/// The saved ranker of `<root>/checkpoints` when it was trained on exactly `ds` with the same
/// configuration and seed as `opts` (so re-running step 2 can be skipped); `None` otherwise.
pub fn load_if_current(root: &Path, ds: &Dataset, opts: &TrainOptions) -> Option<Ranker> {
    let ranker = Ranker::load(&Layout::new(root).checkpoints(), ds, opts.device).ok()?;
    let meta = ranker.meta.as_ref()?;
    (meta.config == opts.config && meta.seed == opts.seed).then_some(ranker)
}

/// The ranker later steps start from, and the folder of its checkpoint: `<out_root>/checkpoints`.
/// A missing checkpoint is an error that says to run step 2, unless there is a `fallback`
/// folder: then its checkpoint, else a one-epoch model trained into `out_root` (so the
/// notebooks' smoke runs, under `target/smoke/`, work on a fresh checkout).
pub fn for_later_steps(
    out_root: &Path,
    ds: &Dataset,
    opts: &TrainOptions,
    fallback: Option<&Path>,
) -> Result<(Ranker, PathBuf)> {
    let dir = Layout::new(out_root).checkpoints();
    let fallback = match (Ranker::load(&dir, ds, opts.device), fallback) {
        (Ok(r), _) => return Ok((r, dir)),
        (Err(e), None) => {
            return Err(e.context("run step 2 first (notebook 02_ranker or `recrl train-ranker`)"))
        }
        (Err(_), Some(f)) => f,
    };
    if let Ok(r) = Ranker::load(fallback, ds, opts.device) {
        return Ok((r, fallback.to_path_buf()));
    }
    let mut quick = opts.clone();
    quick.config.epochs = 1;
    let (r, _) = train_and_save(out_root, ds, &quick, |_| {})?;
    Ok((r, dir))
}

/// Reads a JSON-lines training log written by [`train`]; a line that does not parse is an
/// error naming the file and line.
pub fn read_log(path: &Path) -> Result<Vec<EpochLog>> {
    crate::io::read_json_lines(path)
}

/// The training curves of a log: loss, and validation NDCG@10 and HR@10 (full ranking), by epoch.
pub fn curves(epochs: &[EpochLog]) -> [crate::display::charts::Series; 3] {
    use crate::display::charts::Series;
    let x: Vec<f64> = epochs.iter().map(|e| e.epoch as f64).collect();
    let y = |f: fn(&EpochLog) -> f64| epochs.iter().map(f).collect::<Vec<f64>>();
    [
        Series::new("training loss", x.clone(), y(|e| e.loss)),
        Series::new("valid NDCG@10 (full)", x.clone(), y(|e| e.valid.ndcg10)),
        Series::new("valid HR@10 (full)", x, y(|e| e.valid.hr10)),
    ]
}

/// A look at the model: for each user (1-based), the last `recent` history titles, the top-`k`
/// titles after the whole history before the test item (seen items skipped; the test item is
/// starred) and the held-out test title.
pub fn recommendations_table(
    ranker: &Ranker,
    ds: &Dataset,
    users: &[usize],
    k: usize,
    recent: usize,
) -> crate::display::Table {
    let histories: Vec<Vec<u32>> = users.iter().map(|&u| Split::Test.history(ds, u)).collect();
    let tops = ranker.top_k(&histories, k, true);
    let rows = users
        .iter()
        .zip(histories.iter().zip(tops))
        .map(|(&u, (h, top))| {
            let test = ds.test[u - 1];
            let last: Vec<&str> = h[h.len().saturating_sub(recent)..]
                .iter()
                .map(|&i| ds.title(i))
                .collect();
            let recs: Vec<String> = top
                .iter()
                .map(|&(i, _)| {
                    let star = if i == test { "★ " } else { "" };
                    format!("{star}{}", ds.title(i))
                })
                .collect();
            vec![
                u.to_string(),
                last.join(" · "),
                recs.join(" · "),
                ds.title(test).to_string(),
            ]
        })
        .collect();
    crate::display::Table::new(
        &[
            "user",
            "latest history (oldest first)",
            "top recommendations (★ = test item)",
            "test item",
        ],
        rows,
    )
}
