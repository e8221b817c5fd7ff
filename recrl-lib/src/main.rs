//! `recrl`: the pipeline's steps from the command line (one subcommand per step).

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use recrl_lib::{assets, config::Config, data, display::Table, env, paths};
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
    Config(ConfigArgs),
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
    /// Step 2: train SASRec → `checkpoints/sasrec_<ds>.safetensors` + `.json`.
    #[command(name = "train-ranker")]
    TrainRanker(Box<TrainRankerArgs>),
    /// Step 3: fit the shield's basis of user states → `checkpoints/basis_<ds>.safetensors` + `.json`.
    Basis {
        #[command(flatten)]
        config: ConfigArgs,
        /// Energy threshold τ (key shield.tau).
        #[arg(long)]
        tau: Option<f64>,
        /// Cap on the probe users (key shield.probe_users).
        #[arg(long = "probe_users", alias = "probe-users")]
        probe_users: Option<usize>,
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
    /// Step 7: text metrics of every run's explanations, `experiments/aggregate_results.csv`,
    /// `experiments/main_results.tex` and the figures in `figures/`.
    Aggregate {
        /// Arms expected per dataset; absent ones get a row marked missing (comma-separated).
        #[arg(long, default_value = "base,shielded,no_proj,frozen,kl0,lora4")]
        arms: String,
        /// Only the HTML figures (no SVG/PNG through kaleido).
        #[arg(long = "no_static", alias = "no-static")]
        no_static: bool,
        /// Re-score explanations even when their text_metrics.json is up to date.
        #[arg(long)]
        rescore: bool,
        /// Device of the MiniLM encoder: cpu, cuda, cuda:N.
        #[arg(long)]
        device: Option<String>,
    },
    /// Verify the registry-fetched assets against their pinned sha256.
    Assets {
        /// Asset group.
        #[arg(long, default_value = "default")]
        group: String,
    },
}

/// Flags of `recrl audit`.
#[derive(clap::Args)]
struct AuditArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Arm to audit: `base` (the step-4 checkpoint, before RL) or a PPO tag (shielded, no_proj, …).
    #[arg(long, default_value = "shielded")]
    tag: String,
    /// Folder (or file in it) of the ranker checkpoint (default: checkpoints/).
    #[arg(long = "ranker_ckpt", alias = "ranker-ckpt")]
    ranker_ckpt: Option<PathBuf>,
    /// Audit-set size (key audit.users).
    #[arg(long)]
    users: Option<usize>,
    /// Policy thresholds (default: experiments/policy_thresholds.yaml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Exit non-zero when a threshold check fails.
    #[arg(long)]
    strict: bool,
    /// Seed (audit-set sampling and generation).
    #[arg(long)]
    seed: Option<u64>,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

/// Which configuration: dataset section, file and `--set` overrides.
#[derive(clap::Args)]
struct ConfigArgs {
    /// Dataset (its section of the configuration file).
    #[arg(long, default_value = "ml-100k")]
    dataset: String,
    /// Configuration file (default: experiments/recrl_default.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any key, e.g. --set ranker.hidden=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl ConfigArgs {
    /// The resolved configuration, with `extra` overrides applied after `--set`.
    fn load(&self, extra: Vec<(String, String)>) -> Result<Config> {
        let mut overrides = parse_sets(&self.sets)?;
        overrides.extend(extra);
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| paths::Layout::project().default_config());
        Config::load(&path, &self.dataset, &overrides)
    }
}

/// Flags of `recrl train-ranker`; each one overrides the `ranker` key of the same name.
#[derive(clap::Args)]
struct TrainRankerArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seed (default: the configuration's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Maximum epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Sequences (windows) per batch.
    #[arg(long = "batch_size", alias = "batch-size")]
    batch_size: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long = "weight_decay", alias = "weight-decay")]
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
    #[arg(long = "max_len", alias = "max-len")]
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
    #[arg(long = "tie_output", alias = "tie-output")]
    tie_output: bool,
    /// Post-LN blocks instead of pre-LN.
    #[arg(long = "post_ln", alias = "post-ln")]
    post_ln: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// bf16 autocast on CUDA.
    #[arg(long)]
    bf16: bool,
}

