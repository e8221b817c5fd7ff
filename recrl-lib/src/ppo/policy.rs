//! The policy side of PPO: prompt + sampled response as one sequence, the response tokens'
//! log-probs (temperature-scaled, unwarped) and values from one forward pass, and the PPO loss.

use crate::explainer::generate::SharedPrompts;
use crate::explainer::model::{positions_of, KvCache};
use crate::explainer::{Generation, Llama, PromptBatch};
use tch::{nn, Device, Kind, Tensor};

/// A batch of prompts with the responses sampled for them.
#[derive(Debug)]
pub struct Responses {
    /// `[B, P + R]` prompt (left-padded) then response (right-padded) ids.
    pub ids: Tensor,
    /// `[B, P + R]` bool, true at real tokens.
    pub mask: Tensor,
    /// Flat indices of soft-token slots in `ids`.
    pub soft_slots: Vec<i64>,
    /// Prompt width P.
    pub prompt_len: i64,
    /// `[B, R]` response ids.
    pub tokens: Tensor,
    /// `[B, R]` f32, 1 at response tokens, 0 after the end.
    pub token_mask: Tensor,
}

impl Responses {
    /// Joins `prompt` and the generated replies.
    pub fn new(prompt: &PromptBatch, gens: &[Generation], pad: u32) -> Responses {
        let device = prompt.ids.device();
        let (b, p) = (prompt.ids.size()[0], prompt.ids.size()[1]);
        let r = gens
            .iter()
            .map(|g| g.tokens.len())
            .max()
            .unwrap_or(0)
            .max(1) as i64;
        let mut toks = vec![pad as i64; (b * r) as usize];
        let mut mask = vec![0f32; (b * r) as usize];
        for (i, g) in gens.iter().enumerate() {
            for (j, &t) in g.tokens.iter().enumerate() {
                toks[i * r as usize + j] = t as i64;
                mask[i * r as usize + j] = 1.0;
            }
        }
        let tokens = Tensor::from_slice(&toks).view([b, r]).to_device(device);
        let token_mask = Tensor::from_slice(&mask).view([b, r]).to_device(device);
        let soft_slots = prompt
            .soft_slots
            .iter()
            .map(|&s| (s / p) * (p + r) + s % p)
            .collect();
        Responses {
            ids: Tensor::cat(&[&prompt.ids, &tokens], 1),
            mask: Tensor::cat(&[&prompt.mask, &token_mask.to_kind(Kind::Bool)], 1),
            soft_slots,
            prompt_len: p,
            tokens,
            token_mask,
        }
    }

    /// `[B, R]` log-probs that generation computed for the replies' tokens (`gens`, in row
    /// order; 0 after a reply's end).
    pub fn sampler_logprobs(&self, gens: &[Generation]) -> Tensor {
        let rows: Vec<Vec<f64>> = gens
            .iter()
            .map(|g| g.logprobs.iter().map(|&x| x as f64).collect())
            .collect();
        rows_to_tensor(&rows, self.tokens.size()[1], self.tokens.device())
    }

    /// Rows `lo..hi` as their own batch, and the range of their soft vectors among all.
    pub fn rows(&self, lo: usize, hi: usize) -> (Responses, std::ops::Range<usize>) {
        let (part, range) = self.joined().rows(lo, hi);
        let (l, n) = (lo as i64, (hi - lo) as i64);
        let part = Responses {
            ids: part.ids,
            mask: part.mask,
            soft_slots: part.soft_slots,
            prompt_len: self.prompt_len,
            tokens: self.tokens.narrow(0, l, n),
            token_mask: self.token_mask.narrow(0, l, n),
        };
        (part, range)
    }

    /// Prompt and response as one batch (for scoring and slicing).
    fn joined(&self) -> PromptBatch {
        PromptBatch {
            ids: self.ids.shallow_clone(),
            mask: self.mask.shallow_clone(),
            soft_slots: self.soft_slots.clone(),
        }
    }

    /// Log-probs `[B, R]` of the response tokens under `model` at `temperature` (unwarped
    /// logits), and the final hidden states `[B, R, d]` at the positions that predict them.
    /// Where every `group` consecutive rows share their prompt (ids, padding and soft vectors:
    /// GRPO's groups), each prompt runs once and its keys and values serve the group's replies
    /// ([`Responses::shared_prompts`]); the result is the same up to float rounding.
    pub fn score(
        &self,
        model: &Llama,
        soft: Option<&Tensor>,
        temperature: f64,
        train: bool,
        group: usize,
    ) -> (Tensor, Tensor) {
        let h = match self.shared_prompts(soft, group) {
            Some(shared) => self.hidden_shared(model, soft, &shared, train),
            None => self.hidden(model, soft, train),
        };
        let logp = (model.logits(&h) / temperature).log_softmax(-1, Kind::Float);
        let lp = logp
            .gather(2, &self.tokens.unsqueeze(-1), false)
            .squeeze_dim(-1);
        (lp * &self.token_mask, h)
    }

