//! `recrl lora-init` (step 4): the explainer with LoRA and `W_p` added, saved
//! ([`init::init_and_save`]), with sample explanations.

use crate::flags::pick_device;
use crate::keys::{ConfigArgs, LoraInitKeys};
use anyhow::Result;
use recrl_lib::explainer::{init, GenerationConfig};
use recrl_lib::{data, env, paths};

/// Flags of `recrl lora-init`.
#[derive(clap::Args)]
pub struct LoraInitArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: LoraInitKeys,
    /// Users to write a sample explanation for (greedy), 0 for none.
    #[arg(long, default_value_t = 3)]
    users: usize,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

pub fn run(args: &LoraInitArgs) -> Result<()> {
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
