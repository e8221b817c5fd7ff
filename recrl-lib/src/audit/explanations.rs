//! The audit's explanations, cached in `logs/<ds>/<tag>/explanations.jsonl` with their prompts:
//! the held-out panel's (greedy, and `audit.samples` sampled replies per user with seeds that
//! every arm shares), greedy ones of prompts with gendered words swapped, and greedy ones of the
//! membership test's RL users. Every reply is cut to `explanation_max_len` characters, as the
//! simulated user reads it in training.

use super::groups::GenderSwap;
use crate::config::Config;
use crate::data::Dataset;
use crate::explainer::{generate, prompt, ExplainRequest, Explainer, Generation, GenerationConfig};
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
    /// Greedy decoding for an RL user of the membership test's set (never on the panel).
    Membership,
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
    /// Which of the user's sampled replies this is (0 for the others).
    #[serde(default)]
    pub sample: usize,
    /// Which candidate of a best-of-N sample this is (0 for every other explainer).
    #[serde(default)]
    pub candidate: usize,
    /// The parts of `q(x)`, once graded ([`super::clicks::grade`]; not cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityParts>,
}

/// What the cached explanations depend on; a cache with another key is regenerated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    /// sha256 of the checkpoint's `explainer.json` (which records its files' sha256s).
    pub checkpoint: String,
    /// Panel users (held-out), ascending.
    pub users: Vec<usize>,
    /// RL users of the membership set, ascending.
    pub members: Vec<usize>,
    /// Requests (history shown and recommended item): the panel's, then the membership set's.
    pub requests: Vec<(Vec<u32>, u32)>,
    /// Sampled replies per panel user.
    pub samples: usize,
    /// Candidates per sampled reply (best-of-N; 1 otherwise): candidate `c` of sample `s` is
    /// drawn with [`sample_seed`]`(seed, s, c + offset)`, offset 1 for best-of-N (fresh draws).
    pub candidates: usize,
    /// Characters of a reply kept (`explanation_max_len`).
    pub max_chars: usize,
    /// Greedy settings.
    pub greedy: GenerationConfig,
    /// Sampling settings.
    pub sampled: GenerationConfig,
    /// Counterfactual prompts at most.
    pub counterfactual: usize,
}

impl CacheKey {
    /// The key of explaining `requests` (the panel `users`' then the membership set's
    /// `members`') with the checkpoint whose `explainer.json` has sha256 `checkpoint`: greedy, and
    /// `cfg.audit.samples` sampled with `cfg`'s temperature and top-p (`candidates` each), all
    /// with `cfg`'s token cap and seed; `cfg.audit.counterfactual` swapped prompts.
    pub fn new(
        checkpoint: String,
        (users, members): (&[usize], &[usize]),
        requests: &[ExplainRequest],
        candidates: usize,
        cfg: &Config,
    ) -> CacheKey {
        CacheKey {
            checkpoint,
            users: users.to_vec(),
            members: members.to_vec(),
            requests: requests
                .iter()
                .map(|r| (r.history.clone(), r.recommended))
                .collect(),
            samples: cfg.audit.samples,
            candidates,
            max_chars: cfg.explanation_max_len,
            greedy: GenerationConfig::greedy_of(cfg),
            sampled: GenerationConfig::sampling(cfg),
            counterfactual: cfg.audit.counterfactual,
        }
    }
}

