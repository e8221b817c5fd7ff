//! `recrl`: the pipeline's steps from the command line, one module per subcommand. Each parses
//! its flags and calls the library ([`recrl_lib`]) for the work; nothing here is logic a
//! library user would miss.
//!
//! A flag that sets a configuration key is one field, named like the key, of a `…Keys` struct
//! ([`keys`]): the struct is both the flags (clap) and, serialised, the tree of keys they
//! override (`None` = not given). Multi-word flags are snake_case like the seed's
//! (`--kl_beta`), with kebab-case aliases (`--kl-beta`).

mod aggregate;
mod assets;
mod audit;
mod basis;
mod config;
mod data;
mod env;
mod flags;
mod humaneval;
mod keys;
mod lora_init;
mod ppo;
mod probe;
mod sweep;
mod train_ranker;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    Env(env::EnvArgs),
    /// Print the resolved configuration of a dataset.
    Config(config::ConfigCmdArgs),
    /// Step 1: raw dataset → `data/proc/<ds>/` (Parquet, stats.json) + `data/_checksums/<ds>.json`.
    Data(data::DataArgs),
    /// Step 2: train SASRec → `checkpoints/sasrec_<ds>.safetensors` + `.json`.
    #[command(name = "train-ranker")]
    TrainRanker(Box<train_ranker::TrainRankerArgs>),
    /// Step 3: fit the shield's basis of user states → `checkpoints/basis_<ds>.safetensors` + `.json`.
    Basis(basis::BasisArgs),
    /// Step 4: load the explainer, add LoRA and W_p → `checkpoints/lora_init_<ds>/`.
    #[command(name = "lora-init")]
    LoraInit(lora_init::LoraInitArgs),
    /// Step 5: shielded PPO → `logs/<ds>/<tag>/metrics.jsonl`, `checkpoints/ppo_<ds>_<tag>/`.
    Ppo(Box<ppo::PpoArgs>),
    /// Step 6: safety audit of a checkpoint → `logs/<ds>/<tag>/audit.json`, explanations.jsonl.
    Audit(audit::AuditArgs),
    /// Step 7: text metrics of every run's explanations, `aggregate_results.csv`,
    /// `main_results.tex` and the figures (live runs → `results/`; `--records` → the committed
    /// `experiments/` and `figures/`).
    Aggregate(aggregate::AggregateArgs),
    /// Verify the registry-fetched assets against their pinned sha256.
    Assets(assets::AssetsArgs),
    /// Human evaluation: blind pairwise rating sheets (export) and their win rate and
    /// agreement (import).
    #[command(subcommand)]
    Humaneval(humaneval::Humaneval),
    /// The full experiment from a sweep file (datasets × arms × seeds, the model): every step
    /// in order, skipping what is done and resuming what was interrupted, then the audits and
    /// the aggregate (the seed's `run_runpod_full.sh`); or Slurm batch scripts for it.
    Sweep(sweep::SweepArgs),
    /// A model's logits on given token ids and its greedy decode speed (the GPU check,
    /// scripts/gpu_check.sh) → a JSON report and a safetensors file of logits.
    Probe(probe::ProbeArgs),
}

/// The command line, with a kebab-case alias for every snake_case flag (`--kl-beta`).
fn command() -> clap::Command {
    fn with_aliases(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            let kebab = a
                .get_long()
                .filter(|l| l.contains('_'))
                .map(|l| l.replace('_', "-"));
            match kebab {
                // clap keeps names as `&'static str`: the few aliases live as long as the program
                Some(alias) => a.alias(&*Box::leak(alias.into_boxed_str())),
                None => a,
            }
        })
        .mut_subcommands(with_aliases)
    }
    with_aliases(Cli::command())
}

/// Parses `args` (the first is the program's name) as [`command`] does.
fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::from_arg_matches(&command().try_get_matches_from(args)?)
}

fn main() -> ExitCode {
    let cli = parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Env(a) => env::run(&a),
        Cmd::Config(a) => config::run(&a),
        Cmd::Assets(a) => assets::run(&a),
        Cmd::Humaneval(h) => humaneval::run(h),
        Cmd::TrainRanker(a) => train_ranker::run(&a),
        Cmd::LoraInit(a) => lora_init::run(&a),
        Cmd::Ppo(a) => ppo::run(&a),
        Cmd::Audit(a) => audit::run(&a),
        Cmd::Sweep(a) => sweep::run(&a),
        Cmd::Probe(a) => probe::run(&a),
        Cmd::Aggregate(a) => aggregate::run(&a),
        Cmd::Basis(a) => basis::run(&a),
        Cmd::Data(a) => data::run(&a),
    }
}

#[cfg(test)]
mod tests;
