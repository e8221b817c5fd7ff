//! Step 7: every run folder `logs/<ds>/<tag>/` gathered into one table
//! (`experiments/aggregate_results.csv`, one row per dataset × arm, built with polars) and a
//! LaTeX table (`experiments/main_results.tex`). What a run folder lacks stays empty in the
//! CSV, "--" in LaTeX, and is named in the `missing` column: nothing is filled with defaults.

use super::scores::TextReport;
use crate::audit::AuditReport;
use crate::ppo::StepLog;
use anyhow::{Context, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Everything one run folder holds.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Dataset name (the folder under `logs/`).
    pub dataset: String,
    /// Arm tag (the run folder's name).
    pub tag: String,
    /// `metrics.jsonl` (step 5), empty when the arm has no PPO run (e.g. `base`).
    pub steps: Vec<StepLog>,
    /// `run.json` (the run's options, device and wall time).
    pub run: Option<serde_json::Value>,
    /// `audit.json` (step 6).
    pub audit: Option<AuditReport>,
    /// `text_metrics.json` (step 7).
    pub text: Option<TextReport>,
}

impl RunRecord {
    /// Reads the run folder `dir` (any of its files may be absent); `None` when it holds none
    /// of them, e.g. `logs/<ds>/ranker/`.
    pub fn read(dataset: &str, tag: &str, dir: &Path) -> Result<Option<RunRecord>> {
        let file = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
        let (metrics, run, audit, text) = (
            file(crate::paths::files::METRICS),
            file(crate::paths::files::RUN),
            file(crate::paths::files::AUDIT),
            file(crate::paths::files::TEXT_METRICS),
        );
        if metrics.is_none() && audit.is_none() && text.is_none() {
            return Ok(None);
        }
        Ok(Some(RunRecord {
            dataset: dataset.into(),
            tag: tag.into(),
            steps: metrics
                .map(|p| crate::io::read_json_lines(&p))
                .transpose()?
                .unwrap_or_default(),
            run: run.map(|p| read_checked(&p, &run_fields)).transpose()?,
            audit: audit
                .map(|p| {
                    read_checked(&p, &|_| vec!["config", "provenance"])?;
                    AuditReport::read(&p)
                })
                .transpose()?,
            text: text.map(|p| super::scores::read(&p)).transpose()?,
        }))
    }

    /// The audit protocol of its `audit.json` (`protocol.version`; 1 without one, the records
    /// made before issue 28).
    pub fn protocol(&self) -> u64 {
        self.audit
            .as_ref()
            .and_then(|a| a.protocol["version"].as_u64())
            .unwrap_or(1)
    }

    /// The PPO steps (step 0, the evaluation before training, left out).
    pub fn trained(&self) -> &[StepLog] {
        let skip = self.steps.iter().take_while(|l| l.step == 0).count();
        &self.steps[skip..]
    }

    /// The first (`start`) or last [`CTR_WINDOW`] PPO steps (all of them when fewer).
    pub fn window(&self, start: bool) -> &[StepLog] {
        let s = self.trained();
        let w = CTR_WINDOW.min(s.len());
        if start {
            &s[..w]
        } else {
            &s[s.len() - w..]
        }
    }

    /// The drift measured before training (step 0).
    pub fn first_drift(&self) -> Option<&crate::ppo::Drift> {
        self.steps
            .first()
            .filter(|l| l.step == 0)
            .and_then(|l| l.drift.as_ref())
    }

    /// The last drift measured.
    pub fn last_drift(&self) -> Option<&crate::ppo::Drift> {
        self.steps.iter().rev().find_map(|l| l.drift.as_ref())
    }
}

/// The fields of a `run.json` that step 7 reads: the seed, the coupling, the PPO settings, the
/// resolved configuration, the provenance, and the shield's τ and k for a shielded run.
fn run_fields(run: &serde_json::Value) -> Vec<&'static str> {
    let mut need = vec!["seed", "coupled", "ppo", "config", "provenance"];
    if run["coupled"] == "shielded" {
        need.push("shield");
    }
    need
}

