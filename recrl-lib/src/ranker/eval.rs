//! Leave-one-out evaluation under both protocols, batched on the device.
//!
//! * **full**: the held-out item against every item not in the user's history;
//! * **sampled-100**: against 100 distinct unseen items drawn uniformly (fixed per seed, so
//!   epochs are compared on the same candidates).
//!
//! Ranks count the candidates scored strictly higher plus ties, so a model that scores every
//! item the same gets the worst rank, not the best.

use super::batch::{left_pad, rows_tensor};
use super::metrics::{Protocol, RankMetrics};
use super::model::Sasrec;
use crate::data::Dataset;
use crate::rng::Rng;
use anyhow::{bail, Result};
use rustc_hash::FxHashSet;
use tch::{Device, Kind, Tensor};

/// Which held-out item is predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The second-to-last item, from the training items.
    Valid,
    /// The last item, from the training items and the validation item.
    Test,
}

impl Split {
    /// The history the model sees for user `u` (1-based) when predicting this split's item.
    pub fn history(self, ds: &Dataset, u: usize) -> Vec<u32> {
        let mut h = ds.train[u - 1].clone();
        if self == Split::Test {
            h.push(ds.valid[u - 1]);
        }
        h
    }

    /// The held-out item of user `u` (1-based).
    pub fn target(self, ds: &Dataset, u: usize) -> u32 {
        match self {
            Split::Valid => ds.valid[u - 1],
            Split::Test => ds.test[u - 1],
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Valid => "valid",
            Split::Test => "test",
        })
    }
}

/// Everything one evaluation needs, built once per split and reused every epoch.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// The split.
    pub split: Split,
    histories: Vec<Vec<u32>>,
    targets: Vec<u32>,
    /// Per user: the target followed by 100 distinct items outside the history.
    candidates: Vec<Vec<u32>>,
}

impl EvalSet {
    /// The evaluation set of every user of `ds`; negatives are drawn from a stream of `seed`.
    pub fn new(ds: &Dataset, split: Split, seed: u64) -> Result<EvalSet> {
        let n_items = ds.n_items();
        let mut rng = Rng::new(seed ^ (0x5eed_0000 + split as u64));
        let mut set = EvalSet {
            split,
            histories: Vec::with_capacity(ds.n_users()),
            targets: Vec::with_capacity(ds.n_users()),
            candidates: Vec::with_capacity(ds.n_users()),
        };
        for u in 1..=ds.n_users() {
            let history = split.history(ds, u);
            let target = split.target(ds, u);
            let seen: FxHashSet<u32> = history.iter().copied().chain([target]).collect();
            if n_items < seen.len() + Protocol::SAMPLED_NEGATIVES {
                bail!(
                    "{split} user {u}: only {} unseen items, fewer than the {} negatives of the \
                     sampled protocol",
                    n_items - seen.len(),
                    Protocol::SAMPLED_NEGATIVES
                );
            }
            let mut cands = vec![target];
            let mut drawn = FxHashSet::default();
            while cands.len() <= Protocol::SAMPLED_NEGATIVES {
                let i = 1 + rng.below(n_items) as u32;
                if !seen.contains(&i) && drawn.insert(i) {
                    cands.push(i);
                }
            }
            set.histories.push(history);
            set.targets.push(target);
            set.candidates.push(cands);
        }
        Ok(set)
    }

    /// Users in the set.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Per user: the held-out item followed by its 100 sampled negatives.
    pub fn candidates(&self) -> &[Vec<u32>] {
        &self.candidates
    }

    /// Per user: the history the model reads (and full ranking excludes).
    pub fn histories(&self) -> &[Vec<u32>] {
        &self.histories
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// 0-based ranks of the held-out items, per protocol, for users `users` (0-based indices).
#[derive(Debug, Clone, Default)]
pub struct Ranks {
    /// Full-ranking ranks.
    pub full: Vec<usize>,
    /// Sampled-100 ranks.
    pub sampled: Vec<usize>,
}

/// Ranks of every user of `set`, in batches of `batch_users` on `device`.
pub fn ranks(model: &Sasrec, set: &EvalSet, device: Device, batch_users: usize) -> Result<Ranks> {
    let mut out = Ranks::default();
    let max_len = model.shape.max_len;
    let _guard = tch::no_grad_guard();
    for lo in (0..set.len()).step_by(batch_users.max(1)) {
        let hi = (lo + batch_users).min(set.len());
        let seqs = left_pad(&set.histories[lo..hi], max_len, device);
        let scores = model.scores(&model.user_states(&seqs)).to_kind(Kind::Float);
        if scores.isnan().any().int64_value(&[]) != 0 {
            bail!("the ranker produced NaN scores (diverged training?)");
        }
        let history = left_pad(&set.histories[lo..hi], usize::MAX, device);
        let targets: Vec<Vec<u32>> = set.targets[lo..hi].iter().map(|&t| vec![t]).collect();
        let targets = rows_tensor(&targets, device);
        let target_score = scores.gather(1, &targets, false);
        let masked = scores
            .scatter_value(1, &history, f64::NEG_INFINITY)
            .scatter(1, &targets, &target_score);
        let cands = scores.gather(1, &rows_tensor(&set.candidates[lo..hi], device), false);
        out.full.extend(rank_of(&masked, &target_score));
        out.sampled.extend(rank_of(&cands, &target_score));
    }
    Ok(out)
}

/// Per row: candidates scored above the target plus ties other than the target itself.
fn rank_of(scores: &Tensor, target: &Tensor) -> Vec<usize> {
    let above = scores
        .gt_tensor(target)
        .sum_dim_intlist(1, false, Kind::Int64);
    let ties = scores
        .eq_tensor(target)
        .sum_dim_intlist(1, false, Kind::Int64);
    let r: Vec<i64> = (above + ties - 1)
        .to_device(Device::Cpu)
        .try_into()
        .unwrap();
    r.into_iter().map(|r| r.max(0) as usize).collect()
}

/// Both protocols' metrics of every user of `set`: `[full, sampled-100]`.
pub fn evaluate(model: &Sasrec, set: &EvalSet, device: Device) -> Result<[RankMetrics; 2]> {
    let r = ranks(model, set, device, 1024)?;
    Ok([
        RankMetrics::from_ranks(Protocol::Full, &r.full),
        RankMetrics::from_ranks(Protocol::Sampled100, &r.sampled),
    ])
}
