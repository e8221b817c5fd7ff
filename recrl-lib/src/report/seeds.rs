//! The seed dimension of the results (docs/design.md §8.7): the runs of one arm with different
//! seeds (`<arm>` and `<arm>_s<S>`, see [`crate::ppo::arms::Arm::named`]) pooled into
//! mean ± 95 % confidence interval across seeds (Student t, n − 1 degrees of freedom), one
//! row per dataset × arm in `experiments/seeded_results.csv`.

use super::aggregate::{mean_of, RunRecord};
use crate::audit::clicks::{paired, Measure, PanelUser};
use crate::ppo::arms::{Arm, Baseline};
use crate::ppo::StepLog;
use anyhow::Result;
use polars::prelude::*;
use std::collections::BTreeMap;

pub use crate::stats::{interval, t95};

/// The metrics pooled across seeds, with their definitions; each becomes `<name>_mean` and
/// `<name>_ci95` (the half-width) in `seeded_results.csv`.
pub const SEEDED_METRICS: &[(&str, &str)] = &[
    ("panel_ctr", "audit panel CTR, absolute (protocol 2: held-out users, audit.samples sampled replies each)"),
    ("panel_ctr_ratio", "audit panel CTR relative to base's on the same users (protocol 1: panel_ctr / (panel_ctr - panel_ctr_gain), base clicked by the run's simulated user)"),
    ("panel_ctr_gain", "audit panel CTR minus base's, paired user by user (one seed: the interval is over panel users)"),
    ("gain_over_best_of_n", "audit panel CTR minus the best_of_n baseline's, paired user by user (protocol 2; one seed: the interval is over panel users)"),
    ("faithfulness", "judge: share of the panel's sampled replies without a contradiction of the catalogue (docs/design.md §8.8)"),
    ("faithfulness_gain", "judge: faithfulness minus base's, paired user by user"),
    ("completeness", "judge: share of the panel's sampled replies that end a sentence"),
    ("completeness_gain", "judge: completeness minus base's, paired user by user"),
    ("artefact", "judge: share of the panel's sampled replies with an artefact (raw fields, list templates, digit runs)"),
    ("artefact_gain", "judge: artefact rate minus base's, paired user by user"),
    ("readability", "judge: mean Flesch reading ease of the panel's sampled replies"),
    ("quality_end", "mean q(x) over the last 10 PPO steps"),
    ("q_fluency_end", "mean fluency gate of q(x), last 10 PPO steps"),
    ("q_relevance_end", "mean MiniLM relevance part of q(x), last 10 PPO steps"),
    ("q_item_end", "mean item-mention part of q(x), last 10 PPO steps"),
    ("q_history_end", "mean history-mention part of q(x), last 10 PPO steps"),
    ("q_length_end", "mean length part of q(x), last 10 PPO steps"),
    ("ctr_end", "simulated CTR, mean of the last 10 PPO steps"),
    ("d_ndcg10", "validation NDCG@10 (full ranking) at the last evaluation minus step 0"),
    ("max_abs_d_ndcg10", "largest |ΔNDCG@10| (full ranking, validation) over every evaluation"),
    ("max_abs_ds", "largest max |δs| (the validation users' largest score change against step 0) over every evaluation"),
    ("top10_overlap_min", "smallest top-10 overlap with step 0's lists (validation users) over every evaluation"),
    ("kl_final", "KL to the reference, mean of the last 10 PPO steps"),
    ("usr", "unique sentence ratio of the greedy audit explanations"),
    ("seconds_per_step", "mean seconds of a PPO step"),
    ("steps", "PPO steps run"),
];

/// The panels a run's record is paired with, user by user, on its dataset and protocol: the
/// `base` baseline's and the `best_of_n` baseline's, when they are there.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peers<'a> {
    /// `base`'s panel.
    pub base: Option<&'a [PanelUser]>,
    /// `best_of_n`'s panel.
    pub best_of_n: Option<&'a [PanelUser]>,
}

