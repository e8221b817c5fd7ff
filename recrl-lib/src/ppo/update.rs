//! One PPO update (docs/design.md §7) on a batch of sampled responses with sequence rewards:
//! reference and old log-probs, KL-penalised token rewards, GAE, whitened advantages, then
//! `epochs` passes of the clipped objective plus the value loss, with gradient clipping.

use super::advantage::{gae, group_centred, group_standardised, token_rewards, whiten};
use super::policy::{
    masked_mean, policy_loss, rows_to_tensor, tensor_to_rows, Responses, ValueHead,
};
use crate::config::{Algorithm, Config, OldLogprobs};
use crate::explainer::Llama;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// PPO hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    /// Clip range ε of the probability ratio.
    pub clip: f64,
    /// Optimisation passes over each batch.
    pub epochs: usize,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Gradient norm clip.
    pub max_grad_norm: f64,
    /// Sampling temperature (log-probs are taken at it).
    pub temperature: f64,
    /// Discount γ.
    pub gamma: f64,
    /// GAE λ.
    pub lambda: f64,
    /// Per-token KL penalty β (`--kl_beta`).
    pub kl_beta: f64,
    /// Rollouts per micro-batch (`--micro_batch_size`): `micro_batch_size × grad_accum`
    /// rollouts make one optimiser step; one micro-batch a forward/backward pass unless
    /// `exec_batch` is larger.
    pub micro_batch_size: usize,
    /// Micro-batches whose gradients add up before one optimiser step (`--grad_accum`).
    pub grad_accum: usize,
    /// Rollouts per forward/backward pass (`--exec_batch`; 0: `micro_batch_size`): whole
    /// micro-batches of one optimiser step run together when memory allows. The update does
    /// not change ([`PpoConfig::pass_rows`]).
    #[serde(default)]
    pub exec_batch: usize,
    /// Consecutive rollouts that share a prompt (`--group_size`). Above 1, the baseline is
    /// the group's mean reward: advantages are the reward-to-go (λ = 1) of the token rewards
    /// with the sequence reward centred in its group, and the value head is not used for them.
    #[serde(default = "crate::config::one")]
    pub group_size: usize,
    /// PPO (value head + GAE) or GRPO (group-relative advantages, KL as a loss term).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Prompts sampled per generation call (`sim_batch`; 0: the whole batch at once).
    #[serde(default)]
    pub sim_batch: usize,
    /// Run a GRPO group's shared prompt once per pass, its keys and values serving the
    /// group's replies (true; false: every row computes its prompt, as before issue 29). The
    /// update is the same up to float rounding (`tests/ppo.rs`).
    #[serde(default = "crate::config::yes")]
    pub shared_prompts: bool,
    /// Where GRPO's old log-probs come from (`sampler`: [`Rollouts::sampled`], no pass;
    /// `score`: a no-grad scoring pass). PPO always scores: its value head reads that pass.
    #[serde(default)]
    pub old_logprobs: OldLogprobs,
}

impl Default for PpoConfig {
    /// The configuration's defaults ([`PpoConfig::of`] [`Config::defaults`]): a crate user gets
    /// the CLI's algorithm and batch shape.
    fn default() -> Self {
        PpoConfig::of(&Config::defaults())
    }
}

impl PpoConfig {
    /// The PPO settings of a configuration: the one mapping from its keys.
    pub fn of(cfg: &Config) -> PpoConfig {
        PpoConfig {
            clip: cfg.ppo.clip,
            epochs: cfg.epochs,
            vf_coef: cfg.ppo.vf_coef,
            max_grad_norm: cfg.ppo.max_grad_norm,
            temperature: cfg.temperature,
            gamma: cfg.ppo.gamma,
            lambda: cfg.ppo.lambda,
            kl_beta: cfg.kl_beta,
            micro_batch_size: cfg.micro_batch_size,
            grad_accum: cfg.grad_accum,
            exec_batch: cfg.exec_batch,
            group_size: cfg.group_size,
            algorithm: cfg.algorithm,
            sim_batch: cfg.sim_batch,
            shared_prompts: cfg.shared_prompts,
            old_logprobs: cfg.old_logprobs,
        }
    }

