//! `recrl aggregate` (step 7): text metrics, `aggregate_results.csv`, the LaTeX and the
//! figures of every run ([`report::run()`]); with `--readme`, the seeded table into README.md.

use crate::flags::pick_device;
use anyhow::Result;
use recrl_lib::{paths, report};
use std::path::{Path, PathBuf};

/// Flags of `recrl aggregate` (the seed's `aggregate_main.py --runs_dir --out_csv --out_dir`).
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
pub struct AggregateArgs {
    /// Aggregate the committed run records (experiments/records/) into the committed
    /// experiments/aggregate_results.csv (and beside it) and figures/. Without it: the live
    /// runs in logs/ into results/ (git-ignored).
    #[arg(long)]
    records: bool,
    /// Folder of the run folders `<ds>/<tag>/` (default: logs/, or experiments/records/).
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// The results CSV; main_results.tex and seeded_results.{csv,md} go beside it
    /// (default: results/aggregate_results.csv, or experiments/ with --records).
    #[arg(long)]
    out_csv: Option<PathBuf>,
    /// Folder of the figures (default: results/figures/, or figures/ with --records).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Arms expected per dataset; absent ones get a row marked missing (comma-separated).
    #[arg(long, default_value_t = recrl_lib::report::run::expected_arms().join(","))]
    pub arms: String,
    /// Only the HTML figures (no SVG/PNG through kaleido).
    #[arg(long = "no_static")]
    no_static: bool,
    /// Re-score explanations even when their text_metrics.json is up to date.
    #[arg(long)]
    rescore: bool,
    /// Device of the MiniLM encoder: cpu, cuda, cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Also write the seeded results table (mean ± 95 % CI across seeds) into README.md,
    /// between its seeded-results markers.
    #[arg(long)]
    readme: bool,
}

impl AggregateArgs {
    /// What `report::run` reads and writes: the live runs (`logs/` → `results/`) or, with
    /// `--records`, the committed ones; `--runs_dir`, `--out_csv` and `--out_dir` win.
    pub fn options(&self, root: &Path) -> report::Options {
        let base = if self.records {
            report::Options::records(root)
        } else {
            report::Options::new(root)
        };
        report::Options {
            runs_dir: self.runs_dir.clone().unwrap_or(base.runs_dir.clone()),
            out_csv: self.out_csv.clone().unwrap_or(base.out_csv.clone()),
            figures_dir: self.out_dir.clone().unwrap_or(base.figures_dir.clone()),
            arms: self
                .arms
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            statics: !self.no_static,
            rescore: self.rescore,
            ..base
        }
    }
}

pub fn run(a: &AggregateArgs) -> Result<()> {
    let root = paths::project_root();
    let out = report::run(&a.options(&root), pick_device(&a.device)?, |l| {
        eprintln!("{l}")
    })?;
    println!("{}", out.frame);
    if a.readme {
        let path = root.join("README.md");
        report::seeds::write_into_readme(&path, &out.seeded)?;
        eprintln!("wrote the seeded results table into {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{parse_from, Cmd};
    use std::path::PathBuf;

    #[test]
    fn aggregate_expects_the_baselines_and_the_arm_table() {
        let cli = parse_from(["recrl", "aggregate"]).unwrap();
        let Cmd::Aggregate(a) = cli.command else {
            panic!("not aggregate")
        };
        assert_eq!(
            a.arms,
            "base,base_no_soft,template,best_of_n,shielded,no_proj,frozen,kl0,lora4"
        );
    }

    #[test]
    fn aggregate_reads_live_runs_into_results_records_into_the_committed_files() {
        let root = std::path::Path::new("/p");
        let opts = |args: &[&str]| {
            let cli = parse_from(["recrl", "aggregate"].iter().chain(args)).unwrap();
            let Cmd::Aggregate(a) = cli.command else {
                panic!("not aggregate")
            };
            let o = a.options(root);
            (o.runs_dir, o.out_csv, o.figures_dir)
        };
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            opts(&[]),
            (
                p("/p/logs"),
                p("/p/results/aggregate_results.csv"),
                p("/p/results/figures")
            )
        );
        assert_eq!(
            opts(&["--records"]),
            (
                p("/p/experiments/records"),
                p("/p/experiments/aggregate_results.csv"),
                p("/p/figures")
            )
        );
        assert_eq!(
            opts(&["--runs_dir", "r", "--out_csv", "o/x.csv", "--out_dir", "f"]),
            (p("r"), p("o/x.csv"), p("f"))
        );
    }
}
