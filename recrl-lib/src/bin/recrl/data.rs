//! `recrl data` (step 1): a raw dataset → `data/proc/<ds>/` ([`data::prepare`]); with
//! `--dataset all`, every dataset whose raw folder has files.

use crate::keys::{ConfigArgs, DataKeys};
use anyhow::Result;
use recrl_lib::{data, paths};

/// Flags of `recrl data`.
#[derive(clap::Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: DataKeys,
    /// Process even when the outputs are up to date.
    #[arg(long)]
    force: bool,
}

pub fn run(a: &DataArgs) -> Result<()> {
    match a.config.dataset.as_str() {
        "all" => all(&a.config, &a.keys, a.force),
        _ => one(&a.config, &a.keys, a.force),
    }
}

fn one(config: &ConfigArgs, keys: &DataKeys, force: bool) -> Result<()> {
    let name: data::DatasetName = config.dataset.parse()?;
    let cfg = config.load(&[], keys)?;
    let settings = data::store::Settings {
        k_core: cfg.data.k_core,
        rating_threshold: cfg.data.rating_threshold,
    };
    let root = paths::project_root();
    let (_, stats, _) = data::prepare(&root, name, settings, force, |l| eprintln!("{l}"))?;
    print!("{}\n{}", stats.counts_table(), stats.summary_table());
    Ok(())
}

/// `recrl data --dataset all` (the seed's `run_preprocessing.sh`): every dataset whose raw
/// folder has files, one after the other; then which were processed, which have no raw files
/// (and where they go), and which failed (the command fails if any did).
fn all(config: &ConfigArgs, keys: &DataKeys, force: bool) -> Result<()> {
    let layout = paths::Layout::new(paths::project_root());
    let (mut done, mut missing, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for name in data::DatasetName::ALL {
        let raw = layout.raw_dir(name.as_str());
        if data::store::raw_files(&raw).map_or(true, |f| f.is_empty()) {
            missing.push(format!("{name} ({})", raw.display()));
            continue;
        }
        let each = ConfigArgs {
            dataset: name.to_string(),
            ..config.clone()
        };
        match one(&each, keys, force) {
            Ok(()) => done.push(name.to_string()),
            Err(e) => {
                eprintln!("{name}: {e:#}");
                failed.push(name.to_string());
            }
        }
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    eprintln!("processed: {}", list(&done));
    eprintln!(
        "no raw files (put them in the folder named; README, section \"Data\"): {}",
        list(&missing)
    );
    anyhow::ensure!(failed.is_empty(), "failed: {}", failed.join(", "));
    Ok(())
}