    /// Rollouts per optimiser step: `micro_batch_size × grad_accum`.
    pub fn step_rows(&self) -> usize {
        self.micro_batch_size.max(1) * self.grad_accum.max(1)
    }

    /// Rows that share a prompt in every pass: `group_size` with [`PpoConfig::shared_prompts`],
    /// else 1.
    pub fn prompt_group(&self) -> usize {
        match self.shared_prompts {
            true => self.group_size.max(1),
            false => 1,
        }
    }

    /// Rollouts per forward/backward pass: `exec_batch` rounded down to whole micro-batches,
    /// at least one micro-batch and at most one optimiser step's. Every token's loss is
    /// weighted by its share of the batch's tokens, so an optimiser step's gradient is the
    /// same sum whichever way its rows are split into passes.
    pub fn pass_rows(&self) -> usize {
        let mb = self.micro_batch_size.max(1);
        (self.exec_batch / mb * mb).clamp(mb, self.step_rows())
    }
}

/// What one update measured (means over response tokens unless said otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Mean sequence reward (before the KL penalty).
    pub reward: f64,
    /// Mean over responses of `Σ_t (log π − log π_ref)`.
    pub kl: f64,
    /// Policy loss of the last epoch.
    pub policy_loss: f64,
    /// Value loss of the last epoch.
    pub value_loss: f64,
    /// Share of tokens whose ratio was clipped (last epoch).
    pub clip_frac: f64,
    /// Approximate KL between the rollout and updated policy (last epoch).
    pub approx_kl: f64,
    /// Mean of `−log π_old` per token (an entropy estimate).
    pub entropy: f64,
    /// Mean response length in tokens.
    pub response_len: f64,
    /// Share of groups whose rewards were all equal (GRPO: they teach nothing).
    #[serde(default)]
    pub zero_std_groups: f64,
    /// Forward/backward passes the update ran, over all epochs (not logged).
    #[serde(skip)]
    pub passes: usize,
}

/// The batch one update learns from.
pub struct Rollouts<'a> {
    /// Prompts with their sampled replies.
    pub resp: &'a Responses,
    /// The current soft-token vectors (with gradient), or `None`.
    pub soft: &'a dyn Fn() -> Option<Tensor>,
    /// The reference policy's soft-token vectors (initial `W_p`, `E`).
    pub soft_ref: Option<&'a Tensor>,
    /// One sequence reward per reply.
    pub rewards: &'a [f64],
    /// `[B, R]` log-probs the sampler computed for the replies' tokens (0 after their end), if
    /// known: GRPO's old log-probs under [`OldLogprobs::Sampler`].
    pub sampled: Option<&'a Tensor>,
}

/// What every pass of an update compares against, fixed before the first: per-token old
/// log-probs, whitened advantages and returns.
struct Targets {
    lens: Vec<usize>,
    logp_old: Tensor,
    logp_ref: Tensor,
    adv: Tensor,
    ret: Tensor,
    total_tokens: f64,
}

/// Runs one update on `batch`; the reference is the model with LoRA off (and `batch.soft_ref`).
/// `after_step` runs after every optimiser step (the shield's projection goes there).
pub fn update(
    model: &mut Llama,
    value: &ValueHead,
    opt: &mut dyn super::adamw::Optimiser,
    batch: &Rollouts,
    cfg: &PpoConfig,
    after_step: &mut dyn FnMut(),
) -> UpdateStats {
    let (targets, mut stats) = targets(model, value, batch, cfg);
    for _ in 0..cfg.epochs {
        let (losses, passes) = epoch(model, value, opt, batch, &targets, cfg, after_step);
        [
            stats.policy_loss,
            stats.value_loss,
            stats.clip_frac,
            stats.approx_kl,
        ] = losses;
        stats.passes += passes;
    }
    stats
}

