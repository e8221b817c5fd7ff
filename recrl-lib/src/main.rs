//! `recrl`: the pipeline's steps from the command line (one subcommand per step).
//!
//! A flag that sets a configuration key is one field, named like the key, of a `…Keys` struct:
//! the struct is both the flags (clap) and, serialised, the tree of keys they override
//! (`None` = not given). Multi-word flags are snake_case like the seed's (`--kl_beta`), with
//! kebab-case aliases (`--kl-beta`).

use anyhow::{bail, ensure, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use recrl_lib::config::{Config, Overrides};
use recrl_lib::ppo::{arms, Arm, Coupled};
use recrl_lib::{assets, data, display::Table, env, paths};
use serde::Serialize;
use std::path::{Path, PathBuf};
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
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        keys: RunKeys,
    },
    /// Step 1: raw dataset → `data/proc/<ds>/` (Parquet, stats.json) + `data/_checksums/<ds>.json`.
    Data {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        keys: DataKeys,
        /// Process even when the outputs are up to date.
        #[arg(long)]
        force: bool,
    },
    /// Step 2: train SASRec → `checkpoints/sasrec_<ds>.safetensors` + `.json`.
    #[command(name = "train-ranker")]
    TrainRanker(Box<TrainRankerArgs>),
    /// Step 3: fit the shield's basis of user states → `checkpoints/basis_<ds>.safetensors` + `.json`.
    Basis {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        keys: BasisKeys,
        /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
        #[arg(long)]
        device: Option<String>,
    },
    /// Step 4: load the explainer, add LoRA and W_p → `checkpoints/lora_init_<ds>/`.
    #[command(name = "lora-init")]
    LoraInit(LoraInitArgs),
    /// Step 5: shielded PPO → `logs/<ds>/<tag>/metrics.jsonl`, `checkpoints/ppo_<ds>_<tag>/`.
    Ppo(Box<PpoArgs>),
    /// Step 6: safety audit of a checkpoint → `logs/<ds>/<tag>/audit.json`, explanations.jsonl.
    Audit(AuditArgs),
    /// Step 7: text metrics of every run's explanations, `aggregate_results.csv`,
    /// `main_results.tex` and the figures (live runs → `results/`; `--records` → the committed
    /// `experiments/` and `figures/`).
    Aggregate(AggregateArgs),
    /// Verify the registry-fetched assets against their pinned sha256.
    Assets {
        /// Asset group.
        #[arg(long, default_value = "default")]
        group: String,
    },
    /// Human evaluation: blind pairwise rating sheets (export) and their win rate and
    /// agreement (import).
    #[command(subcommand)]
    Humaneval(Humaneval),
    /// The full experiment from a sweep file (datasets × arms × seeds, the model): every step
    /// in order, skipping what is done and resuming what was interrupted, then the audits and
    /// the aggregate (the seed's `run_runpod_full.sh`); or Slurm batch scripts for it.
    Sweep(SweepArgs),
    /// A model's logits on given token ids and its greedy decode speed (the GPU check,
    /// scripts/gpu_check.sh) → a JSON report and a safetensors file of logits.
    Probe(ProbeArgs),
}

/// Flags of `recrl probe`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
struct ProbeArgs {
    /// The model: a GGUF file or a Hugging Face folder.
    #[arg(long)]
    model: PathBuf,
    /// Prompts: a JSON file of token-id lists.
    #[arg(long)]
    prompts: PathBuf,
    /// Write each prompt's logits [T, vocab] (f32, run alone) here as `logits.<i>`.
    #[arg(long)]
    logits: Option<PathBuf>,
    /// Batch sizes to time greedy decoding at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batches: Vec<usize>,
    /// New tokens per prompt (end-of-sequence tokens ignored).
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Timed runs per batch size (after a warm-up).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// bf16 weights and activations (CUDA only).
    #[arg(long)]
    bf16: bool,
    /// Int8 weight-only base weights.
    #[arg(long)]
    int8: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// Write the JSON report here (else standard output).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Flags of `recrl sweep`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
struct SweepArgs {
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

/// `recrl humaneval export|import`.
#[derive(Subcommand)]
#[command(rename_all = "snake_case")]
enum Humaneval {
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

/// Which configuration: dataset section, file, preset and `--set` overrides.
#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// Dataset (its section of the configuration file): ml-100k, ml-1m, ml-25m, books,
    /// bookcrossing, steam (`recrl data` also takes `all`).
    #[arg(long, default_value = "ml-100k")]
    dataset: String,
    /// Configuration file (default: experiments/recrl_default.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Apply a preset of the file's `presets` section first, e.g. smoke (the notebooks' small runs).
    #[arg(long)]
    preset: Option<String>,
    /// Override any key, e.g. --set ranker.hidden=128 (repeatable; flags win over it).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl ConfigArgs {
    /// The resolved configuration: the dataset's section, the preset, `--set`, then `arm_sets`
    /// (a named arm's keys), then the flags in `keys`.
    fn load(&self, arm_sets: &[(String, String)], keys: &impl Serialize) -> Result<Config> {
        let mut sets = parse_sets(&self.sets)?;
        sets.extend_from_slice(arm_sets);
        let overrides = Overrides {
            presets: self.preset.iter().cloned().collect(),
            sets,
            trees: vec![serde_yaml::to_value(keys)?],
        };
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| paths::Layout::project().default_config());
        Config::load(&path, &self.dataset, &overrides)
    }
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => bail!("--set expects KEY=VALUE, got `{s}`"),
        })
        .collect()
}

/// `recrl data`'s keys (the `data` section).
#[derive(clap::Args, Serialize)]
struct DataKeys {
    #[command(flatten)]
    data: DataSection,
}

