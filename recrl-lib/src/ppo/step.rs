//! One PPO step (docs/design.md §7), whatever the reward: sample a reply to every prompt (with soft
//! item tokens read from the coupled `E`), score the replies, and run one [`update()`] of LoRA,
//! `W_p`, the value head and `E`. The run ([`super::run::Trainer::step`]) and the tests call
//! this same step.

use super::adamw::Optimiser;
use super::coupling::Coupling;
use super::policy::{Responses, ValueHead};
use super::update::{update, PpoConfig, Rollouts, UpdateStats};
use crate::explainer::{Explainer, Generation, GenerationConfig, PromptBatch};
use anyhow::{Context, Result};
use tch::{Device, Tensor};

/// The prompts of one step.
pub struct Prompts {
    /// Token ids with their soft slots.
    pub batch: PromptBatch,
    /// The item behind each soft slot, in slot order.
    pub items: Vec<i64>,
}

/// Soft item tokens `W_p e_i`, read from the coupled table `E` with the current `W_p` (with
/// gradient), and for the reference policy from the initial `E` with the initial `W_p`: the KL
/// anchor stays where training started, so it bounds how far the soft tokens move (issue 31).
pub struct SoftTokens {
    e: Tensor,
    e0: Tensor,
    proj: Tensor,
    proj0: Tensor,
    device: Device,
}

impl SoftTokens {
    /// The soft tokens of `ex`'s `W_p` over `coupling`'s table (which they share, updates
    /// included); `W_p` as it is now (step 4's) is the reference's, which a resumed run then
    /// restores from its snapshot ([`SoftTokens::reference_projector_mut`]).
    pub fn new(coupling: &Coupling, ex: &Explainer) -> Result<SoftTokens> {
        let proj = ex
            .projector
            .as_ref()
            .context("init_projector first: the soft tokens need W_p")?
            .weight
            .shallow_clone();
        Ok(SoftTokens {
            e: coupling.e.shallow_clone(),
            e0: coupling.e0.shallow_clone(),
            proj0: proj.detach().copy(),
            proj,
            device: ex.model.device(),
        })
    }

    /// The current vectors of `items` (with gradient).
    pub fn vectors(&self, items: &Tensor) -> Tensor {
        self.e
            .index_select(0, items)
            .to_device(self.device)
            .linear::<Tensor>(&self.proj, None)
    }

    /// The reference's projector: `W_p` as the run started (a resumed run restores it from its
    /// snapshot).
    pub fn reference_projector(&self) -> &Tensor {
        &self.proj0
    }

    /// See [`SoftTokens::reference_projector`].
    pub fn reference_projector_mut(&mut self) -> &mut Tensor {
        &mut self.proj0
    }

    /// The reference policy's vectors of `items`: the initial `E` through the initial `W_p`
    /// (no gradient).
    pub fn reference(&self, items: &Tensor) -> Tensor {
        tch::no_grad(|| {
            self.e0
                .index_select(0, items)
                .to_device(self.device)
                .linear::<Tensor>(&self.proj0, None)
        })
    }
}

/// What PPO trains besides the explainer's own variables: the value head and the optimiser,
/// with the soft tokens the prompts read (`None`: prompts without soft slots).
pub struct Learner<O: Optimiser> {
    /// The value head (its variables live in the explainer's trainable store).
    pub value: ValueHead,
    /// The optimiser over the explainer's trainable store.
    pub opt: O,
    /// Soft item tokens.
    pub soft: Option<SoftTokens>,
    /// PPO settings.
    pub ppo: PpoConfig,
}

/// What one step sampled and learned.
pub struct Outcome {
    /// The replies (as `reward` left them).
    pub gens: Vec<Generation>,
    /// Their rewards.
    pub rewards: Vec<f64>,
    /// The update's statistics.
    pub stats: UpdateStats,
    /// Wall seconds of each phase.
    pub phases: Phases,
}

/// Wall seconds of the phases of one step (what a long run spends its time on).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phases {
    /// Generating the replies.
    pub sample: f64,
    /// Scoring them (the reward: `q(x)` and the simulated clicks).
    pub reward: f64,
    /// The update (log-probs, values, losses, optimiser steps).
    pub update: f64,
}

impl<O: Optimiser> Learner<O> {
    /// A reply to every prompt, `ppo.sim_batch` prompts per generation call (all at once for
    /// 0), each GRPO group's prompt prefilled once ([`PpoConfig::prompt_group`]); call `c` samples with seed `gen.seed ^ c·φ` (φ the 64-bit golden ratio; call 0 keeps
    /// `gen.seed`).
    fn sample(
        &self,
        ex: &Explainer,
        prompts: &Prompts,
        soft: Option<&Tensor>,
        gen: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        let rows = prompts.batch.ids.size()[0] as usize;
        let chunk = match self.ppo.sim_batch {
            0 => rows.max(1),
            n => n,
        };
        let mut gens = Vec::with_capacity(rows);
        for (c, lo) in (0..rows).step_by(chunk).enumerate() {
            let (part, range) = prompts.batch.rows(lo, (lo + chunk).min(rows));
            let vectors = soft.map(|v| v.narrow(0, range.start as i64, range.len() as i64));
            let cfg = GenerationConfig {
                seed: gen.seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ..gen.clone()
            };
            gens.extend(crate::explainer::generate::generate_grouped(
                &ex.model,
                &ex.tokenizer,
                &part,
                vectors.as_ref(),
                &cfg,
                self.ppo.prompt_group(),
            )?);
        }
        Ok(gens)
    }

    /// One PPO step on `prompts`: samples a reply to each with `gen`, scores the replies with
    /// `reward` (which may also edit their text, and may read the explainer), then updates `ex` (LoRA, `W_p`), the value
    /// head and `E`; `after_step` runs after every optimiser step (the shield goes there).
    pub fn step(
        &mut self,
        ex: &mut Explainer,
        prompts: &Prompts,
        gen: &GenerationConfig,
        reward: impl FnOnce(&mut Explainer, &mut [Generation]) -> Result<Vec<f64>>,
        after_step: &mut dyn FnMut(),
    ) -> Result<Outcome> {
        let items = Tensor::from_slice(&prompts.items).to_device(ex.model.device());
        let soft = || self.soft.as_ref().map(|s| s.vectors(&items));
        let soft_ref = self.soft.as_ref().map(|s| s.reference(&items));
        let clock = std::time::Instant::now();
        let mut gens = self.sample(ex, prompts, soft().as_ref(), gen)?;
        let sampled = clock.elapsed().as_secs_f64();
        let rewards = reward(ex, &mut gens)?;
        let rewarded = clock.elapsed().as_secs_f64();
        let resp = Responses::new(&prompts.batch, &gens, ex.tokenizer.pad);
        let sampler_logprobs = resp.sampler_logprobs(&gens);
        let batch = Rollouts {
            resp: &resp,
            soft: &soft,
            soft_ref: soft_ref.as_ref(),
            rewards: &rewards,
            sampled: Some(&sampler_logprobs),
        };
        let stats = update(
            &mut ex.model,
            &self.value,
            &mut self.opt,
            &batch,
            &self.ppo,
            after_step,
        );
        let phases = Phases {
            sample: sampled,
            reward: rewarded - sampled,
            update: clock.elapsed().as_secs_f64() - rewarded,
        };
        Ok(Outcome {
            gens,
            rewards,
            stats,
            phases,
        })
    }
}