/// Old and reference log-probs, KL-penalised token rewards, GAE and whitened advantages, and
/// the statistics that do not change over the passes.
fn targets(
    model: &mut Llama,
    value: &ValueHead,
    batch: &Rollouts,
    cfg: &PpoConfig,
) -> (Targets, UpdateStats) {
    let (resp, seq_rewards) = (batch.resp, batch.rewards);
    let mask = &resp.token_mask;
    let lens: Vec<usize> =
        Vec::<f64>::try_from(mask.sum_dim_intlist([1i64].as_slice(), false, Kind::Double))
            .unwrap_or_default()
            .iter()
            .map(|&n| n as usize)
            .collect();
    let sampled = match (cfg.algorithm, cfg.old_logprobs) {
        (Algorithm::Grpo, OldLogprobs::Sampler) => batch.sampled,
        _ => None,
    };
    let (logp_old, values_old, logp_ref) = tch::no_grad(|| {
        let group = cfg.prompt_group();
        let (lp, v) = match sampled {
            Some(lp) => (lp * mask, mask.zeros_like()),
            None => {
                let (lp, h) = resp.score(
                    model,
                    (batch.soft)().as_ref(),
                    cfg.temperature,
                    false,
                    group,
                );
                (lp, value.forward(&h))
            }
        };
        let was = model.lora_enabled;
        model.lora_enabled = false;
        let (lr, _) = resp.score(model, batch.soft_ref, cfg.temperature, false, group);
        model.lora_enabled = was;
        (lp, v, lr)
    });
    let (old_rows, ref_rows, val_rows) = (
        tensor_to_rows(&logp_old, &lens),
        tensor_to_rows(&logp_ref, &lens),
        tensor_to_rows(&values_old, &lens),
    );
    let (advs, rets) = match cfg.algorithm {
        Algorithm::Ppo => advantages(seq_rewards, &old_rows, &ref_rows, &val_rows, cfg),
        Algorithm::Grpo => group_relative(seq_rewards, &lens, cfg.group_size),
    };
    let width = mask.size()[1];
    let (adv, ret) = (
        rows_to_tensor(&advs, width, mask.device()),
        rows_to_tensor(&rets, width, mask.device()),
    );
    let n = lens.len().max(1) as f64;
    let stats = UpdateStats {
        reward: seq_rewards.iter().sum::<f64>() / n,
        kl: old_rows
            .iter()
            .zip(&ref_rows)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).sum::<f64>())
            .sum::<f64>()
            / n,
        entropy: -f64::try_from(masked_mean(&logp_old, mask)).unwrap_or(0.0),
        response_len: lens.iter().sum::<usize>() as f64 / n,
        zero_std_groups: zero_std_share(seq_rewards, cfg.group_size),
        ..Default::default()
    };
    let total_tokens = f64::try_from(mask.sum(Kind::Double))
        .unwrap_or(1.0)
        .max(1.0);
    let targets = Targets {
        lens,
        logp_old,
        logp_ref,
        adv,
        ret,
        total_tokens,
    };
    (targets, stats)
}

/// Per-token advantages (whitened over the whole batch) and returns of each reply, from its
/// sequence reward and its old, reference and value rows.
fn advantages(
    seq_rewards: &[f64],
    old_rows: &[Vec<f64>],
    ref_rows: &[Vec<f64>],
    val_rows: &[Vec<f64>],
    cfg: &PpoConfig,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut advs = Vec::new();
    let mut rets = Vec::new();
    let grouped = cfg.group_size > 1;
    let baselined = group_centred(seq_rewards, cfg.group_size);
    for i in 0..old_rows.len() {
        let r = token_rewards(baselined[i], &old_rows[i], &ref_rows[i], cfg.kl_beta);
        let (a, ret) = if grouped {
            gae(&r, &vec![0.0; r.len()], cfg.gamma, 1.0)
        } else {
            gae(&r, &val_rows[i], cfg.gamma, cfg.lambda)
        };
        advs.push(a);
        rets.push(ret);
    }
    let mut flat: Vec<f64> = advs.iter().flatten().copied().collect();
    whiten(&mut flat);
    let mut it = flat.into_iter();
    let advs: Vec<Vec<f64>> = advs
        .iter()
        .map(|row| row.iter().map(|_| it.next().unwrap_or(0.0)).collect())
        .collect();
    (advs, rets)
}

