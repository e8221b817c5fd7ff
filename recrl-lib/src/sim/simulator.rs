//! The simulated user (the seed's "RecSim" user, docs/design.md §7):
//! `P(click) = σ(α·s(u,i) + β_q·q(x) + b_u)`, with `b_u ~ N(0, 0.3²)` fixed per user, `s(u,i)`
//! from the *current* `E`, and `q(x) ∈ [0, 1]` the grounded explanation quality of
//! [`super::quality`], which reads only the explanation (never the prompt) and pays nothing for
//! noise, length or repetition.

use crate::data::Dataset;
use crate::ranker::Ranker;
use crate::rng::Rng;

/// Simulated-user weights `z = α·s̃ + β_q·(q − ½) + b_u`: the configuration's `sim` section
/// (one type, so a run's `run.json` records exactly what was configured).
pub type SimParams = crate::config::SimConfig;

/// A population of simulated users.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// Weight α of the standardised ranker score.
    pub alpha: f64,
    /// Weight β_q of the explanation quality.
    pub beta_q: f64,
    /// `b[u]`: the fixed bias of user u (index 0 unused).
    pub bias: Vec<f64>,
    /// Mean of the step-0 top scores (`s̃ = (s − score_mean) / score_sd`).
    pub score_mean: f64,
    /// Spread of the step-0 top scores.
    pub score_sd: f64,
}

impl SimUser {
    /// `n_users` users with `b_u ~ N(0, σ_b²)` drawn from `seed` (Box–Muller); scores are used
    /// as they are until [`SimUser::standardised_by`].
    pub fn new(n_users: usize, alpha: f64, beta_q: f64, sigma_b: f64, seed: u64) -> SimUser {
        let mut rng = Rng::new(seed);
        let bias = (0..=n_users)
            .map(|_| {
                let (u1, u2) = (rng.unit().max(1e-300), rng.unit());
                sigma_b * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        SimUser {
            alpha,
            beta_q,
            bias,
            score_mean: 0.0,
            score_sd: 1.0,
        }
    }

    /// Standardises scores by the mean and (population) spread of `scores`.
    pub fn standardised_by(mut self, scores: &[f64]) -> SimUser {
        let n = scores.len().max(1) as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let sd = (scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        (self.score_mean, self.score_sd) = (mean, sd.max(1e-6));
        self
    }

    /// The users of a run on `ds` (seeded by the run's `seed`), standardised by the top-1
    /// scores of every training user under `ranker` as it is at step 0.
    pub fn for_run(ds: &Dataset, ranker: &Ranker, params: &SimParams, seed: u64) -> SimUser {
        let histories: Vec<&Vec<u32>> = ds.train.iter().filter(|h| !h.is_empty()).collect();
        let top = ranker.top_k(&histories, 1, true);
        let scores: Vec<f64> = top.iter().map(|t| t[0].1 as f64).collect();
        SimUser::new(
            ds.n_users(),
            params.alpha,
            params.beta_q,
            params.sigma_b,
            seed ^ 0x5157,
        )
        .standardised_by(&scores)
    }

    /// `P(click)` of user `u` given the score `s(u,i)` and quality `q(x)`.
    pub fn click_probability(&self, u: usize, score: f64, quality: f64) -> f64 {
        let z = self.alpha * (score - self.score_mean) / self.score_sd
            + self.beta_q * (quality - 0.5)
            + self.bias[u];
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn click_probability_is_the_logistic_of_the_weighted_sum() {
        let mut sim = SimUser::new(3, 2.0, 1.5, 0.3, 1).standardised_by(&[1.0, 3.0]);
        assert_eq!((sim.score_mean, sim.score_sd), (2.0, 1.0));
        sim.bias[1] = -0.5;
        let p = sim.click_probability(1, 2.4, 0.6);
        // z = α (s − 2)/1 + β_q (q − ½) + b_u = 0.8 + 0.15 − 0.5
        let z: f64 = 0.45;
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-12);
        let big = SimUser::new(20_000, 1.0, 1.0, 0.3, 7);
        let b = &big.bias[1..];
        let mean = b.iter().sum::<f64>() / b.len() as f64;
        let sd = (b.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / b.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.01 && (sd - 0.3).abs() < 0.01,
            "b_u ~ N(0, 0.3²): mean {mean}, sd {sd}"
        );
    }
}