/// Keys of the `data` section (flags in kebab-case, as ever).
#[derive(clap::Args, Serialize)]
struct DataSection {
    /// Iterative k-core (key data.k_core).
    #[arg(long)]
    k_core: Option<usize>,
    /// Keep ratings >= this (key data.rating_threshold).
    #[arg(long)]
    rating_threshold: Option<f64>,
}

/// `recrl train-ranker`'s keys: the seed, and the `ranker` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
struct TrainRankerKeys {
    /// Seed (default: the configuration's seed).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    ranker: RankerSection,
}

/// Keys of the `ranker` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
struct RankerSection {
    /// Maximum epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Sequences (windows) per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Hidden size.
    #[arg(long)]
    hidden: Option<usize>,
    /// Self-attention blocks.
    #[arg(long)]
    blocks: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    heads: Option<usize>,
    /// Longest input sequence.
    #[arg(long)]
    max_len: Option<usize>,
    /// Dropout rate.
    #[arg(long)]
    dropout: Option<f64>,
    /// Loss: ce (full softmax) or bce (sampled negatives).
    #[arg(long)]
    loss: Option<String>,
    /// Negatives per position with --loss bce.
    #[arg(long)]
    negatives: Option<usize>,
    /// Early-stopping patience in epochs.
    #[arg(long)]
    patience: Option<usize>,
    /// Score with the input embeddings (classic SASRec; the shield needs them untied).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    tie_output: Option<bool>,
    /// Post-LN blocks instead of pre-LN (key pre_ln: false).
    #[arg(long = "post_ln", num_args = 0, default_missing_value = "false")]
    pre_ln: Option<bool>,
}

/// `recrl basis`'s keys (the `shield` section).
#[derive(clap::Args, Serialize)]
struct BasisKeys {
    #[command(flatten)]
    shield: ShieldSection,
}

/// Keys of the `shield` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
struct ShieldSection {
    /// Energy threshold τ (key shield.tau).
    #[arg(long)]
    tau: Option<f64>,
    /// Cap on the probe users (key shield.probe_users).
    #[arg(long)]
    probe_users: Option<usize>,
}

/// `recrl lora-init`'s keys.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
struct LoraInitKeys {
    /// LoRA rank.
    #[arg(long)]
    lora_rank: Option<usize>,
    /// Int8 weight-only quantisation of the frozen base.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    int8: Option<bool>,
    /// Explainer weights: a GGUF file or a Hugging Face folder (key explainer_model).
    #[arg(long = "model")]
    explainer_model: Option<PathBuf>,
    /// Seed of the adapter and W_p initialisation and of the sample explanations.
    #[arg(long)]
    seed: Option<u64>,
}

/// The run's keys (`recrl ppo`, `recrl config`): the seed's flags, each the key of its name.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
struct RunKeys {
    /// LoRA rank.
    #[arg(long)]
    lora_rank: Option<usize>,
    /// Per-token KL penalty β.
    #[arg(long)]
    kl_beta: Option<f64>,
    /// Rollouts per micro-batch (the forward/backward pass unless --exec_batch is larger).
    #[arg(long)]
    micro_batch_size: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Rollouts per forward/backward pass when memory allows more than micro_batch_size
    /// (whole micro-batches of one optimiser step together: the same update; 0: micro_batch_size).
    #[arg(long)]
    exec_batch: Option<usize>,
    /// Rollouts per user prompt; above 1, a group baseline replaces the value head.
    #[arg(long)]
    group_size: Option<usize>,
    /// RL algorithm: ppo (value head + GAE) or grpo (group-relative, needs group_size ≥ 2).
    #[arg(long)]
    algorithm: Option<String>,
    /// Prompt + reply token budget.
    #[arg(long)]
    max_seq_len_explainer: Option<usize>,
    /// Characters of an explanation kept for scoring and logs.
    #[arg(long)]
    explanation_max_len: Option<usize>,
    /// Synthetic secrets appended to prompts, for the audit's canary exposure.
    #[arg(long)]
    canaries: Option<usize>,
    /// PPO steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Int8 weight-only base model.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    int8: Option<bool>,
    #[command(flatten)]
    shield: TauKey,
}

/// The `shield.tau` key as `--tau`.
#[derive(clap::Args, Serialize)]
struct TauKey {
    /// Energy threshold τ (key shield.tau); `recrl ppo` refits the basis at it instead of
    /// loading it (the τ sweep).
    #[arg(long)]
    tau: Option<f64>,
}

/// `recrl audit`'s keys.
#[derive(clap::Args, Serialize)]
struct AuditKeys {
    /// Seed of generation (the panel's users come from the `split` section, whatever the seed).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    audit: AuditSection,
}

/// Keys of the `audit` section.
#[derive(clap::Args, Serialize)]
#[command(rename_all = "snake_case")]
struct AuditSection {
    /// Panel size: held-out users, a seeded subset (key audit.users; 0 = all of them).
    #[arg(long)]
    users: Option<usize>,
    /// Sampled replies per panel user (key audit.samples).
    #[arg(long)]
    samples: Option<usize>,
    /// Base samples the best_of_n baseline picks each reply from (key audit.best_of).
    #[arg(long)]
    best_of: Option<usize>,
}

/// Flags of `recrl train-ranker`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
struct TrainRankerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    keys: TrainRankerKeys,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// bf16 autocast on CUDA.
    #[arg(long)]
    bf16: bool,
}

/// Flags of `recrl lora-init`.
#[derive(clap::Args)]
struct LoraInitArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    keys: LoraInitKeys,
    /// Users to write a sample explanation for (greedy), 0 for none.
    #[arg(long, default_value_t = 3)]
    users: usize,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