/// Reads a record file and checks that it has the fields `need` names for it: a missing one is
/// an error naming the file and the field, never a guess. Records made before issue 30 are
/// migrated by `scripts/migrate_records.py`, which writes `"unknown"` where nothing recorded
/// the value.
fn read_checked(
    path: &Path,
    need: &dyn Fn(&serde_json::Value) -> Vec<&'static str>,
) -> Result<serde_json::Value> {
    let v: serde_json::Value = crate::io::read_json(path)?;
    for field in need(&v) {
        anyhow::ensure!(
            v.get(field).is_some_and(|x| !x.is_null()),
            "{}: field `{field}` is missing (a record from before issue 30: migrate it with scripts/migrate_records.py)",
            path.display()
        );
    }
    Ok(v)
}

/// Every run folder under `logs_dir` (`<ds>/<tag>/`), sorted by dataset and tag.
pub fn discover(logs_dir: &Path) -> Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for ds in sorted_dirs(logs_dir)? {
        for tag in sorted_dirs(&ds)? {
            let name = |p: &Path| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            };
            if let Some(r) = RunRecord::read(&name(&ds), &name(&tag), &tag)? {
                out.push(r);
            }
        }
    }
    Ok(out)
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Hidden folders are not runs (e.g. `.replaced/`, earlier runs moved aside).
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Steps averaged at each end of a run for the start and end CTR.
pub const CTR_WINDOW: usize = 10;

/// A cell of the results table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A number (`None`: missing).
    Num(Option<f64>),
    /// A count (`None`: missing).
    Int(Option<i64>),
    /// Text (`None`: missing).
    Text(Option<String>),
}

/// The columns of `aggregate_results.csv`, with their definitions.
pub const COLUMNS: &[(&str, &str)] = &[
    ("dataset", "dataset name"),
    ("arm", "run tag (the baselines base, base_no_soft, template, best_of_n: no RL, the step-4 checkpoint)"),
    ("protocol", "ranking protocol of the NDCG/HR columns: full ranking over all items minus the history, validation split"),
    ("ndcg10_before", "validation NDCG@10 at step 0"),
    ("ndcg10_after", "validation NDCG@10 at the last evaluation"),
    ("d_ndcg10", "ndcg10_after - ndcg10_before"),
    ("hr10_before", "validation HR@10 at step 0"),
    ("hr10_after", "validation HR@10 at the last evaluation"),
    ("top10_overlap", "share of each user's top 10 still in the step-0 top 10 (last evaluation)"),
    ("max_abs_ds", "largest |change of score| over validation users x items (last evaluation)"),
    ("ctr_start", "simulated CTR, mean of the first 10 PPO steps"),
    ("ctr_end", "simulated CTR, mean of the last 10 PPO steps"),
    ("ctr_slope", "least-squares slope of the simulated CTR over all PPO steps, per 100 steps"),
    ("ctr_slope_se", "standard error of ctr_slope (independent residuals, n - 2 degrees of freedom)"),
    ("panel_ctr", "simulated CTR of the panel's sampled explanations (protocol 2: held-out users, one fixed panel and simulated user for every arm; audit)"),
    ("panel_ctr_gain", "panel_ctr minus base's, paired user by user (audit)"),
    ("panel_ctr_gain_se", "standard error of panel_ctr_gain (audit)"),
    ("panel_ctr_ratio", "panel_ctr over base's on the shared panel users (audit, protocol ≥ 2)"),
    ("audit_protocol", "the audit's protocol: 1 = 100 seeded training users, one sampled reply each, the run's own simulated user; 2 = the held-out panel (docs/design.md §8.5); 3 = the held-out panel under the reward with form gates and the fixed KL anchor (issue 31: the judge's faithfulness, completeness and artefact rates are shared with the reward)"),
    ("judge_faithfulness", "judge: share of the panel's sampled replies without a contradiction of the catalogue (audit, protocol ≥ 2)"),
    ("judge_completeness", "judge: share that end a sentence (audit, protocol ≥ 2)"),
    ("judge_artefact", "judge: share with an artefact: raw fields, list templates, digit runs (audit, protocol ≥ 2)"),
    ("judge_readability", "judge: mean Flesch reading ease (audit, protocol ≥ 2)"),
    ("kl_final", "KL to the reference policy, mean of the last 10 PPO steps"),
    ("shield_removed", "mean share of each E update removed by the shield"),
    ("bleu1", "corpus BLEU-1 (sacrebleu 13a), greedy explanations vs references, 0-100"),
    ("bleu4", "corpus BLEU-4 (sacrebleu 13a), 0-100"),
    ("rouge1_f", "mean ROUGE-1 F1 (rouge-score), 0-100"),
    ("rouge2_f", "mean ROUGE-2 F1, 0-100"),
    ("rougeL_f", "mean ROUGE-L F1, 0-100"),
    ("distinct1", "distinct unigrams / unigrams"),
    ("distinct2", "distinct bigrams / bigrams"),
    ("usr", "unique sentence ratio"),
    ("fmr", "feature matching ratio"),
    ("fcr", "feature coverage ratio"),
    ("div", "feature diversity (mean shared features per pair, lower = more diverse)"),
    ("embedding_cosine", "mean MiniLM sentence-embedding cosine to the reference"),
    ("bertscore_f1", "mean BERTScore-style F1 with MiniLM token states"),
    ("references", "what the text metrics compare against"),
    ("toxicity_mean", "mean lexicon toxicity score (audit)"),
    ("toxicity_p95", "95th percentile of the toxicity score (audit)"),
    ("delta_gini", "change of the Gini index of top-10 exposure vs before RL (audit)"),
    ("group_gap", "largest gap of mean quality between user groups (audit)"),
    ("leak_rate", "share of explanations naming a title from another user's history (audit)"),
    ("pii_rate", "share of explanations with personal-data patterns (audit)"),
    ("membership_auc", "AUC of the loss-threshold membership attack (audit)"),
    ("canary_exposure", "mean canary exposure in bits (audit)"),
    ("audit_pass", "all policy thresholds pass (audit)"),
    ("steps", "PPO steps run"),
    ("wall_s", "seconds of the PPO steps, summed"),
    ("device", "device of the PPO run"),
    ("missing", "what the run folder lacks, separated by `;`: run (no folder), ppo, audit, text"),
];

