//! `recrl train-ranker` (step 2): train SASRec and save it ([`ranker::train_and_save`]).

use crate::flags::pick_device;
use crate::keys::{ConfigArgs, TrainRankerKeys};
use anyhow::Result;
use recrl_lib::{data, paths, ranker};

/// Flags of `recrl train-ranker`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
pub struct TrainRankerArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: TrainRankerKeys,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// bf16 autocast on CUDA.
    #[arg(long)]
    bf16: bool,
}

pub fn run(args: &TrainRankerArgs) -> Result<()> {
    use recrl_lib::ranker::{TrainEvent, TrainOptions};
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