/// Flags of `recrl ppo` (the seed's names).
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
struct PpoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    keys: RunKeys,
    /// A named arm and its keys (applied after --set, before the flags): shielded, no_proj,
    /// frozen, kl0, lora4, `tau<τ>`, each with optional `_grpo` or `_ppo`, `_g<G>`, `_e<E>` and
    /// `_s<seed>` (see ppo::arms::Arm::named).
    #[arg(long)]
    arm: Option<String>,
    /// Folder of the ranker checkpoint, or one of its files (the seed's `sasrec_<ds>.pt` reads
    /// recrl's `sasrec_<ds>.safetensors` beside it) (default: checkpoints/).
    #[arg(long)]
    ranker_ckpt: Option<PathBuf>,
    /// Folder of the shield basis, or one of its files (the seed's `basis_<ds>.pt` reads
    /// recrl's `basis_<ds>.safetensors` beside it) (default: checkpoints/).
    #[arg(long)]
    projection_basis: Option<PathBuf>,
    /// Train E without the shield (the no_proj arm).
    #[arg(long)]
    no_projection: bool,
    /// Keep E frozen (the control arm).
    #[arg(long)]
    freeze_items: bool,
    /// Run name: `logs/<ds>/<tag>/` (default: --arm, else the flags' arm, e.g. shielded, kl0).
    #[arg(long)]
    tag: Option<String>,
    /// Validation drift every N steps.
    #[arg(long, default_value_t = 10)]
    eval_every: usize,
    /// Save a resumable snapshot every N steps (and at the end) in `checkpoints/ppo_<ds>_<tag>/resume/`.
    #[arg(long, default_value_t = 10)]
    checkpoint_every: usize,
    /// Continue the arm from its last snapshot (a killed run picks up where it stopped;
    /// a larger --max_steps extends a finished one). With --overwrite as well, a snapshot made
    /// with other options is moved aside and the run starts afresh.
    #[arg(long)]
    resume: bool,
    /// Start afresh even if the tag already has a run: the earlier run's logs and checkpoint
    /// are moved aside to `logs/<ds>/.replaced/` and `checkpoints/.replaced/` (without it,
    /// re-using a tag without --resume is refused).
    #[arg(long)]
    overwrite: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

impl PpoArgs {
    /// The configuration (`--arm`'s keys after `--set`, the flags last) and the arm to run.
    fn configure(&self) -> Result<(Config, Arm)> {
        let named = self.arm.as_deref().map(Arm::named).transpose()?;
        let arm_sets = named.as_ref().map_or(&[][..], |a| &a.sets);
        let cfg = self.config.load(arm_sets, &self.keys)?;
        let arm = self.pick_arm(named.as_ref(), &cfg);
        paths::check_run_tag(&arm.tag)?;
        Ok((cfg, arm))
    }

    /// The arm to run: `named` (from `--arm`) or the flags' own, changed by `--freeze_items`,
    /// `--no_projection` and `--tau`; its tag is `--tag`, else the name, else
    /// [`arms::tag_for`] the flags.
    fn pick_arm(&self, named: Option<&Arm>, cfg: &Config) -> Arm {
        let coupled = match (self.freeze_items, self.no_projection, named) {
            (true, _, _) => Coupled::Frozen,
            (false, true, _) => Coupled::NoProjection,
            (false, false, Some(a)) => a.coupled,
            (false, false, None) => Coupled::Shielded,
        };
        let tau = self.keys.shield.tau.or(named.and_then(|a| a.tau));
        let tag = match (&self.tag, named) {
            (Some(t), _) => t.clone(),
            (None, Some(a)) => a.tag.clone(),
            (None, None) => arms::tag_for(coupled, cfg.kl_beta, tau, self.keys.lora_rank),
        };
        Arm {
            tag,
            coupled,
            tau,
            sets: named.map_or_else(Vec::new, |a| a.sets.clone()),
        }
    }
}

