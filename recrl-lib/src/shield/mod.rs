//! Step 3: the gradient shield (docs/design.md §5). A basis `B` of the ranker's user states, fitted on
//! probe users, and the projection `ΔE ← ΔE P`, `P = I − B Bᵀ`, applied to the *actual* update
//! of the shared item table `E` after each optimiser step (weight decay and clipping included).
//! Then `δs(u,i) = (P h_u)ᵀ Δe_i`: zero for states in the span of `B`, and at most
//! `‖P h_u‖ ‖Δe_i‖` for any user.
//!
//! ```no_run
//! use recrl_lib::{data, ranker::Ranker, shield};
//! let root = recrl_lib::paths::project_root();
//! let ds = data::store::load(&root, data::DatasetName::Ml100k)?;
//! let ranker = Ranker::load(&root.join("checkpoints"), &ds, tch::Device::Cpu)?;
//! let h = shield::probe_states(&ranker, &ds, 20_000, 42);
//! let basis = shield::Basis::fit(&h, 0.999)?;
//! println!("k = {} of d = {}", basis.k(), basis.d());
//! # anyhow::Ok(())
//! ```

pub mod basis;
pub mod report;
pub mod store;

pub use basis::{k_for, Basis};
pub use store::BasisMeta;

use crate::data::Dataset;
use crate::ranker::Ranker;
use crate::rng::Rng;
use tch::{Kind, Tensor};

/// Training users whose states form the probe set: all of them, or `cap` drawn with `seed`
/// (sorted), 1-based.
pub fn probe_users(ds: &Dataset, cap: usize, seed: u64) -> Vec<usize> {
    let mut users: Vec<usize> = (1..=ds.n_users())
        .filter(|&u| !ds.train[u - 1].is_empty())
        .collect();
    if users.len() > cap {
        Rng::new(seed).shuffle(&mut users);
        users.truncate(cap);
        users.sort_unstable();
    }
    users
}

/// Probe states `H` (`[M, d]`): the frozen encoder's `h_u` after each probe user's training
/// history, the states that rank the validation item.
pub fn probe_states(ranker: &Ranker, ds: &Dataset, cap: usize, seed: u64) -> Tensor {
    states_of(ranker, &probe_users(ds, cap, seed), |u| {
        ds.train[u - 1].clone()
    })
}

/// `h_u` of `users` after the histories `history(u)`, in batches of 1,024.
pub fn states_of(ranker: &Ranker, users: &[usize], history: impl Fn(usize) -> Vec<u32>) -> Tensor {
    let parts: Vec<Tensor> = users
        .chunks(1024)
        .map(|chunk| {
            let hs: Vec<Vec<u32>> = chunk.iter().map(|&u| history(u)).collect();
            ranker.user_states(&hs)
        })
        .collect();
    Tensor::cat(&parts, 0)
}

/// Applies the shield to rows of `E` after an optimiser step.
#[derive(Debug)]
pub struct Shield {
    /// The basis it protects.
    pub basis: Basis,
}

impl Shield {
    /// Replaces `table`'s update since `before` by its projection, `E ← E₀ + (E − E₀) P`, in
    /// place and without gradient; returns the fraction of the update's norm removed (0 for no
    /// update) as a scalar f64 tensor on the table's device, so that a step does not wait for
    /// the device: read it when it is logged.
    pub fn project_update(&self, table: &mut Tensor, before: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let delta = &*table - before;
            let kept = self.basis.project(&delta);
            let total = delta.norm().to_kind(Kind::Double);
            let removed = (&delta - &kept).norm().to_kind(Kind::Double);
            table.copy_(&(before + kept));
            removed / total.clamp_min(f64::MIN_POSITIVE)
        })
    }
}