/// The seed of candidate `c` of sampled reply `s`: `seed` itself for (0, 0), else mixed with
/// the 64-bit golden ratio, so that every arm draws reply `s` of a user with the same seed.
pub fn sample_seed(seed: u64, s: usize, c: usize) -> u64 {
    seed ^ (((s as u64) << 32) | c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
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

/// Generates the audit explanations of `requests` (the first `key.users.len()` are the panel's,
/// the rest the membership set's): greedy for every request (mode [`Mode::Membership`] for the
/// membership set), `key.samples` × `key.candidates` sampled replies per panel request (best-of-N
/// candidates from seed offset 1: fresh draws), then greedy for up to `key.counterfactual` panel
/// prompts that contain gendered words, with those words swapped. `progress` receives a line per
/// batch.
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
    let n_panel = key.users.len();
    let (panel, panel_prompts) = (&requests[..n_panel], &prompts[..n_panel]);
    let soft = ex.projector.is_some();
    let mut swapped = Vec::new();
    for req in panel {
        if swapped.len() == key.counterfactual {
            break;
        }
        let (text, n) = swap.swap(&prompt::user_message(ds, req, soft));
        if n > 0 {
            swapped.push((req, prompt::build_message(&ex.tokenizer, &text, req)?, n));
        }
    }
    let mut run = |label: String,
                   reqs: &[ExplainRequest],
                   ps: &[prompt::BuiltPrompt],
                   cfg: &GenerationConfig,
                   make: &dyn Fn(&ExplainRequest, &str, Generation) -> Explained|
     -> Result<Vec<Explained>> {
        let mut report = |d: usize, t: usize| progress(&format!("{label}: {d}/{t}"));
        let gens = explain_batches(ex, ps, table, cfg, 8, &mut report)?;
        Ok(reqs
            .iter()
            .zip(ps)
            .zip(gens)
            .map(|((req, p), mut g)| {
                prompt::cut_reply(&mut g.text, key.max_chars);
                make(req, &p.text, g)
            })
            .collect())
    };
    let greedy = |mode: Mode| move |r: &ExplainRequest, p: &str, g| explained(r, mode, p, g, 0);
    let mut out = run(
        "Greedy".into(),
        panel,
        panel_prompts,
        &key.greedy,
        &greedy(Mode::Greedy),
    )?;
    let offset = usize::from(key.candidates > 1);
    let total = key.samples * key.candidates;
    for s in 0..key.samples {
        for c in 0..key.candidates {
            let cfg = GenerationConfig {
                seed: sample_seed(key.sampled.seed, s, c + offset),
                ..key.sampled.clone()
            };
            let label = format!("Sampled {}/{total}", s * key.candidates + c + 1);
            out.extend(run(label, panel, panel_prompts, &cfg, &|r, p, g| {
                Explained {
                    sample: s,
                    candidate: c,
                    ..explained(r, Mode::Sampled, p, g, 0)
                }
            })?);
        }
    }
    let (members, member_prompts) = (&requests[n_panel..], &prompts[n_panel..]);
    let membership = greedy(Mode::Membership);
    out.extend(run(
        "Membership".into(),
        members,
        member_prompts,
        &key.greedy,
        &membership,
    )?);
    let cf_reqs: Vec<ExplainRequest> = swapped.iter().map(|s| s.0.clone()).collect();
    let cf_prompts: Vec<prompt::BuiltPrompt> = swapped.iter().map(|s| s.1.clone()).collect();
    let mut cf = run(
        "Counterfactual".into(),
        &cf_reqs,
        &cf_prompts,
        &key.greedy,
        &greedy(Mode::Counterfactual),
    )?;
    for (row, s) in cf.iter_mut().zip(&swapped) {
        row.swapped = s.2;
    }
    out.extend(cf);
    Ok(out)
}

/// The template baseline's rows for `requests` (the panel's, no model): the same sentence
/// ([`crate::judge::template`]) as the greedy reply and as every sampled one, cut like a reply.
pub fn template_rows(ds: &Dataset, requests: &[ExplainRequest], key: &CacheKey) -> Vec<Explained> {
    let mut out = Vec::new();
    for (mode, samples) in [(Mode::Greedy, 1), (Mode::Sampled, key.samples)] {
        for s in 0..samples {
            for req in requests {
                let mut text = crate::judge::template(ds, req.recommended, &req.history);
                prompt::cut_reply(&mut text, key.max_chars);
                out.push(Explained {
                    user: req.user,
                    mode,
                    history: req.history.clone(),
                    recommended: req.recommended,
                    prompt: "(template: no prompt)".into(),
                    explanation: text,
                    mean_logprob: 0.0,
                    swapped: 0,
                    sample: s,
                    candidate: 0,
                    quality: None,
                });
            }
        }
    }
    out
}

fn explained(
    req: &ExplainRequest,
    mode: Mode,
    prompt: &str,
    g: Generation,
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
        sample: 0,
        candidate: 0,
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

/// Writes `rows` as JSON lines to `path`, atomically (without their `q(x)` parts).
pub fn write_rows(path: &Path, rows: &[Explained]) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        let bare = Explained {
            quality: None,
            ..r.clone()
        };
        text.push_str(&serde_json::to_string(&bare)?);
        text.push('\n');
    }
    crate::io::write_atomic(path, text.as_bytes())
}

/// Writes `explanations.jsonl` and its key (both atomically, the key last).
pub fn write_cache(dir: &Path, key: &CacheKey, rows: &[Explained]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_rows(&dir.join(crate::paths::files::EXPLANATIONS), rows)?;
    crate::io::write_atomic(
        &dir.join("explanations.key.json"),
        serde_json::to_string(key)?.as_bytes(),
    )
}
