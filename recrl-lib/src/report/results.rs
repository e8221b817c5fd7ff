//! The paper's figures from the gathered runs (docs/design.md §8): ranking stability, CTR and KL
//! curves, the τ trade-off, the seeded arms' CTR and drift with their intervals, the audit table and the explanation metrics. Each is a plotly [`Plot`] for
//! notebook 07 and, through [`save_all`], standalone HTML plus SVG and PNG in `figures/`.

use super::aggregate::{mean_of, RunRecord};
use super::seeds::{SeededRow, SEEDED_METRICS};
use crate::display::charts::{self, Series};
use crate::display::figures::{save_figure, FigureFormat};
use crate::ppo::arms::curves;
use anyhow::Result;
use plotly::common::{ErrorData, ErrorType, Mode, Title};
use plotly::layout::{Axis, BarMode, GridPattern, Layout, LayoutGrid};
use plotly::traces::table::{Cells, Header};
use plotly::{Bar, Plot, Scatter, Table};
use std::path::{Path, PathBuf};

fn arms(records: &[RunRecord]) -> Vec<(String, Vec<crate::ppo::StepLog>)> {
    records
        .iter()
        .filter(|r| !r.steps.is_empty())
        .map(|r| (label(r, records), r.steps.clone()))
        .collect()
}

/// The arm's name, with the dataset when `all` spans several datasets.
fn label(r: &RunRecord, all: &[RunRecord]) -> String {
    name_in(&r.dataset, &r.tag, all)
}

/// `tag`, or `dataset/tag` when `all` spans several datasets.
fn name_in(dataset: &str, tag: &str, all: &[RunRecord]) -> String {
    if all.iter().any(|o| o.dataset != dataset) {
        format!("{dataset}/{tag}")
    } else {
        tag.to_string()
    }
}

/// ΔNDCG@10 (full ranking, validation) against the PPO step, one line per arm.
pub fn stability_plot(records: &[RunRecord]) -> Plot {
    curves(
        "Ranking stability: validation ΔNDCG@10 (full ranking) per arm",
        "ΔNDCG@10 from step 0",
        &arms(records),
        |l| l.drift.as_ref().map(|d| d.d_ndcg10),
    )
}

/// The largest change of any validation user's ranker score (max |δs| from step 0) against
/// the PPO step, one line per arm: the shield's effect shows here first.
pub fn score_shift_plot(records: &[RunRecord]) -> Plot {
    curves(
        "Ranking stability: largest score change max |δs| per arm",
        "max |δs| from step 0",
        &arms(records),
        |l| l.drift.as_ref().map(|d| d.max_abs_ds),
    )
}

/// Simulated CTR per step, one line per arm (a moving mean over `window` steps).
pub fn ctr_plot(records: &[RunRecord], window: usize) -> Plot {
    smoothed(records, window, "Simulated CTR", "CTR", |l| l.ctr)
}

/// KL to the reference policy per step, one line per arm (moving mean over `window` steps).
pub fn kl_plot(records: &[RunRecord], window: usize) -> Plot {
    smoothed(
        records,
        window,
        "KL to the reference policy",
        "KL (nats per response)",
        |l| l.stats.kl,
    )
}

fn smoothed(
    records: &[RunRecord],
    window: usize,
    title: &str,
    y: &str,
    f: impl Fn(&crate::ppo::StepLog) -> f64,
) -> Plot {
    let series = records
        .iter()
        .filter(|r| !r.trained().is_empty())
        .map(|r| {
            let steps = r.trained();
            let (x, v): (Vec<f64>, Vec<f64>) = (0..steps.len())
                .map(|k| {
                    let lo = (k + 1).saturating_sub(window.max(1));
                    let w = &steps[lo..=k];
                    (
                        steps[k].step as f64,
                        w.iter().map(&f).sum::<f64>() / w.len() as f64,
                    )
                })
                .unzip();
            Series::new(label(r, records), x, v)
        })
        .collect();
    let title = format!("{title} (moving mean of {} steps)", window.max(1));
    charts::lines(&title, "PPO step", y, series, false, false)
}

fn final_drift(r: &RunRecord) -> Option<f64> {
    r.last_drift().map(|d| d.d_ndcg10)
}