/// The values of [`SEEDED_METRICS`] for one run, each with the half-width of its 95 % interval
/// over panel users where the audit has one (the interval a row of one seed shows). The gains
/// over base and its ratio are the audit's, or, for an audit made before base's existed, paired
/// here with `peers.base`'s panel the same way; the gain over best-of-N is paired with
/// `peers.best_of_n`. Protocol 1's panel ratio compares the run's panel CTR with base's
/// explanations clicked by the same simulated user (the run's seed), so the users' biases
/// cancel.
pub fn values(r: &RunRecord, peers: Peers) -> Vec<(Option<f64>, Option<f64>)> {
    let audit = |name: &str| r.audit.as_ref().and_then(|a| a.value(name));
    let panel = r.audit.as_ref().map(|a| a.panel.as_slice()).unwrap_or(&[]);
    let with = |other: Option<&[PanelUser]>, me: Baseline, f: Measure| {
        other
            .filter(|_| !panel.is_empty() && Baseline::named(&r.tag) != Some(me))
            .and_then(|o| paired(panel, o, f))
    };
    let over_best = with(peers.best_of_n, Baseline::BestOfN, |p| p.ctr);
    let over_base = |name: &str, f: Measure| match audit(&format!("{name}_gain")) {
        Some(g) => (Some(g), audit(&format!("{name}_gain_ci95"))),
        None => with(peers.base, Baseline::Base, f)
            .map_or((None, None), |p| (Some(p.mean), Some(p.ci95))),
    };
    let ratio = audit("panel_ctr_ratio")
        .or_else(|| with(peers.base, Baseline::Base, |p| p.ctr).map(|p| p.ratio))
        .or_else(|| {
            audit("panel_ctr")
                .zip(audit("panel_ctr_gain"))
                .map(|(ctr, gain)| ctr / (ctr - gain))
        });
    let mut out = vec![
        (audit("panel_ctr"), None),
        (ratio, None),
        over_base("panel_ctr", |p| p.ctr),
        (over_best.map(|p| p.mean), over_best.map(|p| p.ci95)),
        (audit("judge_faithfulness"), None),
        over_base("judge_faithfulness", |p| p.faithful),
        (audit("judge_completeness"), None),
        over_base("judge_completeness", |p| p.complete),
        (audit("judge_artefact"), None),
        over_base("judge_artefact", |p| p.artefact),
        (audit("judge_readability"), None),
    ];
    out.extend(step_values(r).into_iter().map(|v| (v, None)));
    out
}

/// The values of the PPO-run metrics of [`SEEDED_METRICS`] (from `quality_end` on).
fn step_values(r: &RunRecord) -> Vec<Option<f64>> {
    let (tail, steps) = (r.window(false), r.trained());
    let part = |f: fn(&StepLog) -> f64| mean_of(tail, f);
    let over_evaluations = |f: fn(&crate::ppo::Drift) -> f64, pick: fn(f64, f64) -> f64| {
        r.steps
            .iter()
            .filter_map(|l| l.drift.as_ref().map(f))
            .reduce(pick)
    };
    vec![
        part(|l| l.quality),
        part(|l| l.quality_parts.fluency),
        part(|l| l.quality_parts.relevance),
        part(|l| l.quality_parts.item),
        part(|l| l.quality_parts.history),
        part(|l| l.quality_parts.length),
        part(|l| l.ctr),
        r.first_drift().and(r.last_drift()).map(|d| d.d_ndcg10),
        over_evaluations(|d| d.d_ndcg10.abs(), f64::max),
        over_evaluations(|d| d.max_abs_ds, f64::max),
        over_evaluations(|d| d.top10_overlap, f64::min),
        part(|l| l.stats.kl),
        r.text.as_ref().map(|t| t.usr),
        mean_of(steps, |l| l.seconds),
        (!steps.is_empty()).then_some(steps.len() as f64),
    ]
}

/// The seed of a run: `run.json`'s `seed`, else the tag's `_s<S>`.
fn seed_of(r: &RunRecord) -> Option<u64> {
    r.run.as_ref().and_then(|v| v["seed"].as_u64()).or_else(|| {
        let base = Arm::base_name(&r.tag);
        r.tag.get(base.len() + 2..).and_then(|s| s.parse().ok())
    })
}

