//! Batched generation with a KV cache: greedy or sampled (temperature, top-k, top-p),
//! repetition penalty, stop on EOS, stop strings or a sentence count; returns per-token
//! log-probs.

use super::model::{positions_of, KvCache, Llama};
use super::tokenizer::TextTokenizer;
use crate::config::Config;
use crate::judge::text::{ends_sentence, ends_with_abbreviation};
use crate::rng::Rng;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    pub temperature: f64,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// > 1 discourages tokens already in the prompt or reply (1 = off).
    pub repetition_penalty: f64,
    /// Stop once the reply's text contains one of these (the text is cut before it).
    pub stop_strings: Vec<String>,
    /// Stop once the reply has ended this many sentences (0 = off): its text ends with `.`,
    /// `!`, `?` or `…` ([`crate::judge::text::ends_sentence`]), a period not after an initial
    /// or an abbreviation ([`crate::judge::text::ends_with_abbreviation`]).
    #[serde(default)]
    pub sentences: usize,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for GenerationConfig {
    /// docs/design.md §7's rollout settings: 40 tokens, T 0.7, top-p 0.9.
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 40,
            temperature: 0.7,
            top_p: 0.9,
            top_k: 0,
            repetition_penalty: 1.0,
            stop_strings: vec![],
            sentences: 0,
            seed: 0,
        }
    }
}

impl GenerationConfig {
    /// The configuration's sampling: its token cap, sentence stop (`max_sentences`),
    /// temperature, top-p and seed.
    pub fn sampling(cfg: &Config) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: cfg.max_new_tokens,
            sentences: cfg.max_sentences,
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            seed: cfg.seed,
            ..GenerationConfig::default()
        }
    }

    /// Greedy decoding with the configuration's token cap, sentence stop and seed.
    pub fn greedy_of(cfg: &Config) -> GenerationConfig {
        GenerationConfig {
            temperature: 0.0,
            ..GenerationConfig::sampling(cfg)
        }
    }

    /// Greedy decoding of `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens,
            temperature: 0.0,
            top_p: 1.0,
            ..Default::default()
        }
    }
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// An end-of-sequence token (kept as the last token).
    Eos,
    /// A stop string.
    StopString,
    /// The reply ended `sentences` sentences.
    SentenceEnd,
    /// `max_new_tokens` reached.
    Length,
}

/// One generated reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    /// Generated ids (an ending EOS included).
    pub tokens: Vec<u32>,
    /// Their text, special tokens dropped.
    pub text: String,
    /// `log π(token)` from the unwarped logits at the sampling temperature (1 for greedy).
    pub logprobs: Vec<f32>,
    /// Why it ended.
    pub stop: StopReason,
}

/// A batch of left-padded prompts, optionally with vectors spliced in at given positions.
#[derive(Debug)]
pub struct PromptBatch {
    /// `[B, T]` ids (pad where masked; placeholders where soft vectors go).
    pub ids: Tensor,
    /// `[B, T]` bool, true at real tokens.
    pub mask: Tensor,
    /// Flat indices `b·T + t` of soft-token slots, in prompt order.
    pub soft_slots: Vec<i64>,
}

impl PromptBatch {
    /// Left-pads `prompts`; `soft[b]` lists positions in prompt `b` that get soft vectors.
    pub fn new(prompts: &[Vec<u32>], soft: &[Vec<usize>], pad: u32, device: Device) -> PromptBatch {
        let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(prompts.len() * t);
        let mut mask = Vec::with_capacity(prompts.len() * t);
        let mut soft_slots = Vec::new();
        for (b, p) in prompts.iter().enumerate() {
            let shift = t - p.len();
            ids.extend(std::iter::repeat_n(pad as i64, shift).chain(p.iter().map(|&x| x as i64)));
            mask.extend(
                std::iter::repeat_n(false, shift).chain(std::iter::repeat_n(true, p.len())),
            );
            for &pos in soft.get(b).map(Vec::as_slice).unwrap_or(&[]) {
                soft_slots.push((b * t + shift + pos) as i64);
            }
        }
        let shape = [prompts.len() as i64, t as i64];
        PromptBatch {
            ids: Tensor::from_slice(&ids).view(shape).to_device(device),
            mask: Tensor::from_slice(&mask).view(shape).to_device(device),
            soft_slots,
        }
    }

