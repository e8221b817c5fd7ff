//! The audit set: seeded users, their explanations (greedy, sampled, and greedy on prompts with
//! gendered words swapped), cached in `logs/<ds>/<tag>/explanations.jsonl` with their prompts.

use super::groups::GenderSwap;
use crate::config::Config;
use crate::data::Dataset;
use crate::explainer::{generate, prompt, ExplainRequest, Explainer, GenerationConfig};
use crate::rng::Rng;
use crate::sim::quality::QualityParts;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Tensor;

/// How an explanation was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Greedy decoding.
    Greedy,
    /// Sampling at the configured temperature and top-p.
    Sampled,
    /// Greedy decoding of the prompt with gendered words swapped.
    Counterfactual,
}

/// One line of `explanations.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explained {
    /// The user (1-based).
    pub user: usize,
    /// How it was produced.
    pub mode: Mode,
    /// History items shown in the prompt.
    pub history: Vec<u32>,
    /// The explained (recommended) item.
    pub recommended: u32,
    /// The prompt as text (soft slots shown as ⟨item⟩).
    pub prompt: String,
    /// The explanation.
    pub explanation: String,
    /// Mean token log-probability of the explanation under the audited model (temperature 1
    /// for greedy and counterfactual).
    pub mean_logprob: f64,
    /// Gendered words swapped in the prompt (counterfactual only).
    pub swapped: usize,
    /// The parts of `q(x)`, once graded ([`super::clicks::grade`]; not cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityParts>,
}

/// What the cached explanations depend on; a cache with another key is regenerated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    /// sha256 of the checkpoint's `explainer.json` (which records its files' sha256s).
    pub checkpoint: String,
    /// Audited users.
    pub users: Vec<usize>,
    /// Requests (history shown and recommended item).
    pub requests: Vec<(Vec<u32>, u32)>,
    /// Greedy settings.
    pub greedy: GenerationConfig,
    /// Sampling settings.
    pub sampled: GenerationConfig,
    /// Counterfactual prompts at most.
    pub counterfactual: usize,
}

impl CacheKey {
    /// The key of explaining `requests` (those of `users`) with the checkpoint whose
    /// `explainer.json` has sha256 `checkpoint`: greedy, and sampled with `cfg`'s temperature and
    /// top-p, both with `cfg`'s token cap and seed; `cfg.audit.counterfactual` swapped prompts.
    pub fn new(
        checkpoint: String,
        users: &[usize],
        requests: &[ExplainRequest],
        cfg: &Config,
    ) -> CacheKey {
        CacheKey {
            checkpoint,
            users: users.to_vec(),
            requests: requests
                .iter()
                .map(|r| (r.history.clone(), r.recommended))
                .collect(),
            greedy: GenerationConfig {
                max_new_tokens: cfg.max_new_tokens,
                temperature: 0.0,
                seed: cfg.seed,
                ..GenerationConfig::default()
            },
            sampled: GenerationConfig {
                max_new_tokens: cfg.max_new_tokens,
                temperature: cfg.temperature,
                top_p: cfg.top_p,
                seed: cfg.seed,
                ..GenerationConfig::default()
            },
            counterfactual: cfg.audit.counterfactual,
        }
    }
}

/// A seeded sample of `n` users with training histories (all of them when fewer), ascending.
pub fn audit_users(ds: &Dataset, n: usize, seed: u64) -> Vec<usize> {
    let mut users: Vec<usize> = (1..=ds.n_users())
        .filter(|&u| !ds.train[u - 1].is_empty())
        .collect();
    let mut rng = Rng::new(seed ^ 0xA0D1);
    for k in (1..users.len()).rev() {
        users.swap(k, rng.below(k + 1));
    }
    users.truncate(n);
    users.sort_unstable();
    users
}