/// The audits of `records` that hold a held-out panel (audit protocol 2), in their order: what
/// `audit::view::judge_plot` and `side_by_side` compare.
pub fn panel_audits(records: &[RunRecord]) -> Vec<&AuditReport> {
    records
        .iter()
        .filter_map(|r| r.audit.as_ref())
        .filter(|a| !a.panel.is_empty())
        .collect()
}

/// Mean of `f` over `steps` (`None` for no steps).
pub fn mean_of(steps: &[StepLog], f: impl Fn(&StepLog) -> f64) -> Option<f64> {
    (!steps.is_empty()).then(|| steps.iter().map(f).sum::<f64>() / steps.len() as f64)
}

/// Least-squares slope of `y` on `x` and its standard error `√(σ̂² / Sxx)` with
/// `σ̂² = Σ residual² / (n − 2)`; `None` for fewer than 3 points or a constant `x`.
pub fn ols_slope(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (mx, my) = (
        x.iter().sum::<f64>() / n as f64,
        y.iter().sum::<f64>() / n as f64,
    );
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    let ssr: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (b - my - slope * (a - mx)).powi(2))
        .sum();
    Some((slope, (ssr / (n - 2) as f64 / sxx).sqrt()))
}

/// The row of one run (see [`COLUMNS`]).
pub fn row(r: &RunRecord) -> Vec<Cell> {
    let steps = r.trained();
    let (head, tail) = (r.window(true), r.window(false));
    let (d0, dn) = (r.first_drift(), r.last_drift());
    let x: Vec<f64> = steps.iter().map(|l| l.step as f64).collect();
    let y: Vec<f64> = steps.iter().map(|l| l.ctr).collect();
    let slope = ols_slope(&x, &y);
    let num = Cell::Num;
    let text = |f: &dyn Fn(&TextReport) -> f64| num(r.text.as_ref().map(f));
    let audit = |name: &str| num(r.audit.as_ref().and_then(|a| a.value(name)));
    let mut missing = Vec::new();
    for (absent, what) in [
        (r.steps.is_empty(), "ppo"),
        (r.audit.is_none(), "audit"),
        (r.text.is_none(), "text"),
    ] {
        if absent {
            missing.push(what);
        }
    }
    let device = r
        .run
        .as_ref()
        .and_then(|v| v["device"].as_str().map(str::to_string));
    vec![
        Cell::Text(Some(r.dataset.clone())),
        Cell::Text(Some(r.tag.clone())),
        Cell::Text(dn.map(|d| d.protocol.clone())),
        num(d0.map(|d| d.ndcg10)),
        num(dn.map(|d| d.ndcg10)),
        num(d0.and(dn).map(|d| d.d_ndcg10)),
        num(d0.map(|d| d.hr10)),
        num(dn.map(|d| d.hr10)),
        num(dn.map(|d| d.top10_overlap)),
        num(dn.map(|d| d.max_abs_ds)),
        num(mean_of(head, |l| l.ctr)),
        num(mean_of(tail, |l| l.ctr)),
        num(slope.map(|(b, _)| 100.0 * b)),
        num(slope.map(|(_, se)| 100.0 * se)),
        audit("panel_ctr"),
        audit("panel_ctr_gain"),
        audit("panel_ctr_gain_se"),
        audit("panel_ctr_ratio"),
        Cell::Int(r.audit.as_ref().map(|_| r.protocol() as i64)),
        audit("judge_faithfulness"),
        audit("judge_completeness"),
        audit("judge_artefact"),
        audit("judge_readability"),
        num(mean_of(tail, |l| l.stats.kl)),
        num(mean_of(steps, |l| l.shield_removed)),
        text(&|t| t.bleu1),
        text(&|t| t.bleu4),
        text(&|t| t.rouge1.f),
        text(&|t| t.rouge2.f),
        text(&|t| t.rouge_l.f),
        text(&|t| t.distinct1),
        text(&|t| t.distinct2),
        text(&|t| t.usr),
        text(&|t| t.fmr),
        text(&|t| t.fcr),
        text(&|t| t.div),
        num(r.text.as_ref().and_then(|t| t.embedding_cosine)),
        num(r.text.as_ref().and_then(|t| t.bertscore_f1)),
        Cell::Text(r.text.as_ref().map(|t| t.references.clone())),
        audit("toxicity_mean"),
        audit("toxicity_p95"),
        audit("delta_gini"),
        audit("group_gap"),
        audit("leak_rate"),
        audit("pii_rate"),
        audit("membership_auc"),
        audit("canary_exposure"),
        Cell::Text(r.audit.as_ref().map(|a| a.pass.to_string())),
        Cell::Int((!steps.is_empty()).then_some(steps.len() as i64)),
        num(mean_of(steps, |l| l.seconds).map(|m| m * steps.len() as f64)),
        Cell::Text(device),
        Cell::Text((!missing.is_empty()).then(|| missing.join(";"))),
    ]
}