impl TrainRankerArgs {
    /// The flags as configuration overrides (`ranker.<key>=<value>`).
    fn overrides(&self) -> Vec<(String, String)> {
        let mut o = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                o.push((k.to_string(), v));
            }
        };
        let s = |v: Option<usize>| v.map(|v| v.to_string());
        let f = |v: Option<f64>| v.map(|v| v.to_string());
        put("seed", self.seed.map(|v| v.to_string()));
        put("ranker.epochs", s(self.epochs));
        put("ranker.batch_size", s(self.batch_size));
        put("ranker.lr", f(self.lr));
        put("ranker.weight_decay", f(self.weight_decay));
        put("ranker.hidden", s(self.hidden));
        put("ranker.blocks", s(self.blocks));
        put("ranker.heads", s(self.heads));
        put("ranker.max_len", s(self.max_len));
        put("ranker.dropout", f(self.dropout));
        put("ranker.loss", self.loss.clone());
        put("ranker.negatives", s(self.negatives));
        put("ranker.patience", s(self.patience));
        put("ranker.tie_output", self.tie_output.then(|| "true".into()));
        put("ranker.pre_ln", self.post_ln.then(|| "false".into()));
        o
    }
}

/// Flags of `recrl lora-init`; each one overrides the configuration key of the same name.
#[derive(clap::Args)]
struct LoraInitArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// LoRA rank.
    #[arg(long = "lora_rank", alias = "lora-rank")]
    lora_rank: Option<usize>,
    /// Int8 weight-only quantisation of the frozen base.
    #[arg(long)]
    int8: bool,
    /// Explainer weights: a GGUF file or a Hugging Face folder (key explainer_model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Seed of the adapter and W_p initialisation and of the sample explanations.
    #[arg(long)]
    seed: Option<u64>,
    /// Users to write a sample explanation for (greedy), 0 for none.
    #[arg(long, default_value_t = 3)]
    users: usize,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

impl LoraInitArgs {
    fn overrides(&self) -> Vec<(String, String)> {
        let mut o = Vec::new();
        if let Some(r) = self.lora_rank {
            o.push(("lora_rank".into(), r.to_string()));
        }
        if self.int8 {
            o.push(("int8".into(), "true".into()));
        }
        if let Some(m) = &self.model {
            o.push(("explainer_model".into(), m.display().to_string()));
        }
        if let Some(s) = self.seed {
            o.push(("seed".into(), s.to_string()));
        }
        o
    }
}

/// Flags of `recrl ppo` (the seed's names); each overrides the configuration key of the same name.
#[derive(clap::Args)]
struct PpoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Folder (or file in it) of the ranker checkpoint (default: checkpoints/).
    #[arg(long = "ranker_ckpt", alias = "ranker-ckpt")]
    ranker_ckpt: Option<PathBuf>,
    /// Folder (or file in it) of the shield basis (default: checkpoints/).
    #[arg(long = "projection_basis", alias = "projection-basis")]
    projection_basis: Option<PathBuf>,
    /// Fit the basis at this τ now instead of loading it (the τ sweep).
    #[arg(long)]
    tau: Option<f64>,
    /// Train E without the shield (the no_proj arm).
    #[arg(long = "no_projection", alias = "no-projection")]
    no_projection: bool,
    /// Keep E frozen (the control arm).
    #[arg(long = "freeze_items", alias = "freeze-items")]
    freeze_items: bool,
    /// LoRA rank.
    #[arg(long = "lora_rank", alias = "lora-rank")]
    lora_rank: Option<usize>,
    /// Per-token KL penalty β.
    #[arg(long = "kl_beta", alias = "kl-beta")]
    kl_beta: Option<f64>,
    /// Rollouts per forward/backward pass.
    #[arg(long = "micro_batch_size", alias = "micro-batch-size")]
    micro_batch_size: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long = "grad_accum", alias = "grad-accum")]
    grad_accum: Option<usize>,
    /// Rollouts per user prompt; above 1, a group baseline replaces the value head.
    #[arg(long = "group_size", alias = "group-size")]
    group_size: Option<usize>,
    /// Prompt + reply token budget.
    #[arg(long = "max_seq_len_explainer", alias = "max-seq-len-explainer")]
    max_seq_len_explainer: Option<usize>,
    /// Characters of an explanation kept for scoring and logs.
    #[arg(long = "explanation_max_len", alias = "explanation-max-len")]
    explanation_max_len: Option<usize>,
    /// Synthetic secrets appended to prompts, for the audit's canary exposure.
    #[arg(long)]
    canaries: Option<usize>,
    /// PPO steps.
    #[arg(long = "max_steps", alias = "max-steps")]
    max_steps: Option<usize>,
    /// Run name: `logs/<ds>/<tag>/` (default: the arm, e.g. shielded, no_proj, frozen, kl0).
    #[arg(long)]
    tag: Option<String>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Int8 weight-only base model.
    #[arg(long)]
    int8: bool,
    /// Validation drift every N steps.
    #[arg(long = "eval_every", alias = "eval-every", default_value_t = 10)]
    eval_every: usize,
    /// Save a resumable snapshot every N steps (and at the end) in `checkpoints/ppo_<ds>_<tag>/resume/`.
    #[arg(
        long = "checkpoint_every",
        alias = "checkpoint-every",
        default_value_t = 10
    )]
    checkpoint_every: usize,
    /// Continue the arm from its last snapshot (a killed run picks up where it stopped;
    /// a larger --max_steps extends a finished one).
    #[arg(long)]
    resume: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

