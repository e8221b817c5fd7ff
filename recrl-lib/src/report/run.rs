//! Step 7 in one call (`recrl aggregate`, notebook 07): score every run's explanations, gather
//! every run folder, write the CSV, the LaTeX table and the figures.

use super::aggregate::{self, RunRecord};
use super::{results, scores, seeds};
use crate::data::{self, Dataset};
use crate::minilm::{self, MiniLm};
use crate::paths::Layout;
use anyhow::Result;
use polars::prelude::DataFrame;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Device;

/// The arms every dataset is expected to have, absent ones getting a row marked missing:
/// `base` (the step-4 checkpoint, before RL), then every arm of [`crate::ppo::arms::ARMS`].
pub fn expected_arms() -> Vec<String> {
    let arms = crate::ppo::arms::ARMS.iter().map(|a| a.name);
    std::iter::once(crate::audit::BASE_TAG)
        .chain(arms)
        .map(String::from)
        .collect()
}

/// What [`run`] reads and writes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Project root: processed data (`data/proc/`) and models (`checkpoints/models/`).
    pub root: PathBuf,
    /// Where the runs are (`logs/`) and the outputs go (`experiments/`, `figures/`).
    pub out_root: PathBuf,
    /// Arms expected per dataset (see [`expected_arms`]).
    pub arms: Vec<String>,
    /// Also write SVG and PNG (kaleido), not only HTML.
    pub statics: bool,
    /// Re-score explanations even when `text_metrics.json` is newer than them.
    pub rescore: bool,
}

impl Options {
    /// Reads and writes under `root`, expects [`expected_arms`], writes static figures.
    pub fn new(root: &Path) -> Options {
        Options {
            root: root.to_path_buf(),
            out_root: root.to_path_buf(),
            arms: expected_arms(),
            statics: true,
            rescore: false,
        }
    }
}

/// What [`run`] produced.
pub struct Outputs {
    /// Every run found.
    pub records: Vec<RunRecord>,
    /// The results table.
    pub frame: DataFrame,
    /// `experiments/aggregate_results.csv`.
    pub csv: PathBuf,
    /// `experiments/main_results.tex`.
    pub tex: PathBuf,
    /// The seeds of each dataset × arm pooled (`experiments/seeded_results.csv` and `.md`).
    pub seeded: Vec<seeds::SeededRow>,
    /// The figure files.
    pub figures: Vec<PathBuf>,
}

fn stale(explanations: &Path, metrics: &Path) -> bool {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (time(explanations), time(metrics)) {
        (Some(e), Some(m)) => e > m,
        _ => true,
    }
}

/// Scores the explanations of every run that has `explanations.jsonl` (from its audit) and no
/// up-to-date `text_metrics.json`. Without the MiniLM model the embedding columns stay missing.
pub fn score_runs(opts: &Options, device: Device, progress: &mut impl FnMut(&str)) -> Result<()> {
    let out = Layout::new(&opts.out_root);
    let logs = out.logs();
    let mut encoder: Option<Option<MiniLm>> = None;
    let mut datasets: BTreeMap<String, Dataset> = BTreeMap::new();
    for r in aggregate::discover(&logs)? {
        let dir = out.run_logs(&r.dataset, &r.tag);
        let (ex, tm) = (
            dir.join(crate::paths::files::EXPLANATIONS),
            dir.join(crate::paths::files::TEXT_METRICS),
        );
        if !ex.is_file() || !(opts.rescore || stale(&ex, &tm)) {
            continue;
        }
        if !datasets.contains_key(&r.dataset) {
            let name: data::DatasetName = r.dataset.parse()?;
            datasets.insert(r.dataset.clone(), data::store::load(&opts.root, name)?);
        }
        let enc = encoder.get_or_insert_with(|| {
            let dir = minilm::default_dir(&opts.root);
            MiniLm::load(&dir, device)
                .map_err(|e| progress(&format!("no embedding metrics: {e:#}")))
                .ok()
        });
        let t = scores::score_run(&datasets[&r.dataset], &r.tag, &dir, enc.as_ref())?;
        progress(&format!(
            "{}/{}: {} explanations, BLEU-4 {:.2}, ROUGE-L {:.2}, USR {:.3}",
            r.dataset, r.tag, t.n, t.bleu4, t.rouge_l.f, t.usr
        ));
    }
    Ok(())
}

/// Scores explanations ([`score_runs`]), gathers every run under `out_root/logs`, and writes
/// `experiments/aggregate_results.csv`, `experiments/main_results.tex` and the figures in
/// `figures/`.
pub fn run(opts: &Options, device: Device, mut progress: impl FnMut(&str)) -> Result<Outputs> {
    score_runs(opts, device, &mut progress)?;
    let out = Layout::new(&opts.out_root);
    let records = aggregate::discover(&out.logs())?;
    let mut datasets: Vec<&String> = records.iter().map(|r| &r.dataset).collect();
    datasets.dedup();
    let expected: Vec<(String, String)> = datasets
        .iter()
        .flat_map(|d| opts.arms.iter().map(|a| ((*d).clone(), a.clone())))
        .collect();
    let mut frame = aggregate::frame(&records, &expected)?;
    let experiments = out.experiments();
    std::fs::create_dir_all(&experiments)?;
    let csv = experiments.join("aggregate_results.csv");
    aggregate::write_csv(&mut frame, &csv)?;
    let tex = experiments.join("main_results.tex");
    crate::io::write_atomic(&tex, aggregate::latex(&records).as_bytes())?;
    let seeded = seeds::pool(&records);
    let seeded_csv = experiments.join("seeded_results.csv");
    aggregate::write_csv(&mut seeds::frame(&seeded)?, &seeded_csv)?;
    crate::io::write_atomic(
        &experiments.join("seeded_results.md"),
        seeds::markdown(&seeded).as_bytes(),
    )?;
    progress(&format!(
        "{} runs → {}, {} and {} ({} dataset × arm rows, seeds pooled)",
        records.len(),
        csv.display(),
        tex.display(),
        seeded_csv.display(),
        seeded.len()
    ));
    let figures = results::save_all(&records, &out.figures(), opts.statics)?;
    progress(&format!(
        "{} figure files in {}",
        figures.len(),
        out.figures().display()
    ));
    Ok(Outputs {
        records,
        frame,
        csv,
        tex,
        seeded,
        figures,
    })
}
