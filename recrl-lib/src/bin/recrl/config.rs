//! `recrl config`: the resolved configuration of a dataset ([`ConfigArgs::load`]), as YAML.

use crate::keys::{ConfigArgs, RunKeys};
use anyhow::Result;

/// Flags of `recrl config`: which configuration, and the run's keys.
#[derive(clap::Args)]
pub struct ConfigCmdArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: RunKeys,
}

pub fn run(a: &ConfigCmdArgs) -> Result<()> {
    print!("{}", a.config.load(&[], &a.keys)?.to_yaml());
    Ok(())
}