/// Explains requests in batches of `batch`; `progress(done, total)` after each.
fn explain_batches(
    ex: &Explainer,
    prompts: &[prompt::BuiltPrompt],
    table: &Tensor,
    cfg: &GenerationConfig,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<crate::explainer::Generation>> {
    let mut out = Vec::new();
    for (k, chunk) in prompts.chunks(batch.max(1)).enumerate() {
        let (b, soft) = ex.batch(chunk, Some(table));
        let cfg = GenerationConfig {
            seed: cfg.seed.wrapping_add(k as u64),
            ..cfg.clone()
        };
        out.extend(generate(&ex.model, &ex.tokenizer, &b, soft.as_ref(), &cfg)?);
        progress(out.len(), prompts.len());
    }
    Ok(out)
}

fn mean(x: &[f32]) -> f64 {
    crate::stats::mean(&x.iter().map(|&v| v as f64).collect::<Vec<_>>())
}

/// Generates the audit explanations: greedy and sampled for every request, then greedy for up
/// to `key.counterfactual` prompts that contain gendered words, with those words swapped.
/// `progress` receives a line per batch.
pub fn generate_all(
    ds: &Dataset,
    ex: &Explainer,
    table: &Tensor,
    requests: &[ExplainRequest],
    swap: &GenderSwap,
    key: &CacheKey,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Explained>> {
    let prompts = ex.prompts(ds, requests)?;
    let soft = ex.projector.is_some();
    let mut swapped = Vec::new();
    for req in requests {
        if swapped.len() == key.counterfactual {
            break;
        }
        let (text, n) = swap.swap(&prompt::user_message(ds, req, soft));
        if n > 0 {
            swapped.push((req, prompt::build_message(&ex.tokenizer, &text, req)?, n));
        }
    }
    let mut out = Vec::new();
    let runs: [(Mode, &GenerationConfig); 2] =
        [(Mode::Greedy, &key.greedy), (Mode::Sampled, &key.sampled)];
    for (mode, cfg) in runs {
        let mut report = |d: usize, t: usize| progress(&format!("{mode:?}: {d}/{t}"));
        let gens = explain_batches(ex, &prompts, table, cfg, 8, &mut report)?;
        for ((req, p), g) in requests.iter().zip(&prompts).zip(gens) {
            out.push(explained(req, mode, &p.text, g, 0));
        }
    }
    let cf_prompts: Vec<prompt::BuiltPrompt> = swapped.iter().map(|s| s.1.clone()).collect();
    let mut report = |d: usize, t: usize| progress(&format!("Counterfactual: {d}/{t}"));
    let gens = explain_batches(ex, &cf_prompts, table, &key.greedy, 8, &mut report)?;
    for ((req, p, n), g) in swapped.iter().zip(gens) {
        out.push(explained(req, Mode::Counterfactual, &p.text, g, *n));
    }
    Ok(out)
}

fn explained(
    req: &ExplainRequest,
    mode: Mode,
    prompt: &str,
    g: crate::explainer::Generation,
    swapped: usize,
) -> Explained {
    Explained {
        user: req.user,
        mode,
        history: req.history.clone(),
        recommended: req.recommended,
        prompt: prompt.to_string(),
        explanation: g.text,
        mean_logprob: mean(&g.logprobs),
        swapped,
        quality: None,
    }
}

/// The cached explanations in `dir` when they were made with `key`.
pub fn read_cache(dir: &Path, key: &CacheKey) -> Option<Vec<Explained>> {
    let saved: CacheKey =
        serde_json::from_slice(&std::fs::read(dir.join("explanations.key.json")).ok()?).ok()?;
    if &saved != key {
        return None;
    }
    read_explanations(&dir.join(crate::paths::files::EXPLANATIONS)).ok()
}

/// The explanations cached in `dir` under `key`, else those `generate` makes (passed
/// `progress`), then cached. `progress` hears when the cache served.
pub fn cached_or_generate(
    dir: &Path,
    key: &CacheKey,
    progress: &mut dyn FnMut(&str),
    generate: impl FnOnce(&mut dyn FnMut(&str)) -> Result<Vec<Explained>>,
) -> Result<Vec<Explained>> {
    if let Some(rows) = read_cache(dir, key) {
        progress(&format!(
            "explanations: {} cached in {}",
            rows.len(),
            dir.join(crate::paths::files::EXPLANATIONS).display()
        ));
        return Ok(rows);
    }
    let rows = generate(progress)?;
    write_cache(dir, key, &rows)?;
    Ok(rows)
}

/// Reads `explanations.jsonl`; errors name the line.
pub fn read_explanations(path: &Path) -> Result<Vec<Explained>> {
    crate::io::read_json_lines(path)
}

/// Writes `explanations.jsonl` and its key (both atomically, the key last).
pub fn write_cache(dir: &Path, key: &CacheKey, rows: &[Explained]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    crate::io::write_atomic(
        &dir.join(crate::paths::files::EXPLANATIONS),
        text.as_bytes(),
    )?;
    crate::io::write_atomic(
        &dir.join("explanations.key.json"),
        serde_json::to_string(key)?.as_bytes(),
    )
}
