//! Ranking drift during PPO (docs/design.md §7): the ranker's validation metrics and scores at step 0,
//! and how far the current `E` has moved them (full-ranking protocol on the validation split).

use crate::data::Dataset;
use crate::ranker::{eval, EvalSet, Ranker, Split};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

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

/// The state drift is measured against: the ranker's validation set, scores, top 10s and
/// metrics before training.
pub struct Baseline {
    set: EvalSet,
    histories: Vec<Vec<u32>>,
    scores: Tensor,
    top10: Tensor,
    metrics: (f64, f64),
}

impl Baseline {
    /// Takes the baseline from `ranker` as it is now (the validation set drawn with `seed`).
    pub fn new(ds: &Dataset, ranker: &Ranker, seed: u64) -> Result<Baseline> {
        let set = EvalSet::new(ds, Split::Valid, seed)?;
        let histories: Vec<Vec<u32>> = (1..=ds.n_users())
            .map(|u| Split::Valid.history(ds, u))
            .collect();
        let scores = ranker.scores(&histories).narrow(1, 1, ds.n_items() as i64);
        let top10 = scores.topk(10, 1, true, true).1;
        let m = eval::evaluate(&ranker.net, &set, ranker.device())?;
        Ok(Baseline {
            set,
            histories,
            scores,
            top10,
            metrics: (m[0].ndcg10, m[0].hr10),
        })
    }

    /// The drift of `ranker` (with the current `E` written into it) from the baseline.
    pub fn measure(&self, ranker: &Ranker) -> Result<Drift> {
        let m = eval::evaluate(&ranker.net, &self.set, ranker.device())?;
        let scores = ranker
            .scores(&self.histories)
            .narrow(1, 1, self.scores.size()[1]);
        let top = scores.topk(10, 1, true, true).1;
        let overlap = top
            .unsqueeze(2)
            .eq_tensor(&self.top10.unsqueeze(1))
            .any_dim(2, false)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        Ok(Drift {
            protocol: m[0].protocol.to_string(),
            ndcg10: m[0].ndcg10,
            hr10: m[0].hr10,
            d_ndcg10: m[0].ndcg10 - self.metrics.0,
            d_hr10: m[0].hr10 - self.metrics.1,
            top10_overlap: f64::try_from(overlap)?,
            max_abs_ds: f64::try_from((scores - &self.scores).abs().max())?,
        })
    }
}