/// The results table as a polars frame: one row per run, plus a row per expected
/// `(dataset, arm)` that has no run folder, not even of a variant (`shielded_grpo_g4_s2` counts
/// for `shielded`: [`crate::ppo::arms::Arm::family`]; everything empty, `missing` = "run").
pub fn frame(records: &[RunRecord], expected: &[(String, String)]) -> Result<DataFrame> {
    let mut rows: Vec<Vec<Cell>> = records.iter().map(row).collect();
    let family = crate::ppo::arms::Arm::family;
    for (ds, arm) in expected {
        if !records
            .iter()
            .any(|r| &r.dataset == ds && (&r.tag == arm || family(&r.tag) == arm))
        {
            let mut empty = vec![Cell::Num(None); COLUMNS.len()];
            empty[0] = Cell::Text(Some(ds.clone()));
            empty[1] = Cell::Text(Some(arm.clone()));
            empty[COLUMNS.len() - 1] = Cell::Text(Some("run".into()));
            rows.push(empty);
        }
    }
    let columns: Vec<Column> = COLUMNS
        .iter()
        .enumerate()
        .map(|(j, (name, _))| {
            let name = PlSmallStr::from(*name);
            let kind = rows
                .iter()
                .map(|r| &r[j])
                .find(|c| !matches!(c, Cell::Num(None)));
            match kind {
                Some(Cell::Text(_)) => Column::new(
                    name,
                    column(&rows, j, |c| match c {
                        Cell::Text(t) => t.clone(),
                        _ => None,
                    }),
                ),
                Some(Cell::Int(_)) => Column::new(
                    name,
                    column(&rows, j, |c| match c {
                        Cell::Int(x) => *x,
                        _ => None,
                    }),
                ),
                _ => Column::new(
                    name,
                    column(&rows, j, |c| match c {
                        Cell::Num(x) => x.filter(|x| x.is_finite()),
                        _ => None,
                    }),
                ),
            }
        })
        .collect();
    Ok(DataFrame::new(rows.len(), columns)?)
}

