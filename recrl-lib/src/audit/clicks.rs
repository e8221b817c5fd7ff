//! The click panel (docs/design.md §8.5): held-out users, never drawn by PPO, each with
//! `audit.samples` sampled replies clicked by one fixed population of simulated users (step 5's
//! simulator with the split's seed). Every arm and baseline is audited on the same users with the
//! same sampling seeds, so two audits compare user by user: a paired difference, free of the
//! user-to-user spread that makes the CTR of one PPO step (a few users) noisy.

use super::{put, Explained, Metrics, Mode};
use crate::data::Dataset;
use crate::explainer::Explainer;
use crate::sim::quality::{Grader, Subject};
use crate::sim::simulator::{SimParams, SimUser};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::Tensor;

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

/// One held-out panel user's means over their sampled replies (`audit.json`'s `panel`), the unit
/// every paired comparison between two audits (an arm and `base`, or `best_of_n`) pairs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanelUser {
    /// The user.
    pub user: usize,
    /// Sampled replies averaged.
    pub replies: usize,
    /// Mean `P(click)`.
    pub ctr: f64,
    /// Mean `q(x)`.
    pub quality: f64,
    /// Share of replies the judge finds faithful.
    pub faithful: f64,
    /// Share that end a sentence.
    pub complete: f64,
    /// Share with an artefact.
    pub artefact: f64,
    /// Mean readability (Flesch reading ease).
    pub readability: f64,
}

/// One measure of a panel user: its value.
pub type Measure = fn(&PanelUser) -> f64;

/// The measures of [`PanelUser`] that two audits are compared on: name, and the user's value.
pub const PAIRED: [(&str, Measure); 5] = [
    ("panel_ctr", |p| p.ctr),
    ("judge_faithfulness", |p| p.faithful),
    ("judge_completeness", |p| p.complete),
    ("judge_artefact", |p| p.artefact),
    ("judge_readability", |p| p.readability),
];

