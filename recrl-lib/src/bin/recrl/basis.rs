//! `recrl basis` (step 3): fit the shield's basis of user states and save it
//! ([`report::fit_and_save`]), with its tables.

use crate::flags::pick_device;
use crate::keys::{BasisKeys, ConfigArgs};
use anyhow::Result;
use recrl_lib::shield::report;
use recrl_lib::{data, paths};

/// Flags of `recrl basis`.
#[derive(clap::Args)]
pub struct BasisArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: BasisKeys,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

pub fn run(a: &BasisArgs) -> Result<()> {
    let name: data::DatasetName = a.config.dataset.parse()?;
    let cfg = a.config.load(&[], &a.keys)?;
    let root = paths::project_root();
    let ds = data::store::load(&root, name)?;
    let ranker = recrl_lib::ranker::Ranker::load(
        &paths::Layout::new(&root).checkpoints(),
        &ds,
        pick_device(&a.device)?,
    )?;
    let (basis, meta, probes) = report::fit_and_save(&root, &ds, &ranker, &cfg.shield, cfg.seed)?;
    eprintln!(
        "{} probe users, d = {}: τ = {} keeps k = {} ({:.4}% of the energy)",
        meta.probes,
        meta.d,
        meta.tau,
        meta.k,
        100.0 * meta.energy_kept
    );
    let groups = vec![
        (
            "probe users (train history)",
            basis.residual_shares(&probes),
        ),
        (
            "all users at test time",
            basis.residual_shares(&report::test_time_states(&ranker, &ds)),
        ),
    ];
    print!(
        "{}{}",
        report::k_table(&basis),
        report::residual_table(&groups)
    );
    eprintln!(
        "saved {}",
        paths::Layout::new(&root)
            .basis_files(name.as_str())
            .0
            .display()
    );
    Ok(())
}
