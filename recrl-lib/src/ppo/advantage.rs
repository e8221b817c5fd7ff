//! Generalised advantage estimation and PPO's per-token objective terms (docs/design.md §7).

/// GAE over one response: `δ_t = r_t + γ V_{t+1} − V_t` (V after the last token is 0),
/// `A_t = δ_t + γλ A_{t+1}`; returns `(advantages, returns = A + V)`.
pub fn gae(rewards: &[f64], values: &[f64], gamma: f64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(rewards.len(), values.len(), "one value per reward");
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut next_adv = 0.0;
    for t in (0..n).rev() {
        let next_v = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * next_v - values[t];
        next_adv = delta + gamma * lambda * next_adv;
        adv[t] = next_adv;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// Per-token rewards of a response: `−β (log π − log π_ref)` at every token, plus the
/// sequence reward (the simulated click probability) on the last token.
pub fn token_rewards(seq_reward: f64, logp: &[f64], logp_ref: &[f64], beta: f64) -> Vec<f64> {
    let mut r: Vec<f64> = logp
        .iter()
        .zip(logp_ref)
        .map(|(a, b)| -beta * (a - b))
        .collect();
    if let Some(last) = r.last_mut() {
        *last += seq_reward;
    }
    r
}

/// The group baseline: each sequence reward minus the mean reward of its group of `size`
/// consecutive rollouts (one prompt sampled `size` times). `size` ≤ 1 leaves the rewards as
/// they are; a last, shorter group is centred on its own mean.
pub fn group_centred(rewards: &[f64], size: usize) -> Vec<f64> {
    if size <= 1 {
        return rewards.to_vec();
    }
    rewards
        .chunks(size)
        .flat_map(|g| {
            let mean = g.iter().sum::<f64>() / g.len() as f64;
            g.iter().map(move |r| r - mean)
        })
        .collect()
}

/// GRPO's advantages: each reward minus its group's mean, over the group's sample standard
/// deviation (n − 1, as `torch.std`) plus 1e-4, for groups of `size` consecutive rollouts; a
/// group of equal rewards gets 0 everywhere (it teaches nothing).
pub fn group_standardised(rewards: &[f64], size: usize) -> Vec<f64> {
    rewards
        .chunks(size.max(1))
        .flat_map(|g| {
            let n = g.len() as f64;
            let mean = g.iter().sum::<f64>() / n;
            let var = g.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            let sd = var.sqrt();
            g.iter().map(move |r| (r - mean) / (sd + 1e-4))
        })
        .collect()
}

/// Zero-mean, unit-variance advantages (over a whole batch); unchanged when constant.
pub fn whiten(x: &mut [f64]) {
    let n = x.len() as f64;
    if n < 2.0 {
        return;
    }
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    for v in x.iter_mut() {
        *v = if sd > 1e-12 {
            (*v - mean) / sd
        } else {
            *v - mean
        };
    }
}

/// PPO's clipped surrogate for one token, to be minimised:
/// `−min(ρ A, clip(ρ, 1−ε, 1+ε) A)` with `ρ = exp(log π − log π_old)`; also whether it clipped.
pub fn clipped_surrogate(logp: f64, logp_old: f64, adv: f64, eps: f64) -> (f64, bool) {
    let ratio = (logp - logp_old).exp();
    let unclipped = ratio * adv;
    let clipped = ratio.clamp(1.0 - eps, 1.0 + eps) * adv;
    (-unclipped.min(clipped), clipped < unclipped)
}

/// The low-variance estimator of `KL(π_old ‖ π)` from samples of π_old:
/// `(ρ − 1) − log ρ` with `ρ = π/π_old` (Schulman's k3), ≥ 0.
pub fn approx_kl(logp: f64, logp_old: f64) -> f64 {
    let log_ratio = logp - logp_old;
    log_ratio.exp() - 1.0 - log_ratio
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_by_hand() {
        // r = [0, 0, 1], V = [0.5, 0.4, 0.6], γ = 1, λ = 0.95:
        // δ2 = 1 − 0.6 = 0.4; δ1 = 0 + 0.6 − 0.4 = 0.2; δ0 = 0 + 0.4 − 0.5 = −0.1
        // A2 = 0.4; A1 = 0.2 + 0.95·0.4 = 0.58; A0 = −0.1 + 0.95·0.58 = 0.451
        let (a, r) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.4, 0.6], 1.0, 0.95);
        let want = [0.451, 0.58, 0.4];
        for (x, w) in a.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{a:?}");
        }
        assert!(
            (r[0] - 0.951).abs() < 1e-12 && (r[2] - 1.0).abs() < 1e-12,
            "{r:?}"
        );
        // λ = 1, γ = 1: A_t = (sum of future rewards) − V_t (Monte Carlo).
        let (a, _) = gae(&[0.1, 0.2, 0.3], &[1.0, 2.0, 3.0], 1.0, 1.0);
        assert!((a[0] - (0.6 - 1.0)).abs() < 1e-12 && (a[1] - (0.5 - 2.0)).abs() < 1e-12);
    }

    #[test]
    fn group_baseline_by_hand() {
        // groups [0.2, 0.6] (mean 0.4) and [0.9, 0.5] (mean 0.7)
        let c = group_centred(&[0.2, 0.6, 0.9, 0.5], 2);
        let want = [-0.2, 0.2, 0.2, -0.2];
        for (x, w) in c.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{c:?}");
        }
        assert_eq!(group_centred(&[0.3, 0.7], 1), vec![0.3, 0.7]);
        // the same user in a group: a shared offset (their bias, the item's score) cancels
        let shifted = group_centred(&[1.2, 1.6, 0.9, 0.5], 2);
        assert!((shifted[0] - c[0]).abs() < 1e-12 && (shifted[1] - c[1]).abs() < 1e-12);
    }

    #[test]
    fn group_standardised_by_hand() {
        // group [1, 2, 3]: mean 2, sample sd 1 → (−1, 0, 1)/(1 + 1e-4); group [5, 5, 5]: zeros
        let a = group_standardised(&[1.0, 2.0, 3.0, 5.0, 5.0, 5.0], 3);
        let s = 1.0 + 1e-4;
        let want = [-1.0 / s, 0.0, 1.0 / s, 0.0, 0.0, 0.0];
        for (x, w) in a.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{a:?}");
        }
        // [0.2, 0.6]: mean 0.4, sd sqrt(0.08) = 0.28284
        let b = group_standardised(&[0.2, 0.6], 2);
        assert!(
            (b[1] - 0.2 / (0.08f64.sqrt() + 1e-4)).abs() < 1e-12 && (b[0] + b[1]).abs() < 1e-12
        );
    }

    #[test]
    fn token_rewards_put_the_sequence_reward_last() {
        let r = token_rewards(0.7, &[-1.0, -2.0], &[-1.5, -2.0], 0.1);
        assert_eq!(r.len(), 2);
        assert!(
            (r[0] + 0.05).abs() < 1e-12 && (r[1] - 0.7).abs() < 1e-12,
            "{r:?}"
        );
    }

    #[test]
    fn clipped_surrogate_closed_form() {
        let eps = 0.2;
        // ratio e^0.5 = 1.6487 > 1.2 with A > 0: clipped at 1.2 A.
        let (l, c) = clipped_surrogate(0.5, 0.0, 2.0, eps);
        assert!((l + 2.4).abs() < 1e-12 && c);
        // same ratio, A < 0: the unclipped (more pessimistic) term −1.6487·(−2) wins.
        let (l, c) = clipped_surrogate(0.5, 0.0, -2.0, eps);
        assert!((l - 2.0 * 0.5f64.exp()).abs() < 1e-12 && !c);
        // ratio 1: plain −A.
        assert_eq!(clipped_surrogate(-1.0, -1.0, 0.3, eps), (-0.3, false));
    }

    #[test]
    fn approx_kl_is_zero_at_equality_and_matches_its_closed_form() {
        assert_eq!(approx_kl(-2.0, -2.0), 0.0);
        let (lp, lo) = (-1.0f64, -1.3f64);
        assert!((approx_kl(lp, lo) - ((0.3f64).exp() - 1.0 - 0.3)).abs() < 1e-12);
        assert!(approx_kl(-3.0, -1.0) > 0.0);
    }

    #[test]
    fn whiten_gives_zero_mean_unit_variance() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        whiten(&mut x);
        let mean: f64 = x.iter().sum::<f64>() / 4.0;
        let var: f64 = x.iter().map(|v| v * v).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
    }
}