    /// The final hidden states that predict the response tokens, `[B, R, d]`, from one pass
    /// over every row's prompt and reply.
    fn hidden(&self, model: &Llama, soft: Option<&Tensor>, train: bool) -> Tensor {
        let embeds = self.joined().embeds(model, soft);
        let hidden = model.forward_embeds(
            &embeds,
            &self.mask,
            &positions_of(&self.mask),
            &mut KvCache::default(),
            train,
        );
        hidden.narrow(1, self.prompt_len - 1, self.tokens.size()[1])
    }

    /// As [`Responses::hidden`], with each group's prompt run once
    /// ([`PromptBatch::prefill_shared`]) and the replies attending to its keys and values.
    fn hidden_shared(
        &self,
        model: &Llama,
        soft: Option<&Tensor>,
        shared: &SharedPrompts,
        train: bool,
    ) -> Tensor {
        let (p, r) = (self.prompt_len, self.tokens.size()[1]);
        let mut cache = KvCache::default();
        let last = self
            .prompts()
            .prefill_shared(model, soft, shared, &mut cache, train);
        let reply_hidden = model.forward_embeds(
            &model.embed_tokens(&self.tokens),
            &self.mask,
            &positions_of(&self.mask).narrow(1, p, r),
            &mut cache,
            train,
        );
        Tensor::cat(&[last, reply_hidden.narrow(1, 0, r - 1)], 1)
    }

    /// The prompts alone, `[B, P]`, with their soft slots.
    fn prompts(&self) -> PromptBatch {
        let (w, p) = (self.ids.size()[1], self.prompt_len);
        PromptBatch {
            ids: self.ids.narrow(1, 0, p),
            mask: self.mask.narrow(1, 0, p),
            soft_slots: self.soft_slots.iter().map(|s| s / w * p + s % w).collect(),
        }
    }

    /// Whether every `group` consecutive rows share their prompt ([`PromptBatch::shared`]).
    pub fn shared_prompts(&self, soft: Option<&Tensor>, group: usize) -> Option<SharedPrompts> {
        self.prompts().shared(soft, group)
    }
}

/// `V(state)` from the final hidden state: a linear head, trained with the policy.
#[derive(Debug)]
pub struct ValueHead {
    /// `[d_model]` weights.
    pub w: Tensor,
    /// Bias.
    pub b: Tensor,
}

impl ValueHead {
    /// A zero-initialised head in `vs` (values start at 0).
    pub fn new(vs: &nn::Path, d_model: i64) -> ValueHead {
        let vs = vs / "value_head";
        ValueHead {
            w: vs.zeros("weight", &[d_model]),
            b: vs.zeros("bias", &[1]),
        }
    }

    /// Values `[B, R]` of hidden states `[B, R, d]`.
    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        hidden.to_kind(Kind::Float).matmul(&self.w) + &self.b
    }
}

/// Masked mean over all elements.
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> Tensor {
    (x * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
}

/// PPO's per-token clipped policy loss (masked mean), with the clipped share and the approx KL
/// `E[(ρ − 1) − log ρ]` (scalar tensors, no gradient: read them when needed, not per pass) —
/// the tensor form of [`super::clipped_surrogate`] and [`super::approx_kl`].
pub fn policy_loss(
    logp: &Tensor,
    logp_old: &Tensor,
    adv: &Tensor,
    mask: &Tensor,
    eps: f64,
) -> (Tensor, Tensor, Tensor) {
    let log_ratio = logp - logp_old;
    let ratio = log_ratio.exp();
    let unclipped = &ratio * adv;
    let clipped = ratio.clamp(1.0 - eps, 1.0 + eps) * adv;
    let loss = masked_mean(&unclipped.minimum(&clipped).neg(), mask);
    let clip_frac = masked_mean(&clipped.lt_tensor(&unclipped).to_kind(Kind::Float), mask);
    let kl = masked_mean(&(ratio.detach() - 1.0 - log_ratio.detach()), mask);
    (loss, clip_frac.detach(), kl)
}

/// A `[B, R]` tensor from per-row vectors (zero-padded), on `device`.
pub fn rows_to_tensor(rows: &[Vec<f64>], r: i64, device: Device) -> Tensor {
    let mut flat = vec![0f32; rows.len() * r as usize];
    for (i, row) in rows.iter().enumerate() {
        for (j, &v) in row.iter().enumerate().take(r as usize) {
            flat[i * r as usize + j] = v as f32;
        }
    }
    Tensor::from_slice(&flat)
        .view([rows.len() as i64, r])
        .to_device(device)
}

/// Per-row vectors of a `[B, R]` tensor, each cut to its row's length in `lens`.
pub fn tensor_to_rows(t: &Tensor, lens: &[usize]) -> Vec<Vec<f64>> {
    let r = t.size()[1] as usize;
    let flat = Vec::<f64>::try_from(
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )
    .unwrap_or_default();
    lens.iter()
        .enumerate()
        .map(|(i, &n)| flat[i * r..i * r + n.min(r)].to_vec())
        .collect()
}
