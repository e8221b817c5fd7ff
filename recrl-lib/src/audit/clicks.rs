//! The simulated user of step 5 (docs/design.md §7) clicking on the audit set's sampled explanations.
//! The audit set is one fixed panel of users for every arm, so an arm's CTR is compared with
//! `base`'s user by user: a paired difference, free of the user-to-user spread that makes the
//! CTR of one PPO step (a few users) noisy.

use super::{put, Explained, Metrics, Mode};
use crate::config::Config;
use crate::data::Dataset;
use crate::explainer::Explainer;
use crate::sim::quality::{Grader, QualityParts, Subject};
use crate::sim::simulator::{SimParams, SimUser};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// `(P(click), q(x))` per user of the sampled explanations in `rows`; `score(u, i)` is `s(u, i)`
/// under the item table the explanations were made with. `q(x)` is the row's graded quality
/// ([`grade`]); an ungraded row gets NaN.
pub fn clicks(rows: &[Explained], sim: &SimUser, score: &dyn Fn(usize, u32) -> f64) -> Clicks {
    rows.iter()
        .filter(|r| r.mode == Mode::Sampled)
        .map(|r| {
            let q = r.quality.map_or(f64::NAN, |p| p.q());
            let p = sim.click_probability(r.user, score(r.user, r.recommended), q);
            (r.user, (p, q))
        })
        .collect()
}

/// Grades the explanation of each of `rows` with `grader` (the reference model is `ex` with
/// LoRA off) and keeps the parts of `q(x)` in the row.
pub fn grade(
    grader: &Grader,
    ex: &mut Explainer,
    ds: &Dataset,
    rows: &mut [Explained],
) -> Result<()> {
    let subjects: Vec<Subject> = rows
        .iter()
        .map(|r| Subject {
            text: &r.explanation,
            item: r.recommended,
            history: &r.history,
        })
        .collect();
    let parts = grader.grade(ex, ds, &subjects)?;
    for (r, p) in rows.iter_mut().zip(parts) {
        r.quality = Some(p);
    }
    Ok(())
}

