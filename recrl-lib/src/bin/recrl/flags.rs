//! Flags several subcommands share that are not configuration keys: `--device` and the
//! checkpoint folders (`--ranker_ckpt`, `--projection_basis`).

use anyhow::{Context, Result};
use recrl_lib::{env, paths};
use std::path::PathBuf;

/// The device of a `--device` flag (checked: a malformed name or a GPU this machine lacks is
/// an error), else [`env::device`].
pub fn pick_device(flag: &Option<String>) -> Result<tch::Device> {
    match flag {
        Some(d) => env::usable(env::parse_device(Some(d)).context("--device")?),
        None => env::device(),
    }
}

/// The folder of a `kind` checkpoint of `dataset` from its flag ([`paths::checkpoint_dir`]),
/// else `default`.
pub fn dir_of(
    flag: Option<&PathBuf>,
    kind: &str,
    dataset: &str,
    default: PathBuf,
) -> Result<PathBuf> {
    match flag {
        Some(p) => paths::checkpoint_dir(p, kind, dataset, &default),
        None => Ok(default),
    }
}