fn end_ctr(r: &RunRecord) -> Option<f64> {
    mean_of(r.window(false), |l| l.ctr)
}

/// The energy threshold τ of a shielded run, as its `run.json` records it (`shield.tau`);
/// `None` for a run that is not shielded or whose migrated record says "unknown".
fn tau_of(r: &RunRecord) -> Option<f64> {
    r.run.as_ref()?["shield"]["tau"].as_f64()
}

/// The τ trade-off: against 1 − τ (log axis) of each shielded run, its CTR over the last 10
/// steps and its final |ΔNDCG@10| × 100 (full ranking, validation); seeds are separate points.
pub fn tradeoff_plot(records: &[RunRecord]) -> Plot {
    let mut datasets: Vec<&str> = records.iter().map(|r| r.dataset.as_str()).collect();
    datasets.dedup();
    let mut series = Vec::new();
    for ds in datasets {
        let points: Vec<(f64, f64, f64)> = records
            .iter()
            .filter(|r| r.dataset == ds)
            .filter_map(|r| Some((1.0 - tau_of(r)?, end_ctr(r)?, final_drift(r)?.abs())))
            .collect();
        let x: Vec<f64> = points.iter().map(|p| p.0).collect();
        series.push(Series::new(
            format!("{ds}: CTR, last 10 steps"),
            x.clone(),
            points.iter().map(|p| p.1).collect(),
        ));
        series.push(Series::new(
            format!("{ds}: |ΔNDCG@10| × 100"),
            x,
            points.iter().map(|p| 100.0 * p.2).collect(),
        ));
    }
    charts::scatter(
        "τ trade-off: explainer reward and ranking drift against the shield's τ",
        "1 − τ (log scale; τ = energy kept by the basis)",
        "CTR / |ΔNDCG@10| × 100",
        series,
        true,
        false,
    )
}

/// The audit's headline numbers per run, as a table figure ("missing" where not measured).
pub fn audit_table_plot(records: &[RunRecord]) -> Plot {
    // (metric, column header)
    const SHOWN: [(&str, &str); 7] = [
        ("toxicity_mean", "tox. mean"),
        ("toxicity_p95", "tox. p95"),
        ("delta_gini", "Δgini"),
        ("group_gap", "group gap"),
        ("leak_rate", "leak rate"),
        ("membership_auc", "MIA AUC"),
        ("canary_exposure", "canary bits"),
    ];
    let audited: Vec<&RunRecord> = records.iter().filter(|r| r.audit.is_some()).collect();
    let mut header = vec!["arm".to_string()];
    header.extend(SHOWN.iter().map(|s| s.1.to_string()));
    header.push("policy".into());
    let mut columns = vec![audited
        .iter()
        .map(|r| label(r, records))
        .collect::<Vec<_>>()];
    for (m, _) in SHOWN {
        columns.push(
            audited
                .iter()
                .map(|r| {
                    r.audit
                        .as_ref()
                        .and_then(|a| a.value(m))
                        .map_or("missing".into(), |v| format!("{v:.4}"))
                })
                .collect(),
        );
    }
    columns.push(
        audited
            .iter()
            .map(|r| match r.audit.as_ref().map(|a| a.pass) {
                Some(true) => "pass".into(),
                _ => "FAIL".into(),
            })
            .collect(),
    );
    let mut p = Plot::new();
    p.add_trace(Table::new(Header::new(header), Cells::new(columns)));
    p.set_layout(Layout::new().title(Title::with_text("Safety audit per arm")));
    p
}