/// The mean of `arm[u] − base[u]` over the users both hold, its standard error (sample
/// standard deviation of the differences / √n) and n; `None` below two shared users.
pub fn paired_gain(
    arm: &BTreeMap<usize, f64>,
    base: &BTreeMap<usize, f64>,
) -> Option<(f64, f64, usize)> {
    let d: Vec<f64> = arm
        .iter()
        .filter_map(|(u, a)| base.get(u).map(|b| a - b))
        .collect();
    let n = d.len();
    if n < 2 {
        return None;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((mean, (var / n as f64).sqrt(), n))
}

/// The simulator of the run in `log_dir` (`run.json`'s `sim` and `seed`), else the configured
/// one (`sim` section) with `cfg.seed` (the `base` tag, which has no run).
pub fn run_simulator(log_dir: &Path, cfg: &Config) -> Result<(SimParams, u64)> {
    let path = log_dir.join(crate::paths::files::RUN);
    if !path.is_file() {
        return Ok((cfg.sim.clone(), cfg.seed));
    }
    let run: serde_json::Value = crate::io::read_json(&path)?;
    let sim = serde_json::from_value(run["sim"].clone())
        .with_context(|| format!("{}: field `sim`", path.display()))?;
    let seed = run["seed"]
        .as_u64()
        .with_context(|| format!("{}: field `seed` is not an integer", path.display()))?;
    Ok((sim, seed))
}

/// The audit panel: its users (ascending), their ranker states `[n, d]` and the run's
/// simulated user.
pub struct Panel<'a> {
    /// Audit users, ascending.
    pub users: &'a [usize],
    /// Their ranker states, row k for `users[k]`.
    pub states: &'a Tensor,
    /// The run's simulated user.
    pub sim: &'a SimUser,
    /// Its parameters and seed, for the definitions.
    pub params: (&'a SimParams, u64),
}

impl Panel<'_> {
    /// `s(u, i)` with item table `table`; NaN for a user outside the panel.
    fn score(&self, table: &Tensor, u: usize, i: u32) -> f64 {
        let Ok(k) = self.users.binary_search(&u) else {
            return f64::NAN;
        };
        let k = k as i64;
        let item = table.get(i as i64).to_device(self.states.device());
        tch::no_grad(|| f64::try_from(self.states.get(k).dot(&item))).unwrap_or(f64::NAN)
    }

    fn probabilities(&self, rows: &[Explained], table: &Tensor) -> Clicks {
        clicks(rows, self.sim, &|u, i| self.score(table, u, i))
    }

    /// `panel_ctr`, `panel_quality` and, given `base` (its rows and item table), the paired
    /// `panel_ctr_gain` and its standard error.
    pub fn measure(
        &self,
        rows: &[Explained],
        table: &Tensor,
        base: Option<(&[Explained], &Tensor)>,
    ) -> Metrics {
        let (sp, seed) = self.params;
        let protocol = format!(
            "the step-5 simulated user (alpha {}, beta_q {}, sigma_b {}, seed {seed}) on the audit users' sampled explanations, s(u, i) from the item table they were made with",
            sp.alpha, sp.beta_q, sp.sigma_b
        );
        let arm = self.probabilities(rows, table);
        let gain = base.and_then(|(rows, table)| {
            paired_gain(&first(&arm), &first(&self.probabilities(rows, table)))
        });
        let mut metrics = Metrics::new();
        let mut add = |name: &str, value: Option<f64>, definition: String| {
            put(&mut metrics, name, value, &definition)
        };
        let (n, any) = (arm.len(), !arm.is_empty());
        add(
            "panel_ctr",
            any.then(|| super::mean(&arm.values().map(|v| v.0).collect::<Vec<_>>())),
            format!("mean P(click) of {protocol} ({n} users)"),
        );
        add(
            "panel_quality",
            any.then(|| super::mean(&arm.values().map(|v| v.1).collect::<Vec<_>>())),
            "mean q(x) of the audit users' sampled explanations".into(),
        );
        let parts: Vec<QualityParts> = rows
            .iter()
            .filter(|r| r.mode == Mode::Sampled)
            .filter_map(|r| r.quality)
            .collect();
        let mean = QualityParts::mean(&parts);
        for (name, value) in [("fluency", mean.fluency), ("relevance", mean.relevance)] {
            add(
                &format!("panel_q_{name}"),
                (!parts.is_empty()).then_some(value),
                format!("mean {name} part of q(x) of the audit users' sampled explanations"),
            );
        }
        add(
            "panel_ctr_gain",
            gain.map(|g| g.0),
            format!("mean over the audit users ({} shared with base) of P(click) minus the same user's P(click) for the base tag's sampled explanation (LoRA at B = 0, initial W_p and E: step 0), both by {protocol}; empty for base or without base's explanations", gain.map_or(0, |g| g.2)),
        );
        add(
            "panel_ctr_gain_se",
            gain.map(|g| g.1),
            "standard error of panel_ctr_gain (sample sd of the paired differences / sqrt(n))"
                .into(),
        );
        metrics
    }
}

/// `(P(click), q(x))` by user.
pub type Clicks = BTreeMap<usize, (f64, f64)>;

fn first(c: &Clicks) -> BTreeMap<usize, f64> {
    c.iter().map(|(u, v)| (*u, v.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_gain_by_hand() {
        let arm: BTreeMap<usize, f64> = [(1, 0.7), (2, 0.5), (3, 0.9), (9, 0.1)].into();
        let base: BTreeMap<usize, f64> = [(1, 0.6), (2, 0.5), (3, 0.6), (4, 0.2)].into();
        // Shared users 1, 2, 3: differences 0.1, 0, 0.3; mean 0.4/3; sample variance
        // ((0.1 − m)² + m² + (0.3 − m)²)/2 = 0.0233…; se = √(var/3).
        let (mean, se, n) = paired_gain(&arm, &base).unwrap();
        let m = 0.4 / 3.0;
        let var = ((0.1 - m) * (0.1 - m) + m * m + (0.3 - m) * (0.3 - m)) / 2.0;
        assert_eq!(n, 3);
        assert!((mean - m).abs() < 1e-12);
        assert!((se - (var / 3.0).sqrt()).abs() < 1e-12);
        assert!((var - 0.07 / 3.0).abs() < 1e-12);
        let lone: BTreeMap<usize, f64> = [(1, 0.3)].into();
        assert_eq!(paired_gain(&lone, &base), None);
    }
}