/// Flags of `recrl aggregate` (the seed's `aggregate_main.py --runs_dir --out_csv --out_dir`).
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
struct AggregateArgs {
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
    arms: String,
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
    fn options(&self, root: &std::path::Path) -> recrl_lib::report::Options {
        let base = if self.records {
            recrl_lib::report::Options::records(root)
        } else {
            recrl_lib::report::Options::new(root)
        };
        recrl_lib::report::Options {
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

/// Flags of `recrl audit`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
struct AuditArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    keys: AuditKeys,
    /// Arm to audit: a PPO tag (shielded, no_proj, …) or a baseline without RL on step 4's
    /// checkpoint: `base`, `base_no_soft`, `template`, `best_of_n`.
    #[arg(long, default_value = "shielded")]
    tag: String,
    /// The checkpoint to audit, instead of --tag: `checkpoints/ppo_<ds>_<tag>`,
    /// `checkpoints/lora_init_<ds>`, or a path ending in `latest` (the seed's
    /// `checkpoints/recrl/<ds>/latest`: the PPO checkpoint of the dataset saved last).
    #[arg(long, conflicts_with = "tag")]
    model_ckpt: Option<PathBuf>,
    /// Folder of the ranker checkpoint, or one of its files (the seed's `sasrec_<ds>.pt` reads
    /// recrl's `sasrec_<ds>.safetensors` beside it) (default: checkpoints/).
    #[arg(long)]
    ranker_ckpt: Option<PathBuf>,
    /// Policy thresholds (default: experiments/policy_thresholds.yaml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Exit non-zero when a threshold check fails.
    #[arg(long)]
    strict: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
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
        Cmd::Env { json, bench } => cmd_env(json, bench),
        Cmd::Config { config, keys } => {
            print!("{}", config.load(&[], &keys)?.to_yaml());
            Ok(())
        }
        Cmd::Assets { group } => cmd_assets(&group),
        Cmd::Humaneval(h) => cmd_humaneval(h),
        Cmd::TrainRanker(args) => cmd_train_ranker(&args),
        Cmd::LoraInit(args) => cmd_lora_init(&args),
        Cmd::Ppo(args) => cmd_ppo(&args),
        Cmd::Audit(args) => cmd_audit(&args),
        Cmd::Sweep(a) => cmd_sweep(&a),
        Cmd::Probe(a) => cmd_probe(&a),
        Cmd::Aggregate(a) => cmd_aggregate(&a.options(&paths::project_root()), &a.device, a.readme),
        Cmd::Basis {
            config,
            keys,
            device,
        } => cmd_basis(&config, &keys, &device),
        Cmd::Data {
            config,
            keys,
            force,
        } => match config.dataset.as_str() {
            "all" => cmd_data_all(&config, &keys, force),
            _ => cmd_data(&config, &keys, force),
        },
    }
}

fn cmd_sweep(a: &SweepArgs) -> Result<()> {
    use recrl_lib::sweep::{self, Stage};
    let root = paths::project_root();
    let sweep = sweep::Sweep::load(&a.file)?;
    let plan = sweep::plan(&root, &sweep);
    if a.dry_run {
        if let Err(e) = sweep.check_model(&root) {
            println!("note: {e:#}");
        }
        print!("{}", sweep::describe(&plan));
        return Ok(());
    }
    sweep.check_model(&root)?;
    if let Some(dir) = &a.slurm {
        let abs = |p: &Path| std::path::absolute(p).with_context(|| format!("{}", p.display()));
        let (file, dir) = (abs(&a.file)?, abs(dir)?);
        let exe = std::env::current_exe().context("locating the recrl binary")?;
        for (name, text) in sweep::slurm_scripts(&sweep, &file, &root, &exe, &dir) {
            recrl_lib::io::write_atomic(&dir.join(&name), text.as_bytes())?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("submit.sh"),
            std::fs::Permissions::from_mode(0o755),
        )?;
        println!(
            "Slurm scripts for {} run(s) in {}; submit with: bash {}",
            sweep.runs().len(),
            dir.display(),
            dir.join("submit.sh").display()
        );
        return Ok(());
    }
    if let Some(k) = a.run {
        ensure!(
            k < sweep.runs().len(),
            "--run {k}: the sweep has {} runs (0 to {})",
            sweep.runs().len(),
            sweep.runs().len().saturating_sub(1)
        );
    }
    let chosen: Vec<&sweep::Step> = plan
        .iter()
        .filter(|s| match (a.stage.as_deref(), a.run) {
            (Some("prepare"), _) => s.stage == Stage::Prepare,
            (Some(_), _) => s.stage == Stage::Aggregate,
            (None, Some(k)) => s.stage == Stage::Run(k),
            (None, None) => true,
        })
        .collect();
    let exe = std::env::current_exe().context("locating the recrl binary")?;
    let n = chosen.len();
    for (k, step) in chosen.into_iter().enumerate() {
        if step.is_done() {
            println!("[{}/{n}] {}: done, skipped", k + 1, step.name);
            continue;
        }
        println!("[{}/{n}] {} ...", k + 1, step.name);
        let t0 = std::time::Instant::now();
        let status = std::process::Command::new(&exe)
            .args(&step.args)
            .current_dir(&root)
            .env("RECRL_ROOT", &root)
            .status()
            .with_context(|| format!("starting {}", exe.display()))?;
        ensure!(
            status.success(),
            "{} failed ({status}): recrl {}\nrun the same `recrl sweep` again once fixed: finished steps are skipped and the PPO run resumes from its last snapshot",
            step.name,
            step.args.join(" ")
        );
        println!(
            "[{}/{n}] {} done in {:.0} s",
            k + 1,
            step.name,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn cmd_data(config: &ConfigArgs, keys: &DataKeys, force: bool) -> Result<()> {
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
fn cmd_data_all(config: &ConfigArgs, keys: &DataKeys, force: bool) -> Result<()> {
    let layout = paths::Layout::new(paths::project_root());
    let (mut done, mut missing, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for name in data::DatasetName::ALL {
        let raw = layout.raw_dir(name.as_str());
        if data::store::raw_files(&raw).map_or(true, |f| f.is_empty()) {
            missing.push(format!("{name} ({})", raw.display()));
            continue;
        }
        let one = ConfigArgs {
            dataset: name.to_string(),
            ..config.clone()
        };
        match cmd_data(&one, keys, force) {
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

fn cmd_humaneval(h: Humaneval) -> Result<()> {
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

fn cmd_env(json: bool, bench: bool) -> Result<()> {
    let report = env::EnvReport::collect();
    let timings: Vec<env::MatmulTiming> = if bench {
        let device = env::device()?;
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

fn cmd_probe(a: &ProbeArgs) -> Result<()> {
    use recrl_lib::explainer::{probe, Explainer, LoadOptions};
    let text = std::fs::read_to_string(&a.prompts)
        .with_context(|| format!("reading {}", a.prompts.display()))?;
    let prompts: Vec<Vec<u32>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON list of token-id lists",
            a.prompts.display()
        )
    })?;
    anyhow::ensure!(!prompts.is_empty(), "{}: no prompts", a.prompts.display());
    let device = pick_device(&a.device)?;
    let opts = LoadOptions {
        int8: a.int8,
        bf16: a.bf16,
    };
    let mut ex = Explainer::load(&a.model, device, opts)?;
    ex.tokenizer.eos.clear();
    eprintln!(
        "probe: {} on {device:?} ({:?})",
        a.model.display(),
        opts.kind(device)
    );
    if let Some(out) = &a.logits {
        let logits = probe::logits(&ex, &prompts)?;
        let named: Vec<(String, tch::Tensor)> = logits
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("logits.{i}"), t))
            .collect();
        recrl_lib::io::save_tensors(out, &named)?;
        eprintln!(
            "probe: logits of {} prompts → {}",
            prompts.len(),
            out.display()
        );
    }
    let mut timings = Vec::new();
    for &b in &a.batches {
        let t = probe::decode(&ex, &prompts, b, a.new_tokens, a.repeats)?;
        eprintln!("probe: greedy batch {b}: {:.1} tokens/s", t.tokens_per_s);
        timings.push(t);
    }
    let report = serde_json::json!({
        "model": a.model,
        "device": format!("{device:?}"),
        "kind": format!("{:?}", opts.kind(device)),
        "int8": a.int8,
        "decode": timings,
    });
    let text = serde_json::to_string_pretty(&report)?;
    match &a.json {
        Some(path) => recrl_lib::io::write_atomic(path, text.as_bytes())?,
        None => println!("{text}"),
    }
    Ok(())
}

fn cmd_train_ranker(args: &TrainRankerArgs) -> Result<()> {
    use recrl_lib::ranker::{self, TrainEvent, TrainOptions};
    use std::io::IsTerminal;
    let name: data::DatasetName = args.config.dataset.parse()?;
    let cfg = args.config.load(&[], &args.keys)?;
    let root = paths::project_root();
    let ds = data::store::load(&root, name)?;
    let device = pick_device(&args.device)?;
    let opts = TrainOptions {
        config: cfg.ranker.clone(),
        seed: cfg.seed,
        device,
        bf16: args.bf16,
        log_path: None,
    };
    eprintln!(
        "{name}: {} users, {} items; SASRec d={} blocks={} heads={} max_len={} loss={:?} on {device:?}",
        ds.n_users(),
        ds.n_items(),
        cfg.ranker.hidden,
        cfg.ranker.blocks,
        cfg.ranker.heads,
        cfg.ranker.max_len,
        cfg.ranker.loss
    );
    let tty = std::io::stderr().is_terminal();
    let (_, report) = ranker::train_and_save(&root, &ds, &opts, |ev| match ev {
        TrainEvent::Batch {
            epoch,
            done,
            total,
            loss,
            positions_per_s,
        } if tty => eprint!(
            "\repoch {epoch:>3} {}  {done}/{total} batches  loss {loss:.4}  {:.1}k pos/s",
            recrl_lib::display::bar(done * 100 / total.max(1)),
            positions_per_s / 1e3
        ),
        TrainEvent::Batch { .. } => {}
        TrainEvent::Epoch(e) => eprintln!("{}{}", if tty { "\r\x1b[K" } else { "" }, e.line()),
    })?;
    let (w, _) = paths::Layout::new(&root).ranker_files(name.as_str());
    eprintln!(
        "best epoch {} of {} ({:.1} s); saved {}",
        report.best_epoch,
        report.epochs.len(),
        report.seconds,
        w.display()
    );
    print!("{}", report.metrics_table());
    Ok(())
}

/// The device of a `--device` flag (checked: a malformed name or a GPU this machine lacks is
/// an error), else [`env::device`].
fn pick_device(flag: &Option<String>) -> Result<tch::Device> {
    match flag {
        Some(d) => env::usable(env::parse_device(Some(d)).context("--device")?),
        None => env::device(),
    }
}

fn cmd_basis(args: &ConfigArgs, keys: &BasisKeys, device: &Option<String>) -> Result<()> {
    use recrl_lib::shield::report;
    let name: data::DatasetName = args.dataset.parse()?;
    let cfg = args.load(&[], keys)?;
    let root = paths::project_root();
    let ds = data::store::load(&root, name)?;
    let ranker = recrl_lib::ranker::Ranker::load(
        &paths::Layout::new(&root).checkpoints(),
        &ds,
        pick_device(device)?,
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

fn cmd_lora_init(args: &LoraInitArgs) -> Result<()> {
    use recrl_lib::explainer::{init, GenerationConfig};
    let name: data::DatasetName = args.config.dataset.parse()?;
    let cfg = args.config.load(&[], &args.keys)?;
    let root = paths::project_root();
    let device = pick_device(&args.device)?;
    let ds = data::store::load(&root, name)?;
    let ranker =
        recrl_lib::ranker::Ranker::load(&paths::Layout::new(&root).checkpoints(), &ds, device)?;
    env::seed_everything(cfg.seed);
    let t0 = std::time::Instant::now();
    let mut ex = init::load_configured(&root, &cfg, device)?;
    eprintln!(
        "loaded {} in {:.1} s",
        cfg.explainer_model.display(),
        t0.elapsed().as_secs_f64()
    );
    let dir = paths::Layout::new(&root).lora_init_dir(name.as_str());
    let counts = init::init_and_save(&mut ex, &cfg, &ranker, &dir)?;
    print!("{}{}", init::model_table(&ex), init::counts_table(&counts));
    if args.users > 0 {
        let users: Vec<usize> = (1..=args.users.min(ds.n_users())).collect();
        let requests = init::requests_for(&ds, &ranker, &users, 5);
        let gen = GenerationConfig::greedy_of(&cfg);
        let replies = ex.explain(&ds, &requests, Some(ranker.output_table()), &gen)?;
        print!(
            "{}",
            init::explanations_table(
                &ds,
                &requests,
                &[("explanation (initial W_p, LoRA B = 0)", &replies)]
            )
        );
    }
    eprintln!("saved {}", dir.display());
    Ok(())
}

/// The folder of a `kind` checkpoint of `dataset` from its flag ([`paths::checkpoint_dir`]),
/// else `default`.
fn dir_of(flag: Option<&PathBuf>, kind: &str, dataset: &str, default: PathBuf) -> Result<PathBuf> {
    match flag {
        Some(p) => paths::checkpoint_dir(p, kind, dataset, &default),
        None => Ok(default),
    }
}

fn cmd_ppo(args: &PpoArgs) -> Result<()> {
    use recrl_lib::ppo::{
        arms::{Places, Schedule},
        run_arm,
    };
    let name: data::DatasetName = args.config.dataset.parse()?;
    let (cfg, arm) = args.configure()?;
    let root = paths::project_root();
    let device = pick_device(&args.device)?;
    let ds = data::store::load(&root, name)?;
    let layout = paths::Layout::new(&root);
    let ranker_dir = dir_of(
        args.ranker_ckpt.as_ref(),
        "sasrec",
        name.as_str(),
        layout.checkpoints(),
    )?;
    let basis_dir = dir_of(
        args.projection_basis.as_ref(),
        "basis",
        name.as_str(),
        layout.checkpoints(),
    )?;
    let (log_dir, ckpt_dir) = (
        layout.run_logs(name.as_str(), &arm.tag),
        layout.ppo_dir(name.as_str(), &arm.tag),
    );
    eprintln!(
        "{name}: arm {} ({:?}), {} steps × {} rollouts on {device:?}; logs in {}",
        arm.tag,
        arm.coupled,
        cfg.max_steps,
        cfg.ppo_batch,
        log_dir.display()
    );
    let places = Places {
        ranker_dir,
        basis_dir,
        ..Places::project(&root, device)
    };
    run_arm(
        &places,
        &ds,
        &cfg,
        &arm,
        &Schedule {
            eval_every: args.eval_every,
            checkpoint_every: args.checkpoint_every,
            resume: args.resume,
            overwrite: args.overwrite,
        },
        |line, samples| {
            eprintln!("{}", recrl_lib::ppo::run::step_line(line));
            if let Some((item, text)) = samples.first() {
                eprintln!("      {item}: {}", text.replace('\n', " "));
            }
        },
    )?;
    eprintln!("saved {}", ckpt_dir.display());
    Ok(())
}

fn cmd_aggregate(
    opts: &recrl_lib::report::Options,
    device: &Option<String>,
    readme: bool,
) -> Result<()> {
    use recrl_lib::report;
    let out = report::run(opts, pick_device(device)?, |l| eprintln!("{l}"))?;
    println!("{}", out.frame);
    if readme {
        let path = paths::project_root().join("README.md");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let table = report::seeds::markdown(&out.seeded);
        let spliced = report::seeds::splice(&text, &table)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        recrl_lib::io::write_atomic(&path, spliced.as_bytes())?;
        eprintln!("wrote the seeded results table into {}", path.display());
    }
    Ok(())
}

fn cmd_audit(args: &AuditArgs) -> Result<()> {
    use recrl_lib::audit::{self, view, Thresholds};
    let name: data::DatasetName = args.config.dataset.parse()?;
    let root = paths::project_root();
    let tag = match &args.model_ckpt {
        Some(p) => paths::tag_of_checkpoint(&paths::Layout::new(&root), p, name.as_str())?,
        None => args.tag.clone(),
    };
    paths::check_tag(&tag)?;
    let cfg = args.config.load(&[], &args.keys)?;
    let thresholds = match &args.policy {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::for_project(&root)?,
    };
    let ds = data::store::load(&root, name)?;
    let ranker_dir = dir_of(
        args.ranker_ckpt.as_ref(),
        "sasrec",
        name.as_str(),
        paths::Layout::new(&root).checkpoints(),
    )?;
    let device = pick_device(&args.device)?;
    eprintln!(
        "{name}: auditing {} (panel: {} held-out users, 0 = all; {} samples each) on {device:?}",
        tag, cfg.audit.users, cfg.audit.samples
    );
    let places = recrl_lib::ppo::arms::Places {
        ranker_dir,
        ..recrl_lib::ppo::arms::Places::project(&root, device)
    };
    let report = audit::run(&places, &ds, &cfg, &tag, &thresholds, |line| {
        eprintln!("  {line}")
    })?;
    println!("{}", view::metrics_table(&report));
    println!("{}", view::checks_table(&report));
    eprintln!(
        "wrote {}",
        audit::dirs(&root, name.as_str(), &tag)?
            .0
            .join(paths::files::AUDIT)
            .display()
    );
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| c.name.as_str())
        .collect();
    if args.strict && !failed.is_empty() {
        bail!("audit --strict: {} failed", failed.join(", "));
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args;

    /// The configuration `recrl <args>` runs with.
    fn configuration(args: &[&str]) -> Result<Config> {
        let cli = parse_from(std::iter::once("recrl").chain(args.iter().copied()))?;
        match &cli.command {
            Cmd::Config { config, keys } => config.load(&[], keys),
            Cmd::Data { config, keys, .. } => config.load(&[], keys),
            Cmd::TrainRanker(a) => a.config.load(&[], &a.keys),
            Cmd::Basis { config, keys, .. } => config.load(&[], keys),
            Cmd::LoraInit(a) => a.config.load(&[], &a.keys),
            Cmd::Ppo(a) => Ok(a.configure()?.0),
            Cmd::Audit(a) => a.config.load(&[], &a.keys),
            _ => bail!("{args:?} reads no configuration"),
        }
    }

    /// The subcommands that read the configuration.
    const CONFIGURED: [&str; 7] = [
        "config",
        "data",
        "train-ranker",
        "basis",
        "lora-init",
        "ppo",
        "audit",
    ];

    /// The seed's run flags (`recrl ppo`, `recrl config`) with values other than ml-100k's,
    /// and the `--set` each one equals.
    const RUN_FLAGS: &[(&[&str], &str)] = &[
        (&["--lora_rank", "4"], "lora_rank=4"),
        (&["--kl_beta", "0"], "kl_beta=0"),
        (&["--micro_batch_size", "2"], "micro_batch_size=2"),
        (&["--grad_accum", "3"], "grad_accum=3"),
        (&["--exec_batch", "8"], "exec_batch=8"),
        (&["--group_size", "2"], "group_size=2"),
        (&["--algorithm", "ppo"], "algorithm=ppo"),
        (
            &["--max_seq_len_explainer", "300"],
            "max_seq_len_explainer=300",
        ),
        (&["--explanation_max_len", "200"], "explanation_max_len=200"),
        (&["--canaries", "2"], "canaries=2"),
        (&["--max_steps", "7"], "max_steps=7"),
        (&["--seed", "5"], "seed=5"),
        (&["--int8"], "int8=true"),
        (&["--tau", "0.99"], "shield.tau=0.99"),
    ];

    /// The other subcommands' key flags, likewise.
    const STEP_FLAGS: &[(&str, &[&str], &str)] = &[
        ("data", &["--k-core", "3"], "data.k_core=3"),
        (
            "data",
            &["--rating-threshold", "3.5"],
            "data.rating_threshold=3.5",
        ),
        ("train-ranker", &["--seed", "7"], "seed=7"),
        ("train-ranker", &["--epochs", "3"], "ranker.epochs=3"),
        (
            "train-ranker",
            &["--batch_size", "32"],
            "ranker.batch_size=32",
        ),
        ("train-ranker", &["--lr", "0.002"], "ranker.lr=0.002"),
        (
            "train-ranker",
            &["--weight_decay", "0.1"],
            "ranker.weight_decay=0.1",
        ),
        ("train-ranker", &["--hidden", "32"], "ranker.hidden=32"),
        ("train-ranker", &["--blocks", "3"], "ranker.blocks=3"),
        ("train-ranker", &["--heads", "2"], "ranker.heads=2"),
        ("train-ranker", &["--max_len", "20"], "ranker.max_len=20"),
        ("train-ranker", &["--dropout", "0.1"], "ranker.dropout=0.1"),
        ("train-ranker", &["--loss", "bce"], "ranker.loss=bce"),
        ("train-ranker", &["--negatives", "4"], "ranker.negatives=4"),
        ("train-ranker", &["--patience", "5"], "ranker.patience=5"),
        ("train-ranker", &["--tie_output"], "ranker.tie_output=true"),
        ("train-ranker", &["--post_ln"], "ranker.pre_ln=false"),
        ("basis", &["--tau", "0.99"], "shield.tau=0.99"),
        ("basis", &["--probe_users", "500"], "shield.probe_users=500"),
        ("lora-init", &["--lora_rank", "4"], "lora_rank=4"),
        ("lora-init", &["--int8"], "int8=true"),
        (
            "lora-init",
            &["--model", "m.gguf"],
            "explainer_model=m.gguf",
        ),
        ("lora-init", &["--seed", "3"], "seed=3"),
        ("audit", &["--users", "12"], "audit.users=12"),
        ("audit", &["--samples", "7"], "audit.samples=7"),
        ("audit", &["--best_of", "3"], "audit.best_of=3"),
        ("audit", &["--seed", "9"], "seed=9"),
    ];

    fn every_key_flag() -> Vec<(&'static str, &'static [&'static str], &'static str)> {
        let run = RUN_FLAGS
            .iter()
            .flat_map(|&(f, s)| [("ppo", f, s), ("config", f, s)]);
        STEP_FLAGS.iter().copied().chain(run).collect()
    }

    #[test]
    fn each_flag_lands_on_its_key() {
        for (sub, flag, set) in every_key_flag() {
            let flagged = configuration(&[&[sub][..], flag].concat()).unwrap();
            let via_set = configuration(&[sub, "--set", set]).unwrap();
            let plain = configuration(&[sub]).unwrap();
            assert_eq!(flagged, via_set, "{sub} {flag:?} is not --set {set}");
            assert_ne!(flagged, plain, "{sub} {flag:?} changes nothing");
        }
    }

    #[test]
    fn every_key_flag_is_tested() {
        let keys = [
            ("data", DataKeys::augment_args(clap::Command::new("k"))),
            (
                "train-ranker",
                TrainRankerKeys::augment_args(clap::Command::new("k")),
            ),
            ("basis", BasisKeys::augment_args(clap::Command::new("k"))),
            (
                "lora-init",
                LoraInitKeys::augment_args(clap::Command::new("k")),
            ),
            ("ppo", RunKeys::augment_args(clap::Command::new("k"))),
            ("config", RunKeys::augment_args(clap::Command::new("k"))),
            ("audit", AuditKeys::augment_args(clap::Command::new("k"))),
        ];
        let tested = every_key_flag();
        for (sub, cmd) in keys {
            for long in cmd.get_arguments().filter_map(|a| a.get_long()) {
                let flag = format!("--{long}");
                assert!(
                    tested.iter().any(|(s, f, _)| *s == sub && f[0] == flag),
                    "{sub} {flag} untested"
                );
            }
        }
    }

    #[test]
    fn run_tags_that_leave_their_folders_are_refused_before_anything_runs() {
        for tag in [
            "../../escape",
            "x/../../CKPT_ESC",
            "/tmp/abs",
            "a\nb",
            "",
            "ranker",
            "base",
        ] {
            let err = configuration(&["ppo", "--tag", tag])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("run tag {tag:?}")), "{tag:?}: {err}");
        }
        assert!(configuration(&["ppo", "--tag", "mine_2.b"]).is_ok());
        assert!(configuration(&["ppo", "--arm", "shielded_s2"]).is_ok());
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn kebab_case_aliases_and_flags_winning_over_set() {
        let snake = configuration(&["ppo", "--kl_beta", "0", "--max_steps", "3"]).unwrap();
        let kebab = configuration(&["ppo", "--kl-beta", "0", "--max-steps", "3"]).unwrap();
        assert_eq!(snake, kebab);
        let k = configuration(&["train-ranker", "--batch-size", "16", "--post-ln"]).unwrap();
        assert_eq!((k.ranker.batch_size, k.ranker.pre_ln), (16, false));
        let both = configuration(&["ppo", "--set", "kl_beta=0.5", "--kl_beta", "0"]).unwrap();
        assert_eq!(both.kl_beta, 0.0);
        assert!(parse_from(["recrl", "aggregate", "--no-static"]).is_ok());
        assert!(parse_from(["recrl", "train-ranker", "--epochs", "x"]).is_err());
    }

    #[test]
    fn set_and_preset_work_on_every_subcommand_and_unknown_keys_error() {
        for sub in CONFIGURED {
            let cfg = configuration(&[sub, "--set", "audit.bootstrap=7"]).unwrap();
            assert_eq!(cfg.audit.bootstrap, 7, "{sub}");
            let smoke = configuration(&[sub, "--preset", "smoke"]).unwrap();
            assert_eq!((smoke.max_steps, smoke.audit.users), (2, 4), "{sub}");
            let err = configuration(&[sub, "--set", "ranker.hiden=3"]).unwrap_err();
            assert!(
                format!("{err:#}").contains("unknown key `hiden` in `ranker.hiden`"),
                "{sub}: {err:#}"
            );
            let err = configuration(&[sub, "--set", "kl_beta=lots"]).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("recrl_default.yaml")
                    && msg.contains("dataset `ml-100k`")
                    && msg.contains("key `kl_beta`"),
                "{sub}: {msg}"
            );
        }
        assert!(configuration(&["env"]).is_err());
    }

    #[test]
    fn audit_flags_parse() {
        let cli = parse_from([
            "recrl", "audit", "--tag", "base", "--users", "12", "--strict", "--policy", "p.yaml",
        ])
        .unwrap();
        let Cmd::Audit(a) = cli.command else {
            panic!("not audit")
        };
        assert_eq!(
            (a.tag.as_str(), a.keys.audit.users, a.strict),
            ("base", Some(12), true)
        );
        assert_eq!(a.policy, Some(PathBuf::from("p.yaml")));
        let cli = parse_from([
            "recrl",
            "audit",
            "--model_ckpt",
            "checkpoints/recrl/books/latest",
        ]);
        let Cmd::Audit(a) = cli.unwrap().command else {
            panic!("not audit")
        };
        assert_eq!(
            a.model_ckpt,
            Some(PathBuf::from("checkpoints/recrl/books/latest"))
        );
        assert!(parse_from(["recrl", "audit", "--tag", "x", "--model_ckpt", "y"]).is_err());
    }

    fn ppo(args: &[&str]) -> (Config, Arm) {
        let cli = parse_from(
            std::iter::once("recrl")
                .chain(["ppo"])
                .chain(args.iter().copied()),
        )
        .unwrap();
        let Cmd::Ppo(args) = cli.command else {
            panic!("not ppo")
        };
        args.configure().unwrap()
    }

    #[test]
    fn ppo_flags_pick_the_arm_and_its_tag() {
        let (_, arm) = ppo(&["--no_projection", "--lora_rank", "4", "--kl_beta", "0"]);
        assert_eq!(
            (arm.coupled, arm.tag.as_str()),
            (Coupled::NoProjection, "kl0_lora4")
        );
        let (cfg, arm) = ppo(&["--tau", "0.99", "--freeze_items"]);
        assert_eq!(cfg.shield.tau, 0.99);
        assert_eq!((arm.coupled, arm.tau), (Coupled::Frozen, Some(0.99)));
        assert_eq!(arm.tag, "frozen_tau0.99");
        let (_, arm) = ppo(&["--lora_rank", "4"]);
        assert_eq!(arm.tag, "shielded_lora4");
        let (_, arm) = ppo(&["--tag", "mine", "--no_projection"]);
        assert_eq!(arm.tag, "mine");
    }

    #[test]
    fn ppo_arm_names_set_their_keys_like_the_script_flags_did() {
        // experiments/cpu_runs_ml100k.sh before `--arm`: (name, its flags)
        let cut = ["--set", "epochs=1", "--set", "grad_accum=2"];
        let old_flags: [(&str, &[&str]); 9] = [
            ("shielded", &["--grad_accum", "2"]),
            ("no_proj", &["--no_projection", "--grad_accum", "2"]),
            ("frozen", &["--freeze_items", "--grad_accum", "2"]),
            ("kl0", &["--kl_beta", "0", "--grad_accum", "2"]),
            ("lora4", &["--lora_rank", "4", "--grad_accum", "2"]),
            ("tau0.99", &["--tau", "0.99", "--grad_accum", "2"]),
            ("shielded_g4", &["--grad_accum", "2", "--group_size", "4"]),
            (
                "no_proj_e4",
                &["--set", "epochs=4", "--no_projection", "--grad_accum", "1"],
            ),
            (
                "kl0_g2_e3",
                &[
                    "--set",
                    "epochs=3",
                    "--kl_beta",
                    "0",
                    "--grad_accum",
                    "1",
                    "--group_size",
                    "2",
                ],
            ),
        ];
        for (name, flags) in old_flags {
            let (new_cfg, new_arm) = ppo(&[&cut[..], &["--arm", name][..]].concat());
            let old = [&["--set", "epochs=1", "--tag", name][..], flags].concat();
            let (old_cfg, old_arm) = ppo(&old);
            assert_eq!(new_cfg, old_cfg, "{name}");
            assert_eq!(
                (new_arm.tag.as_str(), new_arm.coupled, new_arm.tau),
                (old_arm.tag.as_str(), old_arm.coupled, old_arm.tau),
                "{name}"
            );
        }
        assert!(parse_from(["recrl", "ppo", "--arm", "nope"])
            .map(|c| match c.command {
                Cmd::Ppo(a) => a.configure().is_err(),
                _ => false,
            })
            .unwrap());
    }

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