/// The explanation metrics of each arm (its seeds pooled: `<arm>_s<S>` together), as grouped
/// bars with the 95 % Student-t interval across seeds as error bars (none for one seed):
/// BLEU-4 and ROUGE-L F1 (÷ 100), distinct-2, USR, FMR and the MiniLM sentence cosine, of the
/// greedy audit explanations against their references (`text_metrics.json`).
pub fn text_metrics_plot(records: &[RunRecord]) -> Plot {
    type Metric = (&'static str, fn(&super::scores::TextReport) -> Option<f64>);
    const SHOWN: [Metric; 6] = [
        ("BLEU-4 / 100", |t| Some(t.bleu4 / 100.0)),
        ("ROUGE-L F1 / 100", |t| Some(t.rouge_l.f / 100.0)),
        ("distinct-2", |t| Some(t.distinct2)),
        ("USR", |t| Some(t.usr)),
        ("FMR", |t| Some(t.fmr)),
        ("MiniLM cosine", |t| t.embedding_cosine),
    ];
    let mut arms: Vec<(String, Vec<&super::scores::TextReport>)> = Vec::new();
    for r in records {
        let Some(t) = &r.text else { continue };
        let name = name_in(
            &r.dataset,
            crate::ppo::arms::Arm::base_name(&r.tag),
            records,
        );
        match arms.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(t),
            None => arms.push((name, vec![t])),
        }
    }
    let labels: Vec<String> = arms
        .iter()
        .map(|(n, v)| {
            format!(
                "{n} ({} seed{})",
                v.len(),
                if v.len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    let mut p = Plot::new();
    for (metric, get) in SHOWN {
        let (mut mean, mut half) = (Vec::new(), Vec::new());
        for (_, reports) in &arms {
            let values: Vec<f64> = reports.iter().filter_map(|t| get(t)).collect();
            let (m, h) = super::seeds::interval(&values).unwrap_or((f64::NAN, None));
            mean.push(m);
            half.push(h.unwrap_or(0.0));
        }
        p.add_trace(
            Bar::new(labels.clone(), mean)
                .name(metric)
                .error_y(ErrorData::new(ErrorType::Data).array(half)),
        );
    }
    p.set_layout(
        Layout::new()
            .title(Title::with_text(
                "Explanation metrics per arm (greedy audit explanations; mean ± 95 % CI over seeds)",
            ))
            .bar_mode(BarMode::Group)
            .x_axis(Axis::new().title(Title::with_text("arm")))
            .y_axis(Axis::new().title(Title::with_text("score (0–1)"))),
    );
    p
}

/// One point per row of the seeded table (dataset · arm, baselines included) with its 95 % CI
/// across seeds (over panel users for one seed, where the audit has it), in a row of panels
/// that each have their own axis: one per `(metric, panel title)`. Labels run along the y axis,
/// so they never overlap.
fn seeded_points(title: &str, rows: &[SeededRow], metrics: &[(&str, &str)]) -> Plot {
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} · {} (p{}, {} seed(s))",
                r.dataset,
                r.arm,
                r.protocol,
                r.seeds.len()
            )
        })
        .collect();
    let mut p = Plot::new();
    let mut layout = Layout::new()
        .title(Title::with_text(title))
        .show_legend(false)
        .height(220 + 40 * rows.len())
        .width(1100)
        .grid(
            LayoutGrid::new()
                .rows(1)
                .columns(metrics.len())
                .pattern(GridPattern::Independent),
        );
    for (k, (metric, name)) in metrics.iter().enumerate() {
        let j = SEEDED_METRICS
            .iter()
            .position(|(n, _)| n == metric)
            .expect("a seeded metric");
        let (mut y, mut x, mut half) = (Vec::new(), Vec::new(), Vec::new());
        for (r, label) in rows.iter().zip(&labels) {
            if let Some((mean, ci)) = r.cells[j] {
                y.push(label.clone());
                x.push(mean);
                half.push(ci.unwrap_or(0.0));
            }
        }
        let axis = |a: &str| {
            if k == 0 {
                a.to_string()
            } else {
                format!("{a}{}", k + 1)
            }
        };
        p.add_trace(
            Scatter::new(x, y)
                .mode(Mode::Markers)
                .name(*name)
                .error_x(ErrorData::new(ErrorType::Data).array(half))
                .x_axis(axis("x"))
                .y_axis(axis("y")),
        );
        let x_axis = Axis::new().title(Title::with_text(*name));
        let y_axis = Axis::new()
            .show_tick_labels(k == 0)
            .auto_margin(true)
            .auto_range(true);
        layout = match k {
            0 => layout.x_axis(x_axis).y_axis(y_axis),
            1 => layout.x_axis2(x_axis).y_axis2(y_axis),
            2 => layout.x_axis3(x_axis).y_axis3(y_axis),
            _ => layout.x_axis4(x_axis).y_axis4(y_axis),
        };
    }
    p.set_layout(layout);
    p
}

