//! The per-arm curves and tables of notebook 05 (and `report`'s curves).

use crate::display::charts::{self, Series};
use crate::ppo::log::Sample;
use crate::ppo::run::StepLog;
use crate::sim::quality::PART_NAMES;

/// One metric per arm against the step (`metric` picks it from a log line; `None` skips it).
pub fn curves(
    title: &str,
    y: &str,
    arms: &[(String, Vec<StepLog>)],
    metric: impl Fn(&StepLog) -> Option<f64>,
) -> plotly::Plot {
    let series = arms
        .iter()
        .map(|(tag, logs)| {
            let (x, v): (Vec<f64>, Vec<f64>) = logs
                .iter()
                .filter_map(|l| metric(l).map(|m| (l.step as f64, m)))
                .unzip();
            Series::new(tag.clone(), x, v)
        })
        .collect();
    charts::lines(title, "PPO step", y, series, false, false)
}

/// The mean of each part of `q(x)` against the step, one line per arm and part
/// (docs/design.md §7.2).
pub fn quality_curves(arms: &[(String, Vec<StepLog>)]) -> plotly::Plot {
    let series = arms
        .iter()
        .flat_map(|(tag, logs)| {
            let names = std::iter::once("q").chain(PART_NAMES);
            names.enumerate().map(move |(k, name)| {
                let (x, v): (Vec<f64>, Vec<f64>) = logs
                    .iter()
                    .filter(|l| l.step > 0)
                    .map(|l| {
                        let part = match k {
                            0 => l.quality,
                            _ => l.quality_parts.named()[k - 1].1,
                        };
                        (l.step as f64, part)
                    })
                    .unzip();
                Series::new(format!("{tag}: {name}"), x, v)
            })
        })
        .collect();
    charts::lines(
        "q(x) and its parts",
        "PPO step",
        "mean over the step's rollouts",
        series,
        false,
        false,
    )
}

/// Per arm: steps, CTR at the first and last step, final KL, validation NDCG@10 at step 0 and
/// at the last evaluation (full ranking) with its change, top-10 overlap and max |δs|.
pub fn summary_table(arms: &[(String, Vec<StepLog>)]) -> crate::display::Table {
    let rows = arms
        .iter()
        .map(|(tag, logs)| {
            let steps: Vec<&StepLog> = logs.iter().filter(|l| l.step > 0).collect();
            let first = steps.first().map_or(f64::NAN, |l| l.ctr);
            let last = steps.last().map_or(f64::NAN, |l| l.ctr);
            let kl = steps.last().map_or(f64::NAN, |l| l.stats.kl);
            let d0 = logs.first().and_then(|l| l.drift.as_ref());
            let dn = logs.iter().rev().find_map(|l| l.drift.as_ref());
            let f =
                |v: Option<f64>, p: usize| v.map_or("missing".to_string(), |x| format!("{x:.p$}"));
            vec![
                tag.clone(),
                steps.len().to_string(),
                format!("{first:.4} → {last:.4}"),
                format!("{kl:.3}"),
                format!(
                    "{} → {}",
                    f(d0.map(|d| d.ndcg10), 4),
                    f(dn.map(|d| d.ndcg10), 4)
                ),
                f(dn.map(|d| d.d_ndcg10), 5),
                f(dn.map(|d| d.top10_overlap), 3),
                dn.map_or("missing".into(), |d| format!("{:.2e}", d.max_abs_ds)),
            ]
        })
        .collect();
    crate::display::Table::new(
        &[
            "arm",
            "steps",
            "CTR first → last step",
            "KL (last)",
            "valid NDCG@10 full (0 → last)",
            "ΔNDCG@10",
            "top-10 overlap",
            "max |δs|",
        ],
        rows,
    )
}

/// An arm's sample explanations: `(arm, [(step, item title, explanation)])`.
pub type ArmSamples = (String, Vec<Sample>);

/// The first and last sample explanation of each arm.
pub fn samples_table(samples: &[ArmSamples]) -> crate::display::Table {
    let mut rows = Vec::new();
    for (tag, shown) in samples {
        for (step, item, text) in [shown.first(), shown.last()].into_iter().flatten() {
            rows.push(vec![
                tag.clone(),
                step.to_string(),
                item.clone(),
                text.replace('\n', " "),
            ]);
        }
    }
    crate::display::Table::new(&["arm", "step", "item", "explanation"], rows)
}
