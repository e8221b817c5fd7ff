//! `recrl assets`: the registry-fetched assets checked against their pinned sha256
//! ([`assets::check`]).

use anyhow::{bail, Result};
use recrl_lib::{assets, display::Table, paths};

/// Flags of `recrl assets`.
#[derive(clap::Args)]
pub struct AssetsArgs {
    /// Asset group.
    #[arg(long, default_value = "default")]
    group: String,
}

pub fn run(a: &AssetsArgs) -> Result<()> {
    let status = assets::check(&paths::project_root(), &a.group)?;
    let rows = status
        .iter()
        .map(|s| {
            vec![
                if s.verified { "ok" } else { "MISSING" }.to_string(),
                s.dest.clone(),
                s.package.clone(),
            ]
        })
        .collect();
    print!("{}", Table::new(&["status", "file", "from"], rows));
    let missing = status.iter().filter(|s| !s.verified).count();
    if missing > 0 {
        bail!("{missing} asset file(s) missing or corrupt: run `python3 scripts/fetch_assets.py`");
    }
    Ok(())
}