/// One row of the seeded table: a dataset × arm with the seeds it pools.
#[derive(Debug, Clone)]
pub struct SeededRow {
    /// Dataset.
    pub dataset: String,
    /// The arm (tag without `_s<S>`).
    pub arm: String,
    /// The RL algorithm of its runs (`run.json`'s `ppo.algorithm`; `ppo` when unrecorded;
    /// "none" for a baseline).
    pub algorithm: String,
    /// The audit protocol of its records (`audit.json`'s `protocol.version`; 1 when absent):
    /// rows of different protocols are never pooled.
    pub protocol: u64,
    /// Seeds of the pooled runs, in tag order ("?" when a run records none).
    pub seeds: Vec<String>,
    /// Per metric of [`SEEDED_METRICS`]: mean and 95 % half-width over the runs that have it.
    pub cells: Vec<Option<(f64, Option<f64>)>>,
}

/// The RL algorithm a run recorded in `run.json` (`ppo` when it recorded none).
fn algorithm_of(r: &RunRecord) -> String {
    r.run
        .as_ref()
        .and_then(|v| v["ppo"]["algorithm"].as_str().map(str::to_string))
        .unwrap_or_else(|| "ppo".into())
}

/// The audit protocol of a record (see [`RunRecord::protocol`]).
pub fn protocol_of(r: &RunRecord) -> u64 {
    r.protocol()
}

/// The PPO runs of `records`, and the baselines audited under protocol 2, grouped by dataset,
/// protocol, arm and algorithm (seeds pooled); protocol 1's `base` rows and runs without PPO
/// steps are left out. A row of one run shows the interval over panel users where the audit has
/// one; a row of several, the interval over seeds.
pub fn pool(records: &[RunRecord]) -> Vec<SeededRow> {
    type Key = (String, u64, String, String);
    let mut groups: BTreeMap<Key, Vec<&RunRecord>> = BTreeMap::new();
    let baseline = |r: &RunRecord| Baseline::named(&r.tag).is_some() && protocol_of(r) >= 2;
    for r in records
        .iter()
        .filter(|r| !r.steps.is_empty() || baseline(r))
    {
        let algorithm = match baseline(r) {
            true => "none".to_string(),
            false => algorithm_of(r),
        };
        let key = (
            r.dataset.clone(),
            protocol_of(r),
            Arm::base_name(&r.tag).to_string(),
            algorithm,
        );
        groups.entry(key).or_default().push(r);
    }
    let panel_of = |dataset: &str, protocol: u64, tag: Baseline| {
        records
            .iter()
            .filter(|r| r.dataset == dataset && r.tag == tag.name())
            .filter(|r| protocol_of(r) == protocol)
            .filter_map(|r| r.audit.as_ref())
            .map(|a| a.panel.as_slice())
            .find(|p| !p.is_empty())
    };
    let peers = |dataset: &str, protocol: u64| Peers {
        base: panel_of(dataset, protocol, Baseline::Base),
        best_of_n: panel_of(dataset, protocol, Baseline::BestOfN),
    };
    groups
        .into_iter()
        .map(|((dataset, protocol, arm, algorithm), runs)| {
            let per_run: Vec<_> = runs
                .iter()
                .map(|r| values(r, peers(&dataset, protocol)))
                .collect();
            let cells = (0..SEEDED_METRICS.len())
                .map(|j| {
                    let v: Vec<f64> = per_run
                        .iter()
                        .filter_map(|row| row[j].0)
                        .filter(|x| x.is_finite())
                        .collect();
                    match (interval(&v), per_run.as_slice()) {
                        (Some((m, None)), [one]) => Some((m, one[j].1)),
                        (cell, _) => cell,
                    }
                })
                .collect();
            SeededRow {
                dataset,
                arm,
                algorithm,
                protocol,
                seeds: runs
                    .iter()
                    .map(|r| seed_of(r).map_or("?".into(), |s| s.to_string()))
                    .collect(),
                cells,
            }
        })
        .collect()
}