/// The seeded results' explanations: panel CTR (absolute), its ratio to base's and its gain
/// over best-of-N, each mean ± 95 % CI per dataset · arm (issue 31).
pub fn seeded_ctr_plot(rows: &[SeededRow]) -> Plot {
    seeded_points(
        "Held-out panel CTR per arm (mean ± 95 % CI)",
        rows,
        &[
            ("panel_ctr", "panel CTR"),
            ("panel_ctr_ratio", "÷ base"),
            ("gain_over_best_of_n", "gain over best-of-N"),
        ],
    )
}

/// The seeded results' ranking drift, on the measures that separate the arms: max |δs|, the
/// smallest top-10 overlap and the largest |ΔNDCG@10| (validation, full ranking), each mean ±
/// 95 % CI per dataset · arm.
pub fn seeded_drift_plot(rows: &[SeededRow]) -> Plot {
    let runs: Vec<SeededRow> = rows
        .iter()
        .filter(|r| r.algorithm != "none")
        .cloned()
        .collect();
    seeded_points(
        "Ranking drift per arm (mean ± 95 % CI over seeds)",
        &runs,
        &[
            ("max_abs_ds", "max |δs|"),
            ("top10_overlap_min", "top-10 overlap (min)"),
            ("max_abs_d_ndcg10", "max |ΔNDCG@10|"),
        ],
    )
}

/// Every figure as `(file name, plot)`.
pub fn all_figures(records: &[RunRecord]) -> Vec<(&'static str, Plot)> {
    let seeded = super::seeds::pool(records);
    vec![
        ("ranking_stability", stability_plot(records)),
        ("ctr_curves", ctr_plot(records, 10)),
        ("kl_curves", kl_plot(records, 10)),
        ("tau_tradeoff", tradeoff_plot(records)),
        ("arms_ctr", seeded_ctr_plot(&seeded)),
        ("arms_drift", seeded_drift_plot(&seeded)),
        ("audit_table", audit_table_plot(records)),
        ("text_metrics", text_metrics_plot(records)),
    ]
}

/// Writes every figure into `dir` as HTML (plotly.js embedded) and, when `statics`, SVG and
/// PNG (kaleido, offline). Returns the files written.
pub fn save_all(records: &[RunRecord], dir: &Path, statics: bool) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let formats: &[FigureFormat] = if statics {
        &[FigureFormat::Html, FigureFormat::Svg, FigureFormat::Png]
    } else {
        &[FigureFormat::Html]
    };
    let mut out = Vec::new();
    for (name, plot) in all_figures(records) {
        out.extend(save_figure(&plot, dir, name, formats)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::StepLog;

    fn record(tag: &str, shifts: &[(usize, f64)]) -> RunRecord {
        let steps = shifts
            .iter()
            .map(|&(step, ds)| StepLog {
                step,
                drift: Some(
                    serde_json::from_value(serde_json::json!({
                        "protocol": "full", "ndcg10": 0.1, "hr10": 0.2, "d_ndcg10": 0.0,
                        "d_hr10": 0.0, "top10_overlap": 1.0, "max_abs_ds": ds,
                    }))
                    .unwrap(),
                ),
                ..Default::default()
            })
            .collect();
        RunRecord {
            dataset: "ml-100k".into(),
            tag: tag.into(),
            steps,
            run: None,
            audit: None,
            text: None,
        }
    }

    #[test]
    fn the_score_shift_plot_draws_each_arms_max_abs_ds_against_the_step() {
        let records = [
            record("shielded", &[(0, 0.0), (10, 0.002)]),
            record("no_proj", &[(0, 0.0), (10, 0.05), (20, 0.12)]),
        ];
        let v: serde_json::Value =
            serde_json::from_str(&score_shift_plot(&records).to_json()).unwrap();
        let traces = v["data"].as_array().unwrap();
        assert_eq!(traces.len(), 2);
        assert_eq!(traces[0]["name"], "shielded");
        assert_eq!(traces[1]["x"], serde_json::json!([0.0, 10.0, 20.0]));
        assert_eq!(traces[1]["y"], serde_json::json!([0.0, 0.05, 0.12]));
    }
}