impl PpoArgs {
    fn overrides(&self) -> Vec<(String, String)> {
        let mut o = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                o.push((k.to_string(), v));
            }
        };
        put("lora_rank", self.lora_rank.map(|v| v.to_string()));
        put("kl_beta", self.kl_beta.map(|v| v.to_string()));
        put(
            "micro_batch_size",
            self.micro_batch_size.map(|v| v.to_string()),
        );
        put("grad_accum", self.grad_accum.map(|v| v.to_string()));
        put("group_size", self.group_size.map(|v| v.to_string()));
        put(
            "max_seq_len_explainer",
            self.max_seq_len_explainer.map(|v| v.to_string()),
        );
        put(
            "explanation_max_len",
            self.explanation_max_len.map(|v| v.to_string()),
        );
        put("max_steps", self.max_steps.map(|v| v.to_string()));
        put("canaries", self.canaries.map(|v| v.to_string()));
        put("seed", self.seed.map(|v| v.to_string()));
        put("int8", self.int8.then(|| "true".to_string()));
        put("shield.tau", self.tau.map(|v| v.to_string()));
        o
    }

    /// The arm these flags select.
    fn coupled(&self) -> recrl_lib::ppo::Coupled {
        use recrl_lib::ppo::Coupled;
        match (self.freeze_items, self.no_projection) {
            (true, _) => Coupled::Frozen,
            (false, true) => Coupled::NoProjection,
            _ => Coupled::Shielded,
        }
    }

    /// `--tag`, else the arm's name (kl0 when β = 0, with the τ when refitted).
    fn tag(&self, cfg: &Config) -> String {
        use recrl_lib::ppo::Coupled;
        if let Some(t) = &self.tag {
            return t.clone();
        }
        let mut t = match self.coupled() {
            Coupled::Frozen => "frozen".to_string(),
            Coupled::NoProjection => "no_proj".to_string(),
            Coupled::Shielded => "shielded".to_string(),
        };
        if cfg.kl_beta == 0.0 {
            t = "kl0".into();
        }
        if let Some(tau) = self.tau {
            t.push_str(&format!("_tau{tau}"));
        }
        if let Some(r) = self.lora_rank {
            t.push_str(&format!("_lora{r}"));
        }
        t
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
        Cmd::Config(args) => {
            print!("{}", args.load(Vec::new())?.to_yaml());
            Ok(())
        }
        Cmd::Assets { group } => cmd_assets(&group),
        Cmd::TrainRanker(args) => cmd_train_ranker(&args),
        Cmd::LoraInit(args) => cmd_lora_init(&args),
        Cmd::Ppo(args) => cmd_ppo(&args),
        Cmd::Audit(args) => cmd_audit(&args),
        Cmd::Aggregate {
            arms,
            no_static,
            rescore,
            device,
        } => cmd_aggregate(&arms, !no_static, rescore, &device),
        Cmd::Basis {
            config,
            tau,
            probe_users,
            device,
        } => {
            let mut o = Vec::new();
            if let Some(t) = tau {
                o.push(("shield.tau".to_string(), t.to_string()));
            }
            if let Some(p) = probe_users {
                o.push(("shield.probe_users".to_string(), p.to_string()));
            }
            cmd_basis(&config, o, &device)
        }
        Cmd::Data {
            dataset,
            config,
            k_core,
            rating_threshold,
            force,
        } => {
            let name: data::DatasetName = dataset.parse()?;
            let path = config.unwrap_or_else(|| paths::Layout::project().default_config());
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

fn cmd_train_ranker(args: &TrainRankerArgs) -> Result<()> {
    use recrl_lib::ranker::{self, TrainEvent, TrainOptions};
    use std::io::IsTerminal;
    let name: data::DatasetName = args.config.dataset.parse()?;
    let cfg = args.config.load(args.overrides())?;
    let root = paths::project_root();
    let ds = data::store::load(&root, name)?;
    let device = pick_device(&args.device);
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

fn pick_device(flag: &Option<String>) -> tch::Device {
    match flag {
        Some(d) => {
            env::load_cuda_backend();
            env::parse_device(Some(d))
        }
        None => env::device(),
    }
}

fn cmd_basis(
    args: &ConfigArgs,
    overrides: Vec<(String, String)>,
    device: &Option<String>,
) -> Result<()> {
    use recrl_lib::shield::report;
    let name: data::DatasetName = args.dataset.parse()?;
    let cfg = args.load(overrides)?;
    let root = paths::project_root();
    let ds = data::store::load(&root, name)?;
    let ranker =
        recrl_lib::ranker::Ranker::load(&root.join("checkpoints"), &ds, pick_device(device))?;
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
    let cfg = args.config.load(args.overrides())?;
    let root = paths::project_root();
    let device = pick_device(&args.device);
    let ds = data::store::load(&root, name)?;
    let ranker = recrl_lib::ranker::Ranker::load(&root.join("checkpoints"), &ds, device)?;
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
        let gen = GenerationConfig {
            max_new_tokens: cfg.max_new_tokens,
            seed: cfg.seed,
            ..GenerationConfig::greedy(0)
        };
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

fn dir_of(path: Option<&PathBuf>, default: PathBuf) -> PathBuf {
    match path {
        Some(p) if p.is_file() => p.parent().map(PathBuf::from).unwrap_or_default(),
        Some(p) => p.clone(),
        None => default,
    }
}

fn cmd_ppo(args: &PpoArgs) -> Result<()> {
    use recrl_lib::ppo::{arm_dirs, arms::Schedule, run_arm, Arm};
    let name: data::DatasetName = args.config.dataset.parse()?;
    let cfg = args.config.load(args.overrides())?;
    let root = paths::project_root();
    let device = pick_device(&args.device);
    let ds = data::store::load(&root, name)?;
    let arm = Arm {
        tag: args.tag(&cfg),
        coupled: args.coupled(),
        tau: args.tau,
    };
    let ranker_dir = dir_of(args.ranker_ckpt.as_ref(), root.join("checkpoints"));
    let basis_dir = dir_of(args.projection_basis.as_ref(), root.join("checkpoints"));
    let (log_dir, ckpt_dir) = arm_dirs(&root, name.as_str(), &arm.tag);
    eprintln!(
        "{name}: arm {} ({:?}), {} steps × {} rollouts on {device:?}; logs in {}",
        arm.tag,
        arm.coupled,
        cfg.max_steps,
        cfg.ppo_batch,
        log_dir.display()
    );
    run_arm(
        &root,
        &root,
        &ranker_dir,
        &basis_dir,
        &ds,
        &cfg,
        &arm,
        &Schedule {
            eval_every: args.eval_every,
            checkpoint_every: args.checkpoint_every,
            resume: args.resume,
        },
        device,
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

fn cmd_aggregate(arms: &str, statics: bool, rescore: bool, device: &Option<String>) -> Result<()> {
    use recrl_lib::report;
    let opts = report::Options {
        arms: arms
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        statics,
        rescore,
        ..report::Options::new(&paths::project_root())
    };
    let out = report::run(&opts, pick_device(device), |l| eprintln!("{l}"))?;
    println!("{}", out.frame);
    Ok(())
}

fn cmd_audit(args: &AuditArgs) -> Result<()> {
    use recrl_lib::audit::{self, view, Thresholds};
    let name: data::DatasetName = args.config.dataset.parse()?;
    let mut o = Vec::new();
    if let Some(u) = args.users {
        o.push(("audit.users".to_string(), u.to_string()));
    }
    if let Some(s) = args.seed {
        o.push(("seed".to_string(), s.to_string()));
    }
    let cfg = args.config.load(o)?;
    let root = paths::project_root();
    let thresholds = match &args.policy {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::for_project(&root)?,
    };
    let ds = data::store::load(&root, name)?;
    let ranker_dir = dir_of(args.ranker_ckpt.as_ref(), root.join("checkpoints"));
    let device = pick_device(&args.device);
    eprintln!(
        "{name}: auditing {} ({} users) on {device:?}",
        args.tag, cfg.audit.users
    );
    let report = audit::run(
        &root,
        &root,
        &ranker_dir,
        &ds,
        &cfg,
        &args.tag,
        &thresholds,
        device,
        |line| eprintln!("  {line}"),
    )?;
    println!("{}", view::metrics_table(&report));
    println!("{}", view::checks_table(&report));
    eprintln!(
        "wrote {}",
        audit::dirs(&root, name.as_str(), &args.tag)
            .0
            .join("audit.json")
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

    #[test]
    fn lora_init_flags_become_configuration_overrides() {
        let cli = Cli::try_parse_from([
            "recrl",
            "lora-init",
            "--lora_rank",
            "4",
            "--int8",
            "--model",
            "m.gguf",
            "--seed",
            "3",
        ])
        .unwrap();
        let Cmd::LoraInit(args) = cli.command else {
            panic!("not lora-init")
        };
        let cfg = args.config.load(args.overrides()).unwrap();
        assert_eq!(cfg.lora_rank, 4);
        assert!(cfg.int8);
        assert_eq!(cfg.explainer_model, PathBuf::from("m.gguf"));
        assert_eq!(cfg.seed, 3);
    }

    #[test]
    fn audit_flags_parse() {
        let cli = Cli::try_parse_from([
            "recrl", "audit", "--tag", "base", "--users", "12", "--strict", "--policy", "p.yaml",
        ])
        .unwrap();
        let Cmd::Audit(a) = cli.command else {
            panic!("not audit")
        };
        assert_eq!(
            (a.tag.as_str(), a.users, a.strict),
            ("base", Some(12), true)
        );
        assert_eq!(a.policy, Some(PathBuf::from("p.yaml")));
    }

    #[test]
    fn ppo_flags_become_configuration_overrides_and_pick_the_arm() {
        let cli = Cli::try_parse_from([
            "recrl",
            "ppo",
            "--no_projection",
            "--lora_rank",
            "4",
            "--kl_beta",
            "0",
            "--micro_batch_size",
            "2",
            "--grad_accum",
            "3",
            "--group_size",
            "4",
            "--max_seq_len_explainer",
            "300",
            "--explanation_max_len",
            "200",
            "--max_steps",
            "7",
            "--seed",
            "5",
            "--int8",
        ])
        .unwrap();
        let Cmd::Ppo(args) = cli.command else {
            panic!("not ppo")
        };
        let cfg = args.config.load(args.overrides()).unwrap();
        assert_eq!(
            (
                cfg.lora_rank,
                cfg.kl_beta,
                cfg.micro_batch_size,
                cfg.grad_accum,
                cfg.group_size
            ),
            (4, 0.0, 2, 3, 4)
        );
        assert_eq!(
            (
                cfg.max_seq_len_explainer,
                cfg.explanation_max_len,
                cfg.max_steps,
                cfg.seed
            ),
            (300, 200, 7, 5)
        );
        assert!(cfg.int8);
        assert_eq!(args.coupled(), recrl_lib::ppo::Coupled::NoProjection);
        assert_eq!(args.tag(&cfg), "kl0_lora4");
        let cli = Cli::try_parse_from(["recrl", "ppo", "--tau", "0.99", "--freeze_items"]).unwrap();
        let Cmd::Ppo(args) = cli.command else {
            panic!("not ppo")
        };
        let cfg = args.config.load(args.overrides()).unwrap();
        assert_eq!(cfg.shield.tau, 0.99);
        assert_eq!(args.coupled(), recrl_lib::ppo::Coupled::Frozen);
        assert_eq!(args.tag(&cfg), "frozen_tau0.99");
    }

    #[test]
    fn basis_flags_parse() {
        let cli = Cli::try_parse_from(["recrl", "basis", "--tau", "0.99", "--probe_users", "500"])
            .unwrap();
        let Cmd::Basis {
            tau, probe_users, ..
        } = cli.command
        else {
            panic!("not basis")
        };
        assert_eq!((tau, probe_users), (Some(0.99), Some(500)));
    }

    #[test]
    fn train_ranker_flags_become_configuration_overrides() {
        let cli = Cli::try_parse_from([
            "recrl",
            "train-ranker",
            "--dataset",
            "ml-100k",
            "--epochs",
            "3",
            "--batch_size",
            "32",
            "--lr",
            "0.002",
            "--loss",
            "bce",
            "--negatives",
            "4",
            "--tie_output",
            "--post_ln",
            "--seed",
            "9",
            "--set",
            "ranker.hidden=32",
        ])
        .unwrap();
        let Cmd::TrainRanker(args) = cli.command else {
            panic!("not train-ranker")
        };
        let cfg = args.config.load(args.overrides()).unwrap();
        let r = &cfg.ranker;
        assert_eq!(
            (r.epochs, r.batch_size, r.negatives, r.hidden),
            (3, 32, 4, 32)
        );
        assert_eq!(r.lr, 0.002);
        assert_eq!(r.loss, recrl_lib::config::RankerLoss::Bce);
        assert!(r.tie_output && !r.pre_ln);
        assert_eq!(cfg.seed, 9);
        // untouched keys keep the configuration's values (ml-100k: max_len 50)
        assert_eq!(r.max_len, 50);
        assert!(Cli::try_parse_from(["recrl", "train-ranker", "--epochs", "x"]).is_err());
    }
}
