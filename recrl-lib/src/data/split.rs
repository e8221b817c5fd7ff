//! The held-out evaluation users (docs/design.md §8.5): a seeded split of the users with a
//! training history into RL users, whose prompts PPO rolls out, and evaluation users, who only
//! ever appear on the audit's click panel. The split depends on the dataset and the
//! configuration's `split` section only (never on a run's seed), so every arm and seed of a
//! dataset shares it.

use super::Dataset;
use crate::config::SplitConfig;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// RL users and evaluation users, each ascending; together the users with a training history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSplit {
    /// Users PPO may draw.
    pub rl: Vec<usize>,
    /// Users it never draws: the audit's panel comes from these.
    pub eval: Vec<usize>,
    /// The settings it was drawn with.
    pub config: SplitConfig,
}

impl UserSplit {
    /// The split of `ds` with `config`: the users with a training history shuffled by
    /// `config.seed` (Fisher–Yates over [`Rng`]), the last `round(eval_fraction · n)` of that
    /// order held out (at least one when `eval_fraction` > 0 and there are two users or more,
    /// and never all).
    pub fn new(ds: &Dataset, config: &SplitConfig) -> UserSplit {
        let users: Vec<usize> = (1..=ds.n_users())
            .filter(|&u| !ds.train[u - 1].is_empty())
            .collect();
        Self::of_users(users, config)
    }

    /// The split of `users` (any order) with `config`; see [`UserSplit::new`].
    pub fn of_users(mut users: Vec<usize>, config: &SplitConfig) -> UserSplit {
        users.sort_unstable();
        let n = users.len();
        let mut want = (config.eval_fraction.clamp(0.0, 1.0) * n as f64).round() as usize;
        if config.eval_fraction > 0.0 && n >= 2 {
            want = want.max(1);
        }
        let want = want.min(n.saturating_sub(1));
        Rng::new(config.seed).shuffle(&mut users);
        let mut eval = users.split_off(n - want);
        let mut rl = users;
        rl.sort_unstable();
        eval.sort_unstable();
        UserSplit {
            rl,
            eval,
            config: config.clone(),
        }
    }

    /// Whether `user` is held out for evaluation.
    pub fn is_eval(&self, user: usize) -> bool {
        self.eval.binary_search(&user).is_ok()
    }

    /// The click panel: all evaluation users when `n` is 0 or at least their number, else a
    /// seeded sample of `n` of them (seed `config.seed`, the same for every arm), ascending.
    pub fn panel(&self, n: usize) -> Vec<usize> {
        seeded_subset(&self.eval, n, self.config.seed ^ 0x0009_A4E1)
    }

    /// A seeded sample of `n` RL users (all of them when fewer; none for 0), ascending: the RL
    /// side of the membership test's mixed set.
    pub fn rl_sample(&self, n: usize) -> Vec<usize> {
        match n {
            0 => Vec::new(),
            _ => seeded_subset(&self.rl, n, self.config.seed ^ 0x003E_3BE5),
        }
    }

    /// sha256 (hex) of the evaluation users written as a JSON list: records name the split by it.
    pub fn digest(&self) -> String {
        crate::io::sha256_bytes(
            serde_json::to_string(&self.eval)
                .expect("a list of integers serialises")
                .as_bytes(),
        )
    }
}

/// `n` of `from` drawn by a seeded shuffle (all when `n` is 0 or at least `from.len()`), ascending.
fn seeded_subset(from: &[usize], n: usize, seed: u64) -> Vec<usize> {
    let mut out = from.to_vec();
    if n > 0 && n < out.len() {
        Rng::new(seed).shuffle(&mut out);
        out.truncate(n);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(fraction: f64, seed: u64) -> SplitConfig {
        SplitConfig {
            eval_fraction: fraction,
            seed,
        }
    }

    #[test]
    fn a_fifth_held_out_disjoint_and_covering() {
        let users: Vec<usize> = (1..=943).collect();
        let s = UserSplit::of_users(users.clone(), &cfg(0.2, 7));
        assert_eq!(s.eval.len(), 189); // round(0.2 · 943) = round(188.6)
        assert_eq!(s.rl.len(), 943 - 189);
        let mut all = [s.rl.clone(), s.eval.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, users);
        assert!(s.eval.windows(2).all(|w| w[0] < w[1]));
        assert!(s.eval.iter().all(|&u| s.is_eval(u)));
        assert!(s.rl.iter().all(|&u| !s.is_eval(u)));
    }

    #[test]
    fn fixed_by_its_seed_not_by_the_order_of_users() {
        let a = UserSplit::of_users((1..=100).collect(), &cfg(0.2, 7));
        let b = UserSplit::of_users((1..=100).rev().collect(), &cfg(0.2, 7));
        let c = UserSplit::of_users((1..=100).collect(), &cfg(0.2, 8));
        assert_eq!(a, b);
        assert_ne!(a.eval, c.eval);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
    }

    #[test]
    fn the_shuffle_by_hand() {
        // Four users, seed 1: the held-out user is the last of the Fisher–Yates order.
        let mut order = vec![1usize, 2, 3, 4];
        Rng::new(1).shuffle(&mut order);
        let s = UserSplit::of_users(vec![1, 2, 3, 4], &cfg(0.25, 1));
        assert_eq!(s.eval, vec![order[3]]);
    }

    #[test]
    fn never_all_and_at_least_one() {
        let s = UserSplit::of_users(vec![1, 2], &cfg(0.9, 3));
        assert_eq!((s.rl.len(), s.eval.len()), (1, 1));
        let s = UserSplit::of_users(vec![1, 2, 3], &cfg(0.01, 3));
        assert_eq!(s.eval.len(), 1);
        let s = UserSplit::of_users(vec![1, 2, 3], &cfg(0.0, 3));
        assert!(s.eval.is_empty());
        let s = UserSplit::of_users(vec![7], &cfg(0.9, 3));
        assert_eq!((s.rl, s.eval), (vec![7], vec![]), "never all");
    }

    #[test]
    fn panels_are_seeded_subsets_of_the_held_out_users() {
        let s = UserSplit::of_users((1..=1000).collect(), &cfg(0.2, 5));
        let p = s.panel(150);
        assert_eq!(p.len(), 150);
        assert!(p.iter().all(|&u| s.is_eval(u)));
        assert_eq!(p, s.panel(150));
        assert_eq!(s.panel(0), s.eval);
        assert_eq!(s.panel(10_000), s.eval);
        let m = s.rl_sample(50);
        assert_eq!(m.len(), 50);
        assert!(m.iter().all(|&u| !s.is_eval(u)));
        assert!(s.rl_sample(0).is_empty());
    }
}