/// The audit panel: its users (ascending, all held out), their ranker states `[n, d]` and the
/// panel's simulated user (the configured `sim` with the split's seed: one population of
/// simulated users for every arm and run seed, so that audits pair user by user).
pub struct Panel<'a> {
    /// Panel users, ascending.
    pub users: &'a [usize],
    /// Their ranker states, row k for `users[k]`.
    pub states: &'a Tensor,
    /// The panel's simulated user.
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

    /// `P(click)` of row `r` (graded) with item table `table`.
    pub fn click(&self, r: &Explained, table: &Tensor) -> f64 {
        let q = r.quality.map_or(f64::NAN, |p| p.q());
        self.sim
            .click_probability(r.user, self.score(table, r.user, r.recommended), q)
    }

    /// Best-of-N: of the sampled candidates of each (user, sample), the one with the highest
    /// `P(click)` (the training reward; the first on ties), candidates in any order. Other rows
    /// are kept as they are.
    pub fn best_of(&self, rows: Vec<Explained>, table: &Tensor) -> Vec<Explained> {
        let mut best: BTreeMap<(usize, usize), (f64, Explained)> = BTreeMap::new();
        let mut out = Vec::new();
        for r in rows {
            if r.mode != Mode::Sampled {
                out.push(r);
                continue;
            }
            let p = self.click(&r, table);
            let slot = best
                .entry((r.user, r.sample))
                .or_insert((f64::NEG_INFINITY, r.clone()));
            let better = p > slot.0 || (p == slot.0 && r.candidate < slot.1.candidate);
            if better {
                *slot = (p, r);
            }
        }
        out.extend(best.into_values().map(|(_, r)| r));
        out
    }

    /// Each panel user's means over their sampled rows: `P(click)` with `table`, `q(x)` and the
    /// judge's `verdict` of each reply.
    pub fn per_user(
        &self,
        rows: &[Explained],
        table: &Tensor,
        verdict: &dyn Fn(&Explained) -> crate::judge::Verdict,
    ) -> Vec<PanelUser> {
        let mut by_user: BTreeMap<usize, Vec<[f64; 6]>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.mode == Mode::Sampled) {
            let v = verdict(r);
            by_user.entry(r.user).or_default().push([
                self.click(r, table),
                r.quality.map_or(f64::NAN, |p| p.q()),
                f64::from(u8::from(v.faithful)),
                f64::from(u8::from(v.complete)),
                f64::from(u8::from(v.artefact)),
                v.readability,
            ]);
        }
        by_user
            .into_iter()
            .map(|(user, xs)| {
                let m = |k: usize| {
                    crate::stats::mean_or_nan(xs.iter().map(|x| x[k]).filter(|v| v.is_finite()))
                };
                PanelUser {
                    user,
                    replies: xs.len(),
                    ctr: m(0),
                    quality: m(1),
                    faithful: m(2),
                    complete: m(3),
                    artefact: m(4),
                    readability: m(5),
                }
            })
            .collect()
    }

    /// The panel's metrics from its users' means `arm`: `panel_ctr` and the judge's rates, and,
    /// given `base` (base's panel from its audit), the paired gain of each over the users both
    /// hold with its standard error and 95 % interval, and `panel_ctr_ratio`.
    pub fn measure(&self, arm: &[PanelUser], base: Option<&[PanelUser]>) -> Metrics {
        let (sp, seed) = self.params;
        let protocol = format!(
            "the panel's simulated user (alpha {}, beta_q {}, sigma_b {}, seed {seed}: the split's) on the held-out panel users' sampled replies, s(u, i) from the item table they were made with",
            sp.alpha, sp.beta_q, sp.sigma_b
        );
        let mut metrics = Metrics::new();
        let mut add = |name: &str, value: Option<f64>, definition: String| {
            put(&mut metrics, name, value, &definition)
        };
        let n = arm.len();
        add(
            "panel_users",
            Some(n as f64),
            "held-out users on the click panel".into(),
        );
        let of = |f: Measure, users: &[PanelUser]| {
            crate::stats::mean_or_nan(users.iter().map(f).filter(|v| v.is_finite()))
        };
        let definitions = [
            format!("mean over users of the mean P(click) of {protocol} ({n} users)"),
            format!(
                "share of the panel's sampled replies that are faithful: {}",
                crate::judge::FAITHFULNESS
            ),
            format!(
                "share of the panel's sampled replies that are complete: {}",
                crate::judge::COMPLETENESS
            ),
            format!(
                "share of the panel's sampled replies with an artefact: {}",
                crate::judge::ARTEFACT
            ),
            format!(
                "mean readability of the panel's sampled replies: {}",
                crate::judge::READABILITY
            ),
        ];
        for ((name, f), definition) in PAIRED.iter().zip(definitions) {
            add(name, (n > 0).then(|| of(*f, arm)), definition);
            let pair = base.and_then(|b| paired(arm, b, *f));
            add(
                &format!("{name}_gain"),
                pair.map(|p| p.mean),
                format!("mean over the panel users shared with base ({}) of {name} minus base's for the same user (same users, sampling seeds and simulated user); empty for base or without base's audit", pair.map_or(0, |p| p.n)),
            );
            add(
                &format!("{name}_gain_se"),
                pair.map(|p| p.se),
                format!(
                    "standard error of {name}_gain (sample sd of the paired differences / sqrt(n))"
                ),
            );
            add(
                &format!("{name}_gain_ci95"),
                pair.map(|p| p.ci95),
                format!("half-width of the 95 % Student-t interval of {name}_gain over users"),
            );
            if *name == "panel_ctr" {
                add(
                    "panel_ctr_ratio",
                    pair.map(|p| p.ratio),
                    "panel_ctr over base's panel_ctr on the shared users".into(),
                );
            }
        }
        add(
            "panel_quality",
            (n > 0).then(|| of(|p| p.quality, arm)),
            "mean over users of the mean q(x) of the panel's sampled replies".into(),
        );
        metrics
    }
}

/// A paired comparison of two panels over the users both hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Mean difference (arm − other).
    pub mean: f64,
    /// Its standard error.
    pub se: f64,
    /// Half-width of its 95 % Student-t interval.
    pub ci95: f64,
    /// The arm's mean over the shared users divided by the other's.
    pub ratio: f64,
    /// Shared users.
    pub n: usize,
}

/// The paired difference of measure `f` between panels `arm` and `other` over the users both
/// hold with a finite value; `None` below two users.
pub fn paired(arm: &[PanelUser], other: &[PanelUser], f: Measure) -> Option<Paired> {
    let a: BTreeMap<usize, f64> = arm
        .iter()
        .map(|p| (p.user, f(p)))
        .filter(|x| x.1.is_finite())
        .collect();
    let b: BTreeMap<usize, f64> = other
        .iter()
        .map(|p| (p.user, f(p)))
        .filter(|x| x.1.is_finite())
        .collect();
    let (mean, se, n) = paired_gain(&a, &b)?;
    let shared = |m: &BTreeMap<usize, f64>, o: &BTreeMap<usize, f64>| {
        crate::stats::mean(
            &m.iter()
                .filter(|(u, _)| o.contains_key(u))
                .map(|(_, v)| *v)
                .collect::<Vec<_>>(),
        )
    };
    Some(Paired {
        mean,
        se,
        ci95: crate::stats::t95(n - 1) * se,
        ratio: shared(&a, &b) / shared(&b, &a),
        n,
    })
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
