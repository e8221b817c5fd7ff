//! Step 3 as one call, plus the plots and tables notebook 03 and `recrl basis` show.

use super::{probe_states, states_of, Basis, BasisMeta};
use crate::config::ShieldConfig;
use crate::data::Dataset;
use crate::display::charts::{self, Series};
use crate::display::Table;
use crate::ranker::{Ranker, Split};
use anyhow::Result;
use plotly::Plot;
use std::path::Path;

/// The thresholds notebook 03 tabulates.
pub const TAUS: [f64; 4] = [0.9, 0.99, 0.999, 1.0];

/// Fits the basis of `ds`'s probe users under the frozen `ranker` and saves it in
/// `<root>/checkpoints/`; returns it with its sidecar and the probe states.
pub fn fit_and_save(
    root: &Path,
    ds: &Dataset,
    ranker: &Ranker,
    cfg: &ShieldConfig,
    seed: u64,
) -> Result<(Basis, BasisMeta, tch::Tensor)> {
    let _owner = crate::io::Owner::acquire(
        &crate::paths::owner_lock(
            &crate::paths::Layout::new(root)
                .basis_files(ds.name.as_str())
                .0,
        ),
        &format!("the shield basis of {}", ds.name.as_str()),
    )?;
    let h = probe_states(ranker, ds, cfg.probe_users, seed);
    let basis = Basis::fit(&h, cfg.tau)?;
    let meta = basis.save(
        &crate::paths::Layout::new(root).checkpoints(),
        ds.name.as_str(),
        ranker,
    )?;
    Ok((basis, meta, h))
}

/// User states at test time (history up to and including the validation item), all users.
pub fn test_time_states(ranker: &Ranker, ds: &Dataset) -> tch::Tensor {
    let users: Vec<usize> = (1..=ds.n_users()).collect();
    states_of(ranker, &users, |u| Split::Test.history(ds, u))
}

/// k for each τ of [`TAUS`], with the energy share it keeps.
pub fn k_table(basis: &Basis) -> Table {
    let total: f64 = basis.sigma.iter().map(|s| s * s).sum();
    let rows = TAUS
        .iter()
        .map(|&tau| {
            let k = super::k_for(&basis.sigma, tau);
            let kept: f64 = basis.sigma.iter().take(k).map(|s| s * s).sum();
            let chosen = if (tau - basis.tau).abs() < 1e-12 {
                " ← configured"
            } else {
                ""
            };
            vec![
                format!("{tau}{chosen}"),
                k.to_string(),
                basis.d().to_string(),
                format!("{:.6}", kept / total.max(f64::MIN_POSITIVE)),
            ]
        })
        .collect();
    Table::new(&["τ", "k", "d", "energy kept"], rows)
}

/// Singular values of the probe states, descending (log scale).
pub fn spectrum_plot(basis: &Basis) -> Plot {
    let x = (1..=basis.sigma.len()).map(|j| j as f64).collect();
    charts::lines(
        "singular values of the probe states H",
        "index j",
        "σ_j",
        vec![Series::new("σ_j", x, basis.sigma.clone())],
        false,
        true,
    )
}

/// Cumulative energy share by k, the configured τ and its k marked.
pub fn energy_plot(basis: &Basis) -> Plot {
    let total: f64 = basis
        .sigma
        .iter()
        .map(|s| s * s)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut cum = 0.0;
    let y: Vec<f64> = basis
        .sigma
        .iter()
        .map(|s| {
            cum += s * s;
            cum / total
        })
        .collect();
    let n = y.len() as f64;
    let x: Vec<f64> = (1..=y.len()).map(|j| j as f64).collect();
    let k = basis.k() as f64;
    charts::lines(
        "cumulative energy of the probe states",
        "k",
        "Σ_{j≤k} σ_j² / Σ σ_j²",
        vec![
            Series::new("cumulative energy", x, y),
            Series::new(
                format!("τ = {}", basis.tau),
                vec![1.0, n],
                vec![basis.tau, basis.tau],
            ),
            Series::new(format!("k = {}", basis.k()), vec![k, k], vec![0.0, 1.0]),
        ],
        false,
        false,
    )
}

/// Empirical CDFs of `‖P h_u‖ / ‖h_u‖` for named groups of users.
pub fn residual_plot(groups: &[(&str, Vec<f64>)]) -> Plot {
    let series = groups
        .iter()
        .map(|(name, v)| {
            let mut x = v.clone();
            x.sort_by(f64::total_cmp);
            let y = (1..=x.len()).map(|i| i as f64 / x.len() as f64).collect();
            Series::new(*name, x, y)
        })
        .collect();
    charts::lines(
        "residual share of user states outside span(B)",
        "‖P h_u‖ / ‖h_u‖",
        "share of users ≤ x",
        series,
        false,
        false,
    )
}

/// Mean, median, p95 and max of the residual shares per group.
pub fn residual_table(groups: &[(&str, Vec<f64>)]) -> Table {
    let rows = groups
        .iter()
        .map(|(name, v)| {
            let mut s = v.clone();
            s.sort_by(f64::total_cmp);
            let q = |p: f64| {
                s.get(((s.len() as f64 - 1.0) * p).round() as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
            vec![
                name.to_string(),
                s.len().to_string(),
                format!("{mean:.4}"),
                format!("{:.4}", q(0.5)),
                format!("{:.4}", q(0.95)),
                format!("{:.4}", q(1.0)),
            ]
        })
        .collect();
    Table::new(&["users", "n", "mean", "median", "p95", "max"], rows)
}
