//! Measurements of a loaded explainer for the GPU check (`recrl probe`, `scripts/gpu_check.sh`):
//! its logits on given token ids, to compare with transformers, and its greedy decode
//! throughput at a few batch sizes, with the tokens it generated; [`run`] is the whole
//! `recrl probe`.

use super::{generate, Explainer, GenerationConfig, LoadOptions, PromptBatch};
use anyhow::{ensure, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Refuses an empty prompt or a token id outside `ex`'s vocabulary, naming the prompt.
pub fn check_ids(ex: &Explainer, prompts: &[Vec<u32>]) -> Result<()> {
    let vocab = ex.model.config.vocab_size;
    for (i, p) in prompts.iter().enumerate() {
        ensure!(!p.is_empty(), "prompt {i} is empty");
        if let Some(&t) = p.iter().find(|&&t| t as usize >= vocab) {
            anyhow::bail!("prompt {i}: token id {t} is outside the model's vocabulary of {vocab}");
        }
    }
    Ok(())
}

/// Logits `[T, vocab]` (f32, on the CPU) of each prompt, run alone (no padding).
pub fn logits(ex: &Explainer, prompts: &[Vec<u32>]) -> Result<Vec<Tensor>> {
    check_ids(ex, prompts)?;
    let device = ex.model.device();
    Ok(tch::no_grad(|| {
        prompts
            .iter()
            .map(|p| {
                let ids: Vec<i64> = p.iter().map(|&t| t as i64).collect();
                let ids = Tensor::from_slice(&ids).view([1, -1]).to_device(device);
                let mask = ids.ones_like().to_kind(Kind::Bool);
                ex.model
                    .forward_ids(&ids, &mask)
                    .squeeze_dim(0)
                    .to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu)
            })
            .collect()
    }))
}

/// Greedy decoding of one batch size, timed.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeTiming {
    /// Prompts decoded together.
    pub batch: usize,
    /// New tokens per prompt (every reply runs to it: end-of-sequence tokens are ignored).
    pub new_tokens: usize,
    /// Wall seconds of each timed run (after one warm-up run).
    pub seconds: Vec<f64>,
    /// `batch × new_tokens` ÷ the median of `seconds`.
    pub tokens_per_s: f64,
    /// The tokens generated for each prompt (of the last run).
    pub tokens: Vec<Vec<u32>>,
}

/// Times greedy decoding of `new` tokens for the first `batch` prompts (cycled when fewer),
/// `repeats` times after a warm-up. `ex`'s end-of-sequence tokens should be cleared, so that
/// every reply has `new` tokens.
pub fn decode(
    ex: &Explainer,
    prompts: &[Vec<u32>],
    batch: usize,
    new: usize,
    repeats: usize,
) -> Result<DecodeTiming> {
    ensure!(
        !prompts.is_empty() && batch > 0 && repeats > 0,
        "decode timing needs prompts, a batch and repeats"
    );
    check_ids(ex, prompts)?;
    let rows: Vec<Vec<u32>> = prompts.iter().cycle().take(batch).cloned().collect();
    let pb = PromptBatch::new(&rows, &[], ex.tokenizer.pad, ex.model.device());
    let cfg = GenerationConfig::greedy(new);
    let mut seconds = Vec::with_capacity(repeats);
    let mut tokens = Vec::new();
    for run in 0..=repeats {
        let clock = Instant::now();
        let gens = generate(&ex.model, &ex.tokenizer, &pb, None, &cfg)?;
        let dt = clock.elapsed().as_secs_f64();
        if run > 0 {
            seconds.push(dt);
        }
        tokens = gens.into_iter().map(|g| g.tokens).collect();
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(DecodeTiming {
        batch,
        new_tokens: new,
        seconds,
        tokens_per_s: (batch * new) as f64 / median.max(1e-12),
        tokens,
    })
}

/// What `recrl probe` measures on a model.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The model: a GGUF file or a Hugging Face folder.
    pub model: PathBuf,
    /// Where to save each prompt's logits (`logits.<i>`, [`logits`]), if anywhere.
    pub logits: Option<PathBuf>,
    /// Batch sizes to time greedy decoding at ([`decode`]).
    pub batches: Vec<usize>,
    /// New tokens per prompt.
    pub new_tokens: usize,
    /// Timed runs per batch size (after a warm-up).
    pub repeats: usize,
    /// How the weights are loaded (int8, bf16).
    pub opts: LoadOptions,
    /// The device it runs on.
    pub device: Device,
}