    /// Rows `lo..hi` as their own batch (same width), and the range of their soft slots among
    /// all (the rows of the soft vectors that belong to them).
    pub fn rows(&self, lo: usize, hi: usize) -> (PromptBatch, std::ops::Range<usize>) {
        let width = self.ids.size()[1];
        let row_of = |s: &i64| (*s / width) as usize;
        let start = self.soft_slots.iter().filter(|s| row_of(s) < lo).count();
        let end = self.soft_slots.iter().filter(|s| row_of(s) < hi).count();
        let (l, n) = (lo as i64, (hi - lo) as i64);
        let part = PromptBatch {
            ids: self.ids.narrow(0, l, n),
            mask: self.mask.narrow(0, l, n),
            soft_slots: self.soft_slots[start..end]
                .iter()
                .map(|s| s - l * width)
                .collect(),
        };
        (part, start..end)
    }

    /// Whether every `group` consecutive rows (from the first) are the same prompt: the same
    /// ids and padding, soft slots at the same places and bit-equal soft vectors (`soft`, one
    /// row per slot). If so, where the groups' first rows keep their soft slots and vectors.
    pub fn shared(&self, soft: Option<&Tensor>, group: usize) -> Option<SharedPrompts> {
        let (b, w) = (self.ids.size()[0], self.ids.size()[1]);
        let g = group as i64;
        if g <= 1 || b % g != 0 {
            return None;
        }
        let mut by_row = vec![Vec::new(); b as usize];
        for (j, &s) in self.soft_slots.iter().enumerate() {
            by_row[(s / w) as usize].push((j as i64, s % w));
        }
        let (mut counterpart, mut slots, mut vectors) = (Vec::new(), Vec::new(), Vec::new());
        for (row, own) in by_row.iter().enumerate() {
            let first = &by_row[row - row % group];
            let same_places =
                own.len() == first.len() && own.iter().zip(first).all(|(a, f)| a.1 == f.1);
            if !same_places {
                return None;
            }
            counterpart.extend(first.iter().map(|f| f.0));
            if row % group == 0 {
                slots.extend(own.iter().map(|&(_, col)| row as i64 / g * w + col));
                vectors.extend(own.iter().map(|&(j, _)| j));
            }
        }
        let same_within_groups = |t: &Tensor| {
            let t = t.reshape([b / g, g, w]);
            bool::try_from(t.eq_tensor(&t.narrow(1, 0, 1)).all()).unwrap_or(false)
        };
        let same_vectors = soft.is_none_or(|v| {
            let idx = Tensor::from_slice(&counterpart).to_device(v.device());
            bool::try_from(v.index_select(0, &idx).eq_tensor(v).all()).unwrap_or(false)
        });
        (same_within_groups(&self.ids) && same_within_groups(&self.mask) && same_vectors).then_some(
            SharedPrompts {
                group: g,
                slots,
                vectors,
            },
        )
    }

    /// Runs each group's prompt of `shared` once, leaves every row's keys and values in
    /// `cache` (the group's repeated `group` times) and returns the state that predicts each
    /// row's first reply token, `[B, 1, d]`: generation's prefill and the scoring pass share it.
    pub fn prefill_shared(
        &self,
        model: &Llama,
        soft: Option<&Tensor>,
        shared: &SharedPrompts,
        cache: &mut KvCache,
        train: bool,
    ) -> Tensor {
        let (firsts, vectors) = self.firsts(shared, soft);
        let hidden = model.forward_embeds(
            &firsts.embeds(model, vectors.as_ref()),
            &firsts.mask,
            &positions_of(&firsts.mask),
            cache,
            train,
        );
        cache.repeat_rows(shared.group);
        hidden
            .narrow(1, hidden.size()[1] - 1, 1)
            .repeat_interleave_self_int(shared.group, Some(0), None)
    }

