//! `recrl probe`: a model's logits on given token ids and its greedy decode speed
//! ([`probe::run`]), for the GPU check (scripts/gpu_check.sh).

use crate::flags::pick_device;
use anyhow::{Context, Result};
use recrl_lib::explainer::probe::{self, Probe};
use recrl_lib::explainer::LoadOptions;
use std::path::PathBuf;

/// Flags of `recrl probe`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
pub struct ProbeArgs {
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

pub fn run(a: &ProbeArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.prompts)
        .with_context(|| format!("reading {}", a.prompts.display()))?;
    let prompts: Vec<Vec<u32>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON list of token-id lists",
            a.prompts.display()
        )
    })?;
    anyhow::ensure!(!prompts.is_empty(), "{}: no prompts", a.prompts.display());
    let measure = Probe {
        model: a.model.clone(),
        logits: a.logits.clone(),
        batches: a.batches.clone(),
        new_tokens: a.new_tokens,
        repeats: a.repeats,
        opts: LoadOptions {
            int8: a.int8,
            bf16: a.bf16,
        },
        device: pick_device(&a.device)?,
    };
    let report = probe::run(&measure, &prompts, |l| eprintln!("{l}"))?;
    let text = serde_json::to_string_pretty(&report)?;
    match &a.json {
        Some(path) => recrl_lib::io::write_atomic(path, text.as_bytes())?,
        None => println!("{text}"),
    }
    Ok(())
}