/// The seeded table as a polars frame: `dataset`, `arm`, `algorithm`, `seeds` (`;`-separated), `n_seeds`,
/// then `<metric>_mean` and `<metric>_ci95` for each of [`SEEDED_METRICS`].
pub fn frame(rows: &[SeededRow]) -> Result<DataFrame> {
    let text = |f: &dyn Fn(&SeededRow) -> String| -> Vec<String> { rows.iter().map(f).collect() };
    let mut columns = vec![
        Column::new("dataset".into(), text(&|r| r.dataset.clone())),
        Column::new("arm".into(), text(&|r| r.arm.clone())),
        Column::new("algorithm".into(), text(&|r| r.algorithm.clone())),
        Column::new(
            "protocol".into(),
            rows.iter().map(|r| r.protocol as i64).collect::<Vec<_>>(),
        ),
        Column::new("seeds".into(), text(&|r| r.seeds.join(";"))),
        Column::new(
            "n_seeds".into(),
            rows.iter()
                .map(|r| r.seeds.len() as i64)
                .collect::<Vec<_>>(),
        ),
    ];
    for (j, (name, _)) in SEEDED_METRICS.iter().enumerate() {
        let mean: Vec<Option<f64>> = rows.iter().map(|r| r.cells[j].map(|c| c.0)).collect();
        let half: Vec<Option<f64>> = rows.iter().map(|r| r.cells[j].and_then(|c| c.1)).collect();
        columns.push(Column::new(format!("{name}_mean").into(), mean));
        columns.push(Column::new(format!("{name}_ci95").into(), half));
    }
    Ok(DataFrame::new(rows.len(), columns)?)
}

/// `mean ± half` to `p` decimals (`mean` alone for one seed, "–" when missing).
pub fn show(cell: Option<(f64, Option<f64>)>, p: usize) -> String {
    match cell {
        Some((m, Some(h))) => format!("{m:.p$} ± {h:.p$}"),
        Some((m, None)) => format!("{m:.p$}"),
        None => "–".into(),
    }
}

/// The headers of the seeded results table (README, notebook 07).
pub const HEADERS: [&str; 19] = [
    "dataset",
    "protocol",
    "arm",
    "algorithm",
    "seeds",
    "panel CTR",
    "÷ base",
    "gain over best-of-N",
    "faithful",
    "complete",
    "artefacts",
    "q(x) (last 10 steps)",
    "ΔNDCG@10 (last)",
    "max |ΔNDCG@10|",
    "max |δs|",
    "top-10 overlap (min)",
    "KL",
    "steps",
    "s / step",
];

/// The seeded results per dataset × protocol × arm: seeds, panel CTR (absolute, relative to
/// base, gain over best-of-N), the judge's rates, q(x), ΔNDCG@10 (last and largest), max |δs|,
/// the smallest top-10 overlap, KL, steps
/// and seconds a step, each mean ± 95 % CI across seeds (one seed: over panel users where the
/// audit has it).
pub fn cells(rows: &[SeededRow]) -> Vec<Vec<String>> {
    let col = |name: &str| {
        SEEDED_METRICS
            .iter()
            .position(|(n, _)| *n == name)
            .expect("seeded metric")
    };
    rows.iter()
        .map(|r| {
            let c = |name: &str, p: usize| show(r.cells[col(name)], p);
            vec![
                r.dataset.clone(),
                r.protocol.to_string(),
                r.arm.clone(),
                r.algorithm.clone(),
                r.seeds.len().to_string(),
                c("panel_ctr", 3),
                c("panel_ctr_ratio", 3),
                c("gain_over_best_of_n", 3),
                c("faithfulness", 2),
                c("completeness", 2),
                c("artefact", 2),
                c("quality_end", 3),
                c("d_ndcg10", 5),
                c("max_abs_d_ndcg10", 5),
                c("max_abs_ds", 4),
                c("top10_overlap_min", 3),
                c("kl_final", 2),
                c("steps", 0),
                c("seconds_per_step", 1),
            ]
        })
        .collect()
}