    /// The first row of every group of `shared` as a batch of its own, with its soft vectors.
    fn firsts(
        &self,
        shared: &SharedPrompts,
        soft: Option<&Tensor>,
    ) -> (PromptBatch, Option<Tensor>) {
        let b = self.ids.size()[0];
        let device = self.ids.device();
        let rows = Tensor::arange_start_step(0, b, shared.group, (Kind::Int64, device));
        let batch = PromptBatch {
            ids: self.ids.index_select(0, &rows),
            mask: self.mask.index_select(0, &rows),
            soft_slots: shared.slots.clone(),
        };
        let vectors = soft.map(|v| {
            v.index_select(
                0,
                &Tensor::from_slice(&shared.vectors).to_device(v.device()),
            )
        });
        (batch, vectors)
    }

    /// Input embeddings `[B, T, d]` with `soft` (`[N, d]`, one row per slot) spliced in.
    pub fn embeds(&self, model: &Llama, soft: Option<&Tensor>) -> Tensor {
        let emb = model.embed_tokens(&self.ids);
        match soft {
            Some(vectors) if !self.soft_slots.is_empty() => {
                let size = emb.size();
                let idx = Tensor::from_slice(&self.soft_slots).to_device(emb.device());
                emb.view([-1, size[2]])
                    .index_put(&[Some(idx)], &vectors.to_kind(emb.kind()), false)
                    .view(size.as_slice())
            }
            _ => emb,
        }
    }
}

/// Prompts shared by groups of consecutive rows of a batch ([`PromptBatch::shared`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedPrompts {
    /// Rows per group.
    pub group: i64,
    /// Soft slots of the groups' first rows, flat in a batch of those rows alone.
    pub slots: Vec<i64>,
    /// Indices of their soft vectors among all of the batch's.
    pub vectors: Vec<i64>,
}

/// Generates a reply for every prompt of `batch` (soft vectors as in [`PromptBatch::embeds`]).
pub fn generate(
    model: &Llama,
    tok: &TextTokenizer,
    batch: &PromptBatch,
    soft: Option<&Tensor>,
    cfg: &GenerationConfig,
) -> Result<Vec<Generation>> {
    generate_grouped(model, tok, batch, soft, cfg, 1)
}