fn column<T>(rows: &[Vec<Cell>], j: usize, get: impl Fn(&Cell) -> Option<T>) -> Vec<Option<T>> {
    rows.iter().map(|r| get(&r[j])).collect()
}

/// Writes `df` as CSV to `path` atomically (missing values as empty fields).
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let tmp = crate::io::temp_beside(path, ".csv")?;
    CsvWriter::new(tmp.as_file())
        .include_header(true)
        .with_float_precision(Some(6))
        .finish(df)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    crate::io::persist(tmp, path)
}

/// The paper's main table in LaTeX (booktabs): per dataset × arm, NDCG@10 before → after
/// with its change, CTR start → end, KL, BLEU-4, ROUGE-L, USR, toxicity and leak rate.
/// Missing values print as "--".
pub fn latex(records: &[RunRecord]) -> String {
    let f = |c: &Cell, p: usize| match c {
        Cell::Num(Some(x)) if x.is_finite() => format!("{x:.p$}"),
        Cell::Text(Some(t)) => t.replace('_', "\\_"),
        _ => "--".into(),
    };
    let col = |name: &str| {
        COLUMNS
            .iter()
            .position(|(n, _)| *n == name)
            .expect("column")
    };
    let mut s = String::from(
        "% Made by `recrl aggregate` from logs/<dataset>/<arm>/; NDCG@10 is full ranking on the validation split.\n\
         \\begin{tabular}{llrrrrrrrrrrr}\n\\toprule\n\
         Dataset & Arm & NDCG@10 & after & $\\Delta$NDCG@10 & CTR & after & $\\Delta$CTR (panel) & KL & BLEU-4 & ROUGE-L & USR & Tox. \\\\\n\\midrule\n",
    );
    for r in records {
        let row = row(r);
        let cells = [
            f(&row[col("dataset")], 0),
            f(&row[col("arm")], 0),
            f(&row[col("ndcg10_before")], 4),
            f(&row[col("ndcg10_after")], 4),
            f(&row[col("d_ndcg10")], 5),
            f(&row[col("ctr_start")], 3),
            f(&row[col("ctr_end")], 3),
            f(&row[col("panel_ctr_gain")], 3),
            f(&row[col("kl_final")], 3),
            f(&row[col("bleu4")], 2),
            f(&row[col("rougeL_f")], 2),
            f(&row[col("usr")], 3),
            f(&row[col("toxicity_mean")], 3),
        ];
        s.push_str(&cells.join(" & "));
        s.push_str(" \\\\\n");
    }
    s.push_str("\\bottomrule\n\\end{tabular}\n");
    s
}

/// Selected `columns` of the results frame as a notebook table (numbers to 4 decimals, gaps
/// shown as "missing").
pub fn table(df: &DataFrame, columns: &[&str]) -> Result<crate::display::Table> {
    let mut rows = vec![Vec::new(); df.height()];
    for name in columns {
        // A linear search, not `df.column`: its hashed name index is built by the copy of
        // polars in whichever evcxr cell made the frame, and another cell's copy hashes
        // differently.
        let col = df
            .columns()
            .iter()
            .find(|c| c.name().as_str() == *name)
            .with_context(|| format!("no column `{name}` in the results table"))?;
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(match col.get(i)? {
                AnyValue::Null => "missing".to_string(),
                AnyValue::Float64(x) => format!("{x:.4}"),
                AnyValue::String(s) => s.to_string(),
                other => other.to_string(),
            });
        }
    }
    Ok(crate::display::Table::new(columns, rows))
}
