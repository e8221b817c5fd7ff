//! `recrl humaneval export|import`: blind pairwise rating sheets
//! ([`recrl_lib::report::humaneval::export`]) and their win rate and agreement
//! ([`recrl_lib::report::humaneval::import`]).

use anyhow::Result;
use clap::Subcommand;
use recrl_lib::{data, paths};
use std::path::PathBuf;

/// `recrl humaneval export|import`.
#[derive(Subcommand)]
#[command(rename_all = "snake_case")]
pub enum Humaneval {
    /// Pair an arm's greedy audit explanations with another tag's (same user and item) into a
    /// blind sheet: `sheet.csv` and `form.html` for raters, `key.csv` kept apart.
    Export {
        /// Dataset.
        #[arg(long, default_value = "ml-100k")]
        dataset: String,
        /// The arm's tag (its audit's `logs/<ds>/<tag>/explanations.jsonl`).
        #[arg(long)]
        arm: String,
        /// The tag it is compared with.
        #[arg(long, default_value = "base")]
        vs: String,
        /// Pairs on the sheet (at most the requests the two share).
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        /// Seed of the draw, the order and the sides.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Folder of the three files (default: `results/humaneval/<ds>/<arm>_vs_<vs>/`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read filled sheets (one rater each) with their key: the arm's win rate (± 95 % CI over
    /// pairs) and Krippendorff's α.
    Import {
        /// The export's key.csv.
        #[arg(long)]
        key: PathBuf,
        /// The arm whose win rate is reported (default: the key's tag that is not base).
        #[arg(long)]
        arm: Option<String>,
        /// Filled sheets.
        #[arg(required = true)]
        sheets: Vec<PathBuf>,
    },
}

pub fn run(h: Humaneval) -> Result<()> {
    use recrl_lib::report::humaneval;
    match h {
        Humaneval::Export {
            dataset,
            arm,
            vs,
            pairs,
            seed,
            out,
        } => {
            let name: data::DatasetName = dataset.parse()?;
            paths::check_tag(&arm)?;
            paths::check_tag(&vs)?;
            let root = paths::project_root();
            let layout = paths::Layout::new(&root);
            let out = out.unwrap_or_else(|| {
                layout
                    .results()
                    .join("humaneval")
                    .join(name.as_str())
                    .join(format!("{arm}_vs_{vs}"))
            });
            let ds = data::store::load(&root, name)?;
            let (made, files) =
                humaneval::export(&layout.logs(), &ds, (&arm, &vs), pairs, seed, &out)?;
            eprintln!(
                "{} pairs of {arm} and {vs}: give raters {} (or {}); keep {} apart",
                made.len(),
                files.sheet.display(),
                files.form.display(),
                files.key.display()
            );
            Ok(())
        }
        Humaneval::Import { key, arm, sheets } => {
            let s = humaneval::import(&key, &sheets, arm.as_deref())?;
            let ci = s.ci95.map_or(String::new(), |h| format!(" ± {h:.3}"));
            let alpha = s.alpha.map_or("n/a".to_string(), |a| format!("{a:.3}"));
            println!(
                "{} vs {}: win rate {:.3}{ci} (95 % CI over {} pairs; tie = ½), {} wins, {} losses, {} ties from {} rater(s); Krippendorff's α (nominal) {alpha}",
                s.arm, s.other, s.win_rate, s.pairs, s.wins, s.losses, s.ties, s.raters
            );
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }
    }
}
