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

/// The arms every dataset is expected to have, absent ones getting a row marked missing: the
/// baselines without RL ([`crate::ppo::arms::BASELINES`]: `base`, `base_no_soft`, `template`,
/// `best_of_n`), then every arm of [`crate::ppo::arms::ARMS`].
pub fn expected_arms() -> Vec<String> {
    let baselines = crate::ppo::arms::BASELINES.iter().map(|b| b.1);
    let arms = crate::ppo::arms::ARMS.iter().map(|a| a.name);
    baselines.chain(arms).map(String::from).collect()
}

/// What [`run`] reads and writes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Project root: processed data (`data/proc/`) and models (`checkpoints/models/`).
    pub root: PathBuf,
    /// The run folders `<runs_dir>/<ds>/<tag>/` (the seed's `--runs_dir`).
    pub runs_dir: PathBuf,
    /// `aggregate_results.csv`; `main_results.tex` and `seeded_results.{csv,md}` go beside it
    /// (the seed's `--out_csv`).
    pub out_csv: PathBuf,
    /// The figures (the seed's `--out_dir`).
    pub figures_dir: PathBuf,
    /// Arms expected per dataset (see [`expected_arms`]).
    pub arms: Vec<String>,
    /// Also write SVG and PNG (kaleido), not only HTML.
    pub statics: bool,
    /// Re-score explanations even when `text_metrics.json` is newer than them.
    pub rescore: bool,
}

impl Options {
    /// The live runs of the project at `root`: `logs/` → `results/` (git-ignored; the committed
    /// `experiments/` and `figures/` are left alone). Expects [`expected_arms`], writes static
    /// figures.
    pub fn new(root: &Path) -> Options {
        Options::under(root, root)
    }

    /// The committed results: the run records in `experiments/records/` →
    /// `experiments/aggregate_results.csv` (and beside it) and `figures/`. Made only from
    /// files in the repository, so anyone regenerates the committed files byte for byte.
    pub fn records(root: &Path) -> Options {
        let layout = Layout::new(root);
        Options {
            runs_dir: layout.records(),
            out_csv: layout.experiments().join(CSV),
            figures_dir: layout.figures(),
            ..Options::new(root)
        }
    }

    /// Runs under `dir/logs/`, outputs under `dir/results/` (notebook smoke runs, tests), with
    /// data and models from `root`.
    pub fn under(root: &Path, dir: &Path) -> Options {
        let layout = Layout::new(dir);
        Options {
            root: root.to_path_buf(),
            runs_dir: layout.logs(),
            out_csv: layout.results().join(CSV),
            figures_dir: layout.results().join("figures"),
            arms: expected_arms(),
            statics: true,
            rescore: false,
        }
    }

    /// The folder of the tables ([`Options::out_csv`]'s).
    fn tables_dir(&self) -> PathBuf {
        self.out_csv
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// File name of the results table.
const CSV: &str = "aggregate_results.csv";

/// What [`run`] produced.
pub struct Outputs {
    /// Every run found.
    pub records: Vec<RunRecord>,
    /// The results table.
    pub frame: DataFrame,
    /// The results table ([`Options::out_csv`]).
    pub csv: PathBuf,
    /// `main_results.tex` beside it.
    pub tex: PathBuf,
    /// The seeds of each dataset × arm pooled (`seeded_results.csv` and `.md` beside it).
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
    let mut encoder: Option<Option<MiniLm>> = None;
    let mut datasets: BTreeMap<String, Dataset> = BTreeMap::new();
    for r in aggregate::discover(&opts.runs_dir)? {
        let dir = opts.runs_dir.join(&r.dataset).join(&r.tag);
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

/// Scores explanations ([`score_runs`]), gathers every run under `opts.runs_dir`, and writes
/// `opts.out_csv`, `main_results.tex` and `seeded_results.{csv,md}` beside it, and the figures
/// in `opts.figures_dir`.
pub fn run(opts: &Options, device: Device, mut progress: impl FnMut(&str)) -> Result<Outputs> {
    score_runs(opts, device, &mut progress)?;
    let records = aggregate::discover(&opts.runs_dir)?;
    let mut datasets: Vec<&String> = records.iter().map(|r| &r.dataset).collect();
    datasets.dedup();
    let expected: Vec<(String, String)> = datasets
        .iter()
        .flat_map(|d| opts.arms.iter().map(|a| ((*d).clone(), a.clone())))
        .collect();
    let mut frame = aggregate::frame(&records, &expected)?;
    let experiments = opts.tables_dir();
    std::fs::create_dir_all(&experiments)?;
    let csv = opts.out_csv.clone();
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
    let figures = results::save_all(&records, &opts.figures_dir, opts.statics)?;
    progress(&format!(
        "{} figure files in {}",
        figures.len(),
        opts.figures_dir.display()
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