/// GRPO's advantages: each reply's reward standardised within its group
/// ([`group_standardised`]), the same at every token of the reply; no returns (no value head).
fn group_relative(
    seq_rewards: &[f64],
    lens: &[usize],
    group: usize,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let adv = group_standardised(seq_rewards, group);
    let advs = adv.iter().zip(lens).map(|(&a, &n)| vec![a; n]).collect();
    let rets = lens.iter().map(|&n| vec![0.0; n]).collect();
    (advs, rets)
}

/// The share of groups of `size` consecutive rewards that are all equal (0 for `size` ≤ 1).
fn zero_std_share(rewards: &[f64], size: usize) -> f64 {
    if size <= 1 || rewards.is_empty() {
        return 0.0;
    }
    let groups: Vec<&[f64]> = rewards.chunks(size).collect();
    let flat = groups
        .iter()
        .filter(|g| g.iter().all(|r| (r - g[0]).abs() < 1e-12))
        .count();
    flat as f64 / groups.len() as f64
}

/// One pass over the batch: an optimiser step after every `micro_batch_size × grad_accum`
/// rollouts (and after the last), their gradients added up over forward/backward passes of
/// [`PpoConfig::pass_rows`] rollouts. Losses are weighted by their share of tokens, so the
/// accumulated gradients equal the full batch's. Returns the epoch's policy loss, value loss,
/// clipped share and approximate KL, read back once at the end (no host sync per pass), and
/// the number of passes.
fn epoch(
    model: &mut Llama,
    value: &ValueHead,
    opt: &mut dyn super::adamw::Optimiser,
    batch: &Rollouts,
    t: &Targets,
    cfg: &PpoConfig,
    after_step: &mut dyn FnMut(),
) -> ([f64; 4], usize) {
    let rows = t.lens.len();
    let (per_step, per_pass) = (cfg.step_rows(), cfg.pass_rows());
    let mut sums = Tensor::zeros([4], (Kind::Float, batch.resp.token_mask.device()));
    let mut passes = 0;
    opt.zero_grad();
    for first in (0..rows).step_by(per_step) {
        let last = (first + per_step).min(rows);
        for lo in (first..last).step_by(per_pass) {
            let hi = (lo + per_pass).min(last);
            sums += pass(model, value, batch, t, cfg, lo..hi);
            passes += 1;
        }
        opt.clip_grad_norm(cfg.max_grad_norm);
        opt.step();
        opt.zero_grad();
        after_step();
    }
    let s = Vec::<f64>::try_from(sums.to_kind(Kind::Double)).unwrap_or_default();
    let at = |i: usize| s.get(i).copied().unwrap_or(f64::NAN);
    ([at(0), at(1), at(2), at(3)], passes)
}