/// `recrl probe`: loads the model (its end-of-sequence tokens cleared, so that every reply has
/// `new_tokens`), saves the logits of `prompts` when asked, times greedy decoding at each batch
/// size, and returns the report (model, device, compute kind, int8, the timings). `progress`
/// gets a line per stage.
pub fn run(
    p: &Probe,
    prompts: &[Vec<u32>],
    mut progress: impl FnMut(&str),
) -> Result<serde_json::Value> {
    let (device, opts) = (p.device, p.opts);
    let mut ex = Explainer::load(&p.model, device, opts)?;
    ex.tokenizer.eos.clear();
    progress(&format!(
        "probe: {} on {device:?} ({:?})",
        p.model.display(),
        opts.kind(device)
    ));
    if let Some(out) = &p.logits {
        let named: Vec<(String, Tensor)> = logits(&ex, prompts)?
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("logits.{i}"), t))
            .collect();
        crate::io::save_tensors(out, &named)?;
        progress(&format!(
            "probe: logits of {} prompts → {}",
            prompts.len(),
            out.display()
        ));
    }
    let mut timings = Vec::new();
    for &b in &p.batches {
        let t = decode(&ex, prompts, b, p.new_tokens, p.repeats)?;
        progress(&format!(
            "probe: greedy batch {b}: {:.1} tokens/s",
            t.tokens_per_s
        ));
        timings.push(t);
    }
    Ok(serde_json::json!({
        "model": p.model,
        "device": format!("{device:?}"),
        "kind": format!("{:?}", opts.kind(device)),
        "int8": opts.int8,
        "decode": timings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explainer::LoadOptions;
    use std::path::Path;

    fn tiny() -> Explainer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explainer/tiny-llama");
        let mut ex = Explainer::load(&dir, tch::Device::Cpu, LoadOptions::default()).unwrap();
        ex.tokenizer.eos.clear();
        ex
    }

    #[test]
    fn logits_agree_with_a_padded_batch_and_decode_follows_their_argmax() {
        let ex = tiny();
        let prompts = vec![vec![0u32, 5, 9], vec![0, 12, 3, 44, 7]];
        let alone = logits(&ex, &prompts).unwrap();
        let err = logits(&ex, &[vec![0, 1 << 30]]).unwrap_err().to_string();
        assert!(err.contains("prompt 0: token id 1073741824"), "{err}");
        assert_eq!(alone[1].size()[0], 5);
        // the same rows in one left-padded batch: equal logits at the real positions
        let pb = PromptBatch::new(&prompts, &[], ex.tokenizer.pad, tch::Device::Cpu);
        let both = tch::no_grad(|| ex.model.forward_ids(&pb.ids, &pb.mask));
        let first = both.get(0).narrow(0, 2, 3);
        let d = f64::try_from((&first - &alone[0]).abs().max()).unwrap();
        assert!(d < 1e-4, "padded vs alone: {d}");
        // greedy's first token is the argmax of the prompt's last logits
        let t = decode(&ex, &prompts, 3, 4, 1).unwrap();
        assert_eq!((t.seconds.len(), t.tokens.len()), (1, 3));
        assert!(t.tokens.iter().all(|r| r.len() == 4) && t.tokens_per_s > 0.0);
        for (row, p) in t.tokens.iter().zip([&alone[0], &alone[1], &alone[0]]) {
            let want = p.get(-1).argmax(0, false).int64_value(&[]) as u32;
            assert_eq!(row[0], want);
        }
        assert_eq!(t.tokens[0], t.tokens[2], "prompt 0 cycled into row 2");
    }

    #[test]
    fn run_saves_the_logits_and_reports_each_batch_size() {
        let out = tempfile::tempdir().unwrap();
        let p = Probe {
            model: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/explainer/tiny-llama"),
            logits: Some(out.path().join("logits.safetensors")),
            batches: vec![1, 2],
            new_tokens: 3,
            repeats: 1,
            opts: LoadOptions::default(),
            device: tch::Device::Cpu,
        };
        let mut lines = Vec::new();
        let report = run(&p, &[vec![0, 5, 9]], |l| lines.push(l.to_string())).unwrap();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[1].starts_with("probe: logits of 1 prompts → "));
        assert!(lines[3].starts_with("probe: greedy batch 2: "));
        let saved = tch::Tensor::read_safetensors(p.logits.as_ref().unwrap()).unwrap();
        assert_eq!(saved[0].0, "logits.0");
        assert_eq!(
            (report["int8"].as_bool(), report["device"].as_str()),
            (Some(false), Some("Cpu"))
        );
        let decode = report["decode"].as_array().unwrap();
        assert_eq!(decode.len(), 2);
        assert_eq!(decode[1]["tokens"].as_array().unwrap().len(), 2);
    }
}
