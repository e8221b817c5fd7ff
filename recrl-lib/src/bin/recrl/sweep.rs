//! `recrl sweep`: the full experiment from a sweep file ([`sweep::execute`]), or its plan, or
//! its Slurm batch scripts.

use anyhow::Result;
use recrl_lib::paths;
use recrl_lib::sweep::{self, Execution, Stage};
use std::path::PathBuf;

/// Flags of `recrl sweep`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
pub struct SweepArgs {
    /// The sweep file (YAML: datasets, arms, seeds, model, preset, set, ppo, audit_users,
    /// slurm), e.g. experiments/sweeps/cpu.yaml.
    #[arg(long)]
    file: PathBuf,
    /// Print the plan (each step done or to do, and its command) and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this stage: prepare (per dataset: data, ranker, basis, LoRA init, base audit) or
    /// aggregate.
    #[arg(long, value_parser = ["prepare", "aggregate"], conflicts_with = "run")]
    stage: Option<String>,
    /// Only run K of the sweep (0-based, datasets × arms × seeds in file order): its PPO and audit.
    #[arg(long)]
    run: Option<usize>,
    /// Write Slurm batch scripts into DIR instead (prepare, a job array of the runs, the
    /// aggregate; DIR/submit.sh submits them with dependencies).
    #[arg(long, value_name = "DIR")]
    slurm: Option<PathBuf>,
}

pub fn run(a: &SweepArgs) -> Result<()> {
    let how = Execution {
        dry_run: a.dry_run,
        stage: a.stage.as_deref().map(|s| match s {
            "prepare" => Stage::Prepare,
            _ => Stage::Aggregate,
        }),
        run: a.run,
        slurm: a.slurm.clone(),
        recrl: None,
    };
    sweep::execute(&paths::project_root(), &a.file, &how, |l| println!("{l}"))
}
