//! Step 3: the basis and the shield — closed-form checks of B and P, and the guarantee under
//! many shielded AdamW steps on `E` (exact for probe users, bounded for others, and broken
//! without the shield); basis files round trip and refusals.

use recrl_lib::config::Config;
use recrl_lib::ranker::{self, TrainOptions};
use recrl_lib::shield::{self, k_for, Basis, Shield};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

mod common;
use common::{successor_dataset, torch_rng};

fn max_abs(t: &Tensor) -> f64 {
    f64::try_from(t.abs().max().to_kind(Kind::Double)).unwrap()
}

#[test]
fn k_follows_the_energy_threshold_by_hand() {
    // energies 9, 4, 1 of 14: 9/14 = 0.6429, 13/14 = 0.9286, 14/14 = 1.
    let s = [3.0, 2.0, 1.0];
    assert_eq!(k_for(&s, 0.0), 0);
    assert_eq!(k_for(&s, 0.6), 1);
    assert_eq!(k_for(&s, 0.642), 1);
    assert_eq!(k_for(&s, 0.65), 2);
    assert_eq!(k_for(&s, 0.928), 2);
    assert_eq!(k_for(&s, 0.93), 3);
    assert_eq!(k_for(&s, 1.0), 3);
    assert_eq!(
        k_for(&[2.0, 1e-9, 0.0], 1.0),
        1,
        "rounding-level energy is not a direction"
    );
}

#[test]
fn basis_is_orthonormal_and_projector_idempotent_symmetric() {
    let _g = torch_rng();
    tch::manual_seed(1);
    // H of rank 5 in d = 12: τ = 1 keeps exactly its row space.
    let h = Tensor::randn([40, 5], (Kind::Float, Device::Cpu))
        .matmul(&Tensor::randn([5, 12], (Kind::Float, Device::Cpu)));
    let basis = Basis::fit(&h, 1.0).unwrap();
    assert_eq!((basis.d(), basis.k()), (12, 5));
    let btb = basis.b.tr().matmul(&basis.b);
    assert!(
        max_abs(&(btb - Tensor::eye(5, (Kind::Float, Device::Cpu)))) < 1e-5,
        "BᵀB = I"
    );
    let p = basis.projector(Device::Cpu);
    assert!(max_abs(&(p.matmul(&p) - &p)) < 1e-5, "P² = P");
    assert!(max_abs(&(&p - p.tr())) < 1e-6, "Pᵀ = P");
    assert!(
        basis.residual_shares(&h).iter().all(|&r| r < 1e-4),
        "probe states lie in span(B)"
    );
    assert!(
        max_abs(&(basis.project(&h) - h.matmul(&p))) < 1e-4,
        "project = x P"
    );
    // τ < 1 keeps fewer directions and the energy share it promises.
    let partial = Basis::fit(&h, 0.9).unwrap();
    assert!(
        partial.k() < 5 && partial.energy_kept() >= 0.9 - 1e-9,
        "k {} energy {}",
        partial.k(),
        partial.energy_kept()
    );
}

/// Runs `steps` AdamW steps (weight decay, clipping) on `E` with random losses, shielded or not;
/// returns (E before, E after, mean removed fraction).
fn adamw_on_table(shield: Option<&Shield>, steps: usize) -> (Tensor, Tensor, f64) {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut e = vs.root().var(
        "e",
        &[30, 16],
        nn::Init::Randn {
            mean: 0.0,
            stdev: 0.5,
        },
    );
    let start = e.detach().copy();
    let mut opt = nn::AdamW {
        wd: 0.1,
        ..Default::default()
    }
    .build(&vs, 1e-2)
    .unwrap();
    let mut removed = 0.0;
    for _ in 0..steps {
        let target = Tensor::randn([30, 16], (Kind::Float, Device::Cpu));
        let loss = (&e * &target).sum(Kind::Float) + e.pow_tensor_scalar(2).sum(Kind::Float) * 0.01;
        opt.zero_grad();
        loss.backward();
        opt.clip_grad_norm(1.0);
        let before = e.detach().copy();
        opt.step();
        if let Some(s) = shield {
            removed += f64::try_from(s.project_update(&mut e, &before)).unwrap();
        }
    }
    (start, e.detach().copy(), removed / steps as f64)
}