/// [`cells`] as a notebook table.
pub fn table(rows: &[SeededRow]) -> crate::display::Table {
    crate::display::Table::new(&HEADERS, cells(rows))
}

/// [`cells`] as a Markdown table (`|` in headers escaped).
pub fn markdown(rows: &[SeededRow]) -> String {
    let line = |v: Vec<String>| format!("| {} |\n", v.join(" | "));
    let mut s = line(HEADERS.iter().map(|h| h.replace('|', "\\|")).collect());
    s.push_str(&line(vec!["---".to_string(); HEADERS.len()]));
    for row in cells(rows) {
        s.push_str(&line(row));
    }
    s
}

/// Where the README keeps the seeded results table: between these two lines.
pub const README_MARKERS: (&str, &str) = (
    "<!-- seeded-results: made by `recrl aggregate --readme`; do not edit -->",
    "<!-- /seeded-results -->",
);

/// `readme` with the text between [`README_MARKERS`] replaced by `table`.
pub fn splice(readme: &str, table: &str) -> Result<String> {
    let (open, close) = README_MARKERS;
    let start = readme
        .find(open)
        .ok_or_else(|| anyhow::anyhow!("the README has no line {open:?}"))?
        + open.len();
    let end = start
        + readme[start..]
            .find(close)
            .ok_or_else(|| anyhow::anyhow!("the README has no line {close:?} after {open:?}"))?;
    Ok(format!("{}\n{table}{}", &readme[..start], &readme[end..]))
}

/// Writes the seeded results table of `rows` ([`markdown`]) into the README at `path`, between
/// its [`README_MARKERS`] (`recrl aggregate --readme`).
pub fn write_into_readme(path: &std::path::Path, rows: &[SeededRow]) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let spliced =
        splice(&text, &markdown(rows)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    crate::io::write_atomic(path, spliced.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t95_matches_closed_forms() {
        // df 1: tan(π (0.975 − ½)); df 2: (2p − 1) / √(2p(1 − p)) with p = 0.975.
        let p: f64 = 0.975;
        let t1 = (std::f64::consts::PI * (p - 0.5)).tan();
        let t2 = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
        assert!((t95(1) - t1).abs() < 5e-4 && (t95(2) - t2).abs() < 5e-4);
        assert!((1..30).all(|d| t95(d) > t95(d + 1)) && t95(31) == 1.96);
        assert!(t95(0).is_nan());
    }

    #[test]
    fn interval_by_hand() {
        // [1, 2, 3]: mean 2, sd 1, half-width t95(2) / √3.
        let (m, h) = interval(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m, 2.0);
        assert!((h.unwrap() - 4.303 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(interval(&[5.0]), Some((5.0, None)));
        assert_eq!(interval(&[]), None);
        assert_eq!(show(Some((1.23456, Some(0.1))), 2), "1.23 ± 0.10");
        assert_eq!(show(Some((1.0, None)), 1), "1.0");
    }

    #[test]
    fn splice_replaces_only_the_marked_block() {
        let (o, c) = README_MARKERS;
        let readme = format!("intro\n{o}\nold table\n{c}\nrest\n");
        let got = splice(&readme, "| new |\n").unwrap();
        assert_eq!(got, format!("intro\n{o}\n| new |\n{c}\nrest\n"));
        assert!(splice("no markers", "x")
            .unwrap_err()
            .to_string()
            .contains("seeded-results"));
    }

    #[test]
    fn the_readme_gets_the_table_between_its_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("README.md");
        let (o, c) = README_MARKERS;
        std::fs::write(&path, format!("intro\n{o}\nold table\n{c}\nrest\n")).unwrap();
        write_into_readme(&path, &[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("intro\n{o}\n{}{c}\nrest\n", markdown(&[])));
        std::fs::write(&path, "no markers").unwrap();
        let err = write_into_readme(&path, &[]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
        let gone = dir.path().join("nope.md");
        let err = write_into_readme(&gone, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("reading {}: ", gone.display())),
            "{err}"
        );
    }
}
