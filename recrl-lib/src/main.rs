//! `recrl`: the pipeline's steps from the command line (one subcommand per step).

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use recrl_lib::{assets, config::Config, data, env, notebook::Table, paths};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "recrl",
    version,
    about = "Shielded RecRL: explanations for a recommender, behind a gradient shield"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Step 0: libtorch, CUDA, threads and assets on this machine.
    Env {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also time f32 matmuls (256, 512, 1024) on the selected device.
        #[arg(long)]
        bench: bool,
    },
    /// Print the resolved configuration of a dataset.
    Config {
        /// Dataset section of the configuration file.
        #[arg(long, default_value = "ml-100k")]
        dataset: String,
        /// Configuration file (default: experiments/recrl_default.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a key, e.g. --set ranker.hidden=128 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Step 1: raw dataset → `data/proc/<ds>/` (Parquet, stats.json) + `data/_checksums/<ds>.json`.
    Data {
        /// Dataset: ml-100k, ml-1m, ml-25m, books, bookcrossing, steam.
        #[arg(long, default_value = "ml-100k")]
        dataset: String,
        /// Configuration file (default: experiments/recrl_default.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Iterative k-core (default: the configuration's data.k_core).
        #[arg(long)]
        k_core: Option<usize>,
        /// Keep ratings >= this (default: the configuration's data.rating_threshold).
        #[arg(long)]
        rating_threshold: Option<f64>,
        /// Process even when the outputs are up to date.
        #[arg(long)]
        force: bool,
    },
    /// Verify the registry-fetched assets against their pinned sha256.
    Assets {
        /// Asset group.
        #[arg(long, default_value = "default")]
        group: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Env { json, bench } => cmd_env(json, bench),
        Cmd::Config {
            dataset,
            config,
            sets,
        } => {
            let overrides = sets
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
                    None => bail!("--set expects KEY=VALUE, got `{s}`"),
                })
                .collect::<Result<Vec<_>>>()?;
            let path = config.unwrap_or_else(paths::default_config);
            print!("{}", Config::load(&path, &dataset, &overrides)?.to_yaml());
            Ok(())
        }
        Cmd::Assets { group } => cmd_assets(&group),
        Cmd::Data {
            dataset,
            config,
            k_core,
            rating_threshold,
            force,
        } => {
            let name: data::DatasetName = dataset.parse()?;
            let path = config.unwrap_or_else(paths::default_config);
            let cfg = Config::load(&path, name.as_str(), &[])?;
            let settings = data::store::Settings {
                k_core: k_core.unwrap_or(cfg.data.k_core),
                rating_threshold: rating_threshold.unwrap_or(cfg.data.rating_threshold),
            };
            let root = paths::project_root();
            let (_, stats, _) = data::prepare(&root, name, settings, force, |l| eprintln!("{l}"))?;
            print!("{}\n{}", stats.counts_table(), stats.summary_table());
            Ok(())
        }
    }
}

fn cmd_env(json: bool, bench: bool) -> Result<()> {
    let report = env::EnvReport::collect();
    let timings: Vec<env::MatmulTiming> = if bench {
        let device = env::device();
        [256, 512, 1024]
            .into_iter()
            .map(|n| env::matmul_timing(n, device, 5))
            .collect()
    } else {
        Vec::new()
    };
    if json {
        let v = serde_json::json!({ "env": report, "matmul": timings });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{report}");
        for t in &timings {
            println!(
                "matmul {0}x{0}    {1:.2} ms, {2:.1} GFLOP/s",
                t.n,
                t.seconds * 1e3,
                t.gflops
            );
        }
    }
    Ok(())
}

fn cmd_assets(group: &str) -> Result<()> {
    let status = assets::check(&paths::project_root(), group)?;
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