#[test]
fn shielded_adamw_keeps_probe_scores_and_bounds_the_rest() {
    let _g = torch_rng();
    tch::manual_seed(3);
    // M = 10 probe states < d = 16, τ = 1 (docs/design.md §5: exact preservation needs M < d).
    let probes = Tensor::randn([10, 16], (Kind::Float, Device::Cpu));
    let others = Tensor::randn([25, 16], (Kind::Float, Device::Cpu));
    let shield = Shield {
        basis: Basis::fit(&probes, 1.0).unwrap(),
    };
    assert_eq!(shield.basis.k(), 10);
    let (e0, e1, removed) = adamw_on_table(Some(&shield), 200);
    let delta = &e1 - &e0;
    assert!(
        max_abs(&delta) > 0.1,
        "E still moves (outside the probes' span)"
    );
    assert!(
        removed > 0.3 && removed < 1.0,
        "a share of each update was removed: {removed}"
    );
    let probe_drift = max_abs(&(probes.matmul(&e1.tr()) - probes.matmul(&e0.tr())));
    assert!(
        probe_drift < 1e-4,
        "probe users' scores unchanged: max |δs| = {probe_drift}"
    );
    // Held-out users: |δs(u,i)| ≤ ‖P h_u‖ ‖Δe_i‖.
    let ds = others.matmul(&delta.tr()).abs();
    let res = shield
        .basis
        .project(&others)
        .norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
    let de = delta.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
    let bound = res.matmul(&de.tr());
    assert!(
        f64::try_from((&ds - &bound - 1e-4).max()).unwrap() <= 0.0,
        "bound violated"
    );
    assert!(max_abs(&ds) > 1e-2, "held-out users do move");
    // Without the shield the probes' scores drift.
    let (u0, u1, _) = adamw_on_table(None, 200);
    let unshielded = max_abs(&(probes.matmul(&u1.tr()) - probes.matmul(&u0.tr())));
    assert!(unshielded > 0.1, "unshielded drift {unshielded}");
}

#[test]
fn basis_files_round_trip_and_refuse_corruption_or_another_ranker() {
    let _g = torch_rng();
    let root = tempfile::tempdir().unwrap();
    let ds = successor_dataset(40, 150, 5);
    let mut cfg = Config::load_default("ml-100k").unwrap().ranker;
    (cfg.hidden, cfg.blocks, cfg.max_len, cfg.epochs) = (16, 1, 8, 1);
    let opts = TrainOptions {
        config: cfg,
        seed: 1,
        device: Device::Cpu,
        bf16: false,
        log_path: None,
    };
    let (mut rk, _) = ranker::train_and_save(root.path(), &ds, &opts, |_| {}).unwrap();
    let users = shield::probe_users(&ds, 25, 9);
    assert_eq!(users.len(), 25);
    assert_eq!(users, shield::probe_users(&ds, 25, 9), "seeded");
    let h = shield::probe_states(&rk, &ds, 25, 9);
    assert_eq!(h.size(), [25, 16]);
    let basis = Basis::fit(&h, 0.99).unwrap();
    let dir = root.path().join("checkpoints");
    let meta = basis.save(&dir, "ml-100k", &rk).unwrap();
    assert_eq!(meta.k, basis.k());
    let (back, _) = Basis::load(&dir, "ml-100k", &rk).unwrap();
    assert!(back.b.equal(&basis.b) && back.sigma == basis.sigma);
    // another ranker
    rk.meta.as_mut().unwrap().weights_sha256 = "0".repeat(64);
    let err = Basis::load(&dir, "ml-100k", &rk).unwrap_err().to_string();
    assert!(err.contains("refit the basis"), "{err}");
    // corruption
    let (w, _) = recrl_lib::paths::basis_files_in(&dir, "ml-100k");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let err = Basis::load(&dir, "ml-100k", &rk).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}
