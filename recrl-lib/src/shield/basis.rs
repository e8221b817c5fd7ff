//! The basis of user states (docs/design.md §5): thin SVD of the probe states `H = U Σ Vᵀ`, the
//! smallest `k` whose singular values hold a share τ of the energy, `B = V[:, :k]`.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Relative slack on the energy comparison, so that τ = 1 stops at the numerical rank instead
/// of taking directions whose energy is rounding noise.
const ENERGY_SLACK: f64 = 1e-9;

/// An orthonormal basis `B ∈ R^{d×k}` of the directions the probe user states occupy.
#[derive(Debug)]
pub struct Basis {
    /// `[d, k]`, orthonormal columns (f32, CPU).
    pub b: Tensor,
    /// All singular values of `H`, descending (`min(M, d)` of them).
    pub sigma: Vec<f64>,
    /// The energy threshold τ it was cut at.
    pub tau: f64,
    /// Probe states it was fitted on (M).
    pub probes: usize,
}

/// The smallest `k` with `Σ_{j≤k} σ_j² ≥ τ Σ_j σ_j²` (0 when every σ is 0).
pub fn k_for(sigma: &[f64], tau: f64) -> usize {
    let total: f64 = sigma.iter().map(|s| s * s).sum();
    if total == 0.0 || tau <= 0.0 {
        return 0;
    }
    let mut cum = 0.0;
    for (j, s) in sigma.iter().enumerate() {
        cum += s * s;
        if cum >= (tau - ENERGY_SLACK) * total {
            return j + 1;
        }
    }
    sigma.len()
}

impl Basis {
    /// Fits the basis of the rows of `h` (`[M, d]`, any device) at energy threshold `tau`
    /// (SVD in f64 on the CPU).
    pub fn fit(h: &Tensor, tau: f64) -> Result<Basis> {
        ensure!(
            (0.0..=1.0).contains(&tau),
            "shield.tau must be in [0, 1], got {tau}"
        );
        let size = h.size();
        ensure!(
            size.len() == 2 && size[0] > 0,
            "probe states must be a non-empty [M, d] matrix, got {size:?}"
        );
        let h64 = h.detach().to_device(Device::Cpu).to_kind(Kind::Double);
        // Thin SVD: V is [d, min(M, d)]; tch's linalg_svd cannot leave its driver unset.
        let (_, s, v) = h64.svd(true, true);
        let sigma = Vec::<f64>::try_from(&s)?;
        let k = k_for(&sigma, tau) as i64;
        let b = v.narrow(1, 0, k).contiguous().to_kind(Kind::Float);
        Ok(Basis {
            b,
            sigma,
            tau,
            probes: size[0] as usize,
        })
    }

    /// Hidden size d.
    pub fn d(&self) -> usize {
        self.b.size()[0] as usize
    }

    /// Kept directions k.
    pub fn k(&self) -> usize {
        self.b.size()[1] as usize
    }

    /// Share of the energy in the first `k` directions.
    pub fn energy_kept(&self) -> f64 {
        let total: f64 = self.sigma.iter().map(|s| s * s).sum();
        let kept: f64 = self.sigma.iter().take(self.k()).map(|s| s * s).sum();
        if total == 0.0 {
            1.0
        } else {
            kept / total
        }
    }

    /// The projector `P = I − B Bᵀ` (`[d, d]`) on `device`.
    pub fn projector(&self, device: Device) -> Tensor {
        let b = self.b.to_device(device);
        Tensor::eye(self.d() as i64, (Kind::Float, device)) - b.matmul(&b.tr())
    }

    /// `x P = x − (x B) Bᵀ` for rows `x` (`[N, d]`), without forming `P`.
    pub fn project(&self, x: &Tensor) -> Tensor {
        let b = self.b.to_device(x.device()).to_kind(x.kind());
        x - x.matmul(&b).matmul(&b.tr())
    }

    /// `‖P h‖ / ‖h‖` for each row of `h`: the share of a user state outside the basis (0 for
    /// states the basis holds); the drift bound is `|δs| ≤ ‖P h_u‖ ‖Δe_i‖`.
    pub fn residual_shares(&self, h: &Tensor) -> Vec<f64> {
        let h = h.detach().to_kind(Kind::Float);
        let res = self.project(&h).to_kind(Kind::Double).norm_scalaropt_dim(
            2.0,
            [1i64].as_slice(),
            false,
        );
        let norm = h
            .to_kind(Kind::Double)
            .norm_scalaropt_dim(2.0, [1i64].as_slice(), false)
            .clamp_min(1e-30);
        Vec::<f64>::try_from(res / norm).unwrap_or_default()
    }
}