/// The forward and backward pass of rollouts `range`: back-propagates their share of the
/// batch's loss and returns `[policy loss, value loss, clipped share, approx KL]`, each
/// weighted by the rollouts' share of the batch's tokens (detached).
fn pass(
    model: &mut Llama,
    value: &ValueHead,
    batch: &Rollouts,
    t: &Targets,
    cfg: &PpoConfig,
    range: std::ops::Range<usize>,
) -> Tensor {
    let (l, n) = (range.start as i64, range.len() as i64);
    let (part, slots) = batch.resp.rows(range.start, range.end);
    let vectors = (batch.soft)().map(|v| v.narrow(0, slots.start as i64, slots.len() as i64));
    let m = batch.resp.token_mask.narrow(0, l, n);
    let share = t.lens[range].iter().sum::<usize>() as f64 / t.total_tokens;
    let (lp, h) = part.score(
        model,
        vectors.as_ref(),
        cfg.temperature,
        true,
        cfg.prompt_group(),
    );
    let (pl, clip_frac, approx_kl) = policy_loss(
        &lp,
        &t.logp_old.narrow(0, l, n),
        &t.adv.narrow(0, l, n),
        &m,
        cfg.clip,
    );
    let (pl, vl) = match cfg.algorithm {
        Algorithm::Ppo => {
            let err = value.forward(&h) - t.ret.narrow(0, l, n);
            (pl, masked_mean(&err.pow_tensor_scalar(2), &m) * 0.5)
        }
        Algorithm::Grpo => {
            let k3 = reference_kl(&lp, &t.logp_ref.narrow(0, l, n));
            let zero = Tensor::zeros([], (Kind::Float, m.device()));
            (pl + masked_mean(&k3, &m) * cfg.kl_beta, zero)
        }
    };
    ((&pl + &vl * cfg.vf_coef) * share).backward();
    let parts = [pl.detach(), vl.detach(), clip_frac, approx_kl];
    Tensor::stack(&parts.map(|x| x.to_kind(Kind::Float)), 0) * share
}

/// Per-token `KL(π ‖ π_ref)` estimate from samples of π (k3): `e^(ref − logp) − (ref − logp) − 1`,
/// ≥ 0, with gradient through `logp`.
fn reference_kl(logp: &Tensor, logp_ref: &Tensor) -> Tensor {
    let d = logp_ref - logp;
    d.exp() - d - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_std_groups_and_grpo_advantages_by_hand() {
        // groups [0.5, 0.5] (flat), [0.1, 0.3] and a last, shorter [0.7]
        assert!((zero_std_share(&[0.5, 0.5, 0.1, 0.3, 0.7], 2) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(zero_std_share(&[0.5, 0.5], 1), 0.0);
        let (advs, rets) = group_relative(&[0.5, 0.5, 0.1, 0.3], &[2, 1, 3, 2], 2);
        let a = 0.1 / (0.02f64.sqrt() + 1e-4);
        assert_eq!(advs[0], vec![0.0, 0.0]);
        assert!((advs[2][2] + a).abs() < 1e-12 && (advs[3][0] - a).abs() < 1e-12);
        assert_eq!((advs[1].len(), rets[2].len()), (1, 3));
    }

    #[test]
    fn pass_rows_are_whole_micro_batches_of_one_optimiser_step() {
        let cfg = |micro_batch_size, grad_accum, exec_batch| PpoConfig {
            micro_batch_size,
            grad_accum,
            exec_batch,
            ..PpoConfig::default()
        };
        // (micro, accum, exec) → rows per pass: 0 and anything below a micro-batch keep the
        // seed's one micro-batch; more is cut to whole micro-batches and to one step's rows
        for ((m, a, e), want) in [
            ((4, 2, 0), 4),
            ((4, 2, 3), 4),
            ((4, 2, 7), 4),
            ((4, 2, 8), 8),
            ((4, 2, 64), 8),
            ((4, 8, 13), 12),
            ((5, 1, 10), 5),
        ] {
            assert_eq!(
                cfg(m, a, e).pass_rows(),
                want,
                "micro {m} accum {a} exec {e}"
            );
        }
        assert_eq!(cfg(4, 8, 0).step_rows(), 32);
    }

    #[test]
    fn reference_kl_is_k3() {
        let lp = Tensor::from_slice(&[-1.0f64, -2.0]);
        let lr = Tensor::from_slice(&[-1.5f64, -2.0]);
        let k = Vec::<f64>::try_from(reference_kl(&lp, &lr)).unwrap();
        assert!((k[0] - ((-0.5f64).exp() + 0.5 - 1.0)).abs() < 1e-12 && k[1] == 0.0);
    }
}