/// [`generate`], where every `group` consecutive rows of `batch` may be one prompt (GRPO's
/// groups): if they are ([`PromptBatch::shared`]), each prompt is prefilled once and its keys
/// and values are copied to its group's rows. The replies are the same up to float rounding.
#[allow(clippy::assign_op_pattern)] // `next_pos += 1` would also move `positions` (shared storage)
pub fn generate_grouped(
    model: &Llama,
    tok: &TextTokenizer,
    batch: &PromptBatch,
    soft: Option<&Tensor>,
    cfg: &GenerationConfig,
    group: usize,
) -> Result<Vec<Generation>> {
    let _no_grad = tch::no_grad_guard();
    let device = model.device();
    let bsz = batch.ids.size()[0] as usize;
    let mut rng = Rng::new(cfg.seed);
    let mut cache = KvCache::with_capacity(batch.ids.size()[1] + cfg.max_new_tokens as i64);
    let mut mask = batch.mask.shallow_clone();
    let mut positions = positions_of(&mask);
    let mut hidden = prefill(model, batch, soft, group, &mut cache);
    let mut next_pos = positions.select(1, -1).unsqueeze(1) + 1;
    // Tokens seen per row (prompt + reply) for the repetition penalty.
    let mut seen = prompt_tokens(batch, cfg)?;
    let mut out: Vec<Generation> = (0..bsz)
        .map(|_| Generation {
            tokens: vec![],
            text: String::new(),
            logprobs: vec![],
            stop: StopReason::Length,
        })
        .collect();
    let mut done = vec![false; bsz];
    let mut sentences = vec![Sentences::default(); bsz];
    let temp = if cfg.temperature > 0.0 {
        cfg.temperature
    } else {
        1.0
    };
    for _ in 0..cfg.max_new_tokens {
        let logits = model.logits(&hidden.select(1, -1)); // [B, V] f32
        let logp = (&logits / temp).log_softmax(-1, Kind::Float);
        let chosen = pick(&logits, &seen, cfg, &mut rng)?;
        let chosen_t = Tensor::from_slice(&chosen).to_device(device);
        let lp = Vec::<f32>::try_from(
            logp.gather(1, &chosen_t.unsqueeze(1), false)
                .squeeze_dim(1)
                .to_device(Device::Cpu),
        )?;
        for b in 0..bsz {
            if done[b] {
                continue;
            }
            let g = &mut out[b];
            g.tokens.push(chosen[b] as u32);
            g.logprobs.push(lp[b]);
            seen[b].push(chosen[b]);
            if let Some(why) = stop_after(g, tok, cfg, &mut sentences[b])? {
                g.stop = why;
                done[b] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        mask = Tensor::cat(
            &[&mask, &Tensor::ones([bsz as i64, 1], (Kind::Bool, device))],
            1,
        );
        positions = next_pos.shallow_clone();
        next_pos = next_pos + 1;
        let emb = model.embed_tokens(&chosen_t.unsqueeze(1));
        hidden = model.forward_embeds(&emb, &mask, &positions, &mut cache, false);
    }
    for g in &mut out {
        g.text = decoded(g, tok, cfg)?;
    }
    Ok(out)
}

/// Each row's prompt tokens (the repetition penalty's memory; empty rows without a penalty).
fn prompt_tokens(batch: &PromptBatch, cfg: &GenerationConfig) -> Result<Vec<Vec<i64>>> {
    let bsz = batch.ids.size()[0] as usize;
    if cfg.repetition_penalty == 1.0 {
        return Ok(vec![vec![]; bsz]);
    }
    let width = batch.ids.size()[1] as usize;
    let ids = Vec::<i64>::try_from(batch.ids.to_device(Device::Cpu).flatten(0, -1))?;
    let mask = Vec::<bool>::try_from(batch.mask.to_device(Device::Cpu).flatten(0, -1))?;
    Ok(ids
        .chunks(width)
        .zip(mask.chunks(width))
        .map(|(ids, m)| {
            ids.iter()
                .zip(m)
                .filter(|(_, &k)| k)
                .map(|(&i, _)| i)
                .collect()
        })
        .collect())
}

/// A reply's text: its tokens decoded, cut before the first stop string when one stopped it.
fn decoded(g: &Generation, tok: &TextTokenizer, cfg: &GenerationConfig) -> Result<String> {
    let mut text = tok.decode(&g.tokens, true)?;
    if g.stop == StopReason::StopString {
        if let Some(cut) = cfg
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(cut);
        }
    }
    Ok(text)
}

/// The sentences a reply has ended so far, and whether its text ends one now.
#[derive(Debug, Clone, Copy, Default)]
struct Sentences {
    ended: usize,
    at_end: bool,
}

/// Why reply `g` stops after its newest token, if it does: an end-of-sequence token, a stop
/// string, or its `cfg.sentences`-th sentence end (a period after an initial or an
/// abbreviation is none; `count` carries the reply's count from token to token).
fn stop_after(
    g: &Generation,
    tok: &TextTokenizer,
    cfg: &GenerationConfig,
    count: &mut Sentences,
) -> Result<Option<StopReason>> {
    if g.tokens.last().is_some_and(|t| tok.eos.contains(t)) {
        return Ok(Some(StopReason::Eos));
    }
    if cfg.stop_strings.is_empty() && cfg.sentences == 0 {
        return Ok(None);
    }
    let text = tok.decode(&g.tokens, true)?;
    if cfg.stop_strings.iter().any(|s| text.contains(s.as_str())) {
        return Ok(Some(StopReason::StopString));
    }
    if cfg.sentences > 0 {
        let at_end = ends_sentence(&text) && ends_with_abbreviation(&text).is_none();
        if at_end && !count.at_end {
            count.ended += 1;
        }
        count.at_end = at_end;
        if count.ended >= cfg.sentences {
            return Ok(Some(StopReason::SentenceEnd));
        }
    }
    Ok(None)
}

/// The prompts' final hidden states (the last predicts the first reply token), their keys and
/// values in `cache`: each group's prompt once when `group` rows share it.
fn prefill(
    model: &Llama,
    batch: &PromptBatch,
    soft: Option<&Tensor>,
    group: usize,
    cache: &mut KvCache,
) -> Tensor {
    let Some(shared) = batch.shared(soft, group) else {
        let embeds = batch.embeds(model, soft);
        return model.forward_embeds(
            &embeds,
            &batch.mask,
            &positions_of(&batch.mask),
            cache,
            false,
        );
    };
    batch.prefill_shared(model, soft, &shared, cache, false)
}

/// Chooses the next token of every row: greedy, or sampled after the penalty, temperature,
/// top-k and top-p warps.
fn pick(
    logits: &Tensor,
    seen: &[Vec<i64>],
    cfg: &GenerationConfig,
    rng: &mut Rng,
) -> Result<Vec<i64>> {
    let mut logits = logits.shallow_clone();
    if cfg.repetition_penalty != 1.0 {
        logits = logits.copy();
        for (b, ids) in seen.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let idx = Tensor::from_slice(ids).to_device(logits.device());
            let mut row = logits.get(b as i64);
            let vals = row.index_select(0, &idx);
            // HF's rule: negative logits are multiplied by the penalty, positive ones divided.
            let pen = (&vals * cfg.repetition_penalty)
                .where_self(&vals.lt(0.0), &(&vals / cfg.repetition_penalty));
            let _ = row.index_put_(&[Some(idx)], &pen, false);
        }
    }
    if cfg.temperature <= 0.0 {
        return Ok(Vec::<i64>::try_from(
            logits.argmax(-1, false).to_device(Device::Cpu),
        )?);
    }
    let (sorted, order) = (logits / cfg.temperature).sort(-1, true);
    let mut probs = sorted.softmax(-1, Kind::Float);
    let vocab = probs.size()[1];
    if cfg.top_k > 0 && (cfg.top_k as i64) < vocab {
        let keep = Tensor::arange(vocab, (Kind::Int64, probs.device())).lt(cfg.top_k as i64);
        probs *= keep.unsqueeze(0);
    }
    if cfg.top_p < 1.0 {
        // Keep the smallest prefix whose mass reaches top_p (the first token always).
        let before = probs.cumsum(-1, Kind::Float) - &probs;
        probs = &probs * before.lt(cfg.top_p);
    }
    let probs = Vec::<f32>::try_from(probs.to_device(Device::Cpu).flatten(0, -1))?;
    let order = Vec::<i64>::try_from(order.to_device(Device::Cpu).flatten(0, -1))?;
    let v = vocab as usize;
    Ok(probs
        .chunks(v)
        .zip(order.chunks(v))
        .map(|(p, o)| {
            let total: f64 = p.iter().map(|&x| x as f64).sum();
            let mut u = rng.unit() * total;
            for (j, &x) in p.iter().enumerate() {
                u -= x as f64;
                if u <= 0.0 && x > 0.0 {
                    return o[j];
                }
            }
            o[0]
        })
        .collect())
}
