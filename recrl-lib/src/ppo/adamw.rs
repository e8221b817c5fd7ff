//! AdamW whose state can be saved and restored (tch's optimiser keeps its moments inside
//! libtorch, out of reach), so that a PPO run resumes exactly where it stopped. The update is
//! PyTorch's `torch.optim.AdamW`: decoupled weight decay, bias-corrected moments, no amsgrad.

use anyhow::{Context, Result};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// What [`super::update()`] needs of an optimiser: tch's own or [`AdamW`].
pub trait Optimiser {
    /// Sets every gradient to zero.
    fn zero_grad(&mut self);
    /// Scales all gradients together so that their global L2 norm is at most `max`.
    fn clip_grad_norm(&mut self, max: f64);
    /// One optimisation step.
    fn step(&mut self);
}

impl Optimiser for nn::Optimizer {
    fn zero_grad(&mut self) {
        nn::Optimizer::zero_grad(self)
    }
    fn clip_grad_norm(&mut self, max: f64) {
        nn::Optimizer::clip_grad_norm(self, max)
    }
    fn step(&mut self) {
        nn::Optimizer::step(self)
    }
}

/// AdamW over the trainable variables of a [`nn::VarStore`], with its state in tensors.
pub struct AdamW {
    vars: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken.
    pub steps: i64,
    /// Learning rate.
    pub lr: f64,
    /// β₁, β₂.
    pub betas: (f64, f64),
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl AdamW {
    /// AdamW over `vs`'s trainable variables (sorted by name), β (0.9, 0.999), ε 1e-8.
    pub fn new(vs: &nn::VarStore, lr: f64, weight_decay: f64) -> AdamW {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |vars: &[(String, Tensor)]| -> Vec<Tensor> {
            vars.iter().map(|(_, t)| t.zeros_like()).collect()
        };
        AdamW {
            m: zeros(&vars),
            v: zeros(&vars),
            vars,
            steps: 0,
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
        }
    }

    /// The moments and step count as named tensors (`m.<var>`, `v.<var>`, `steps`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("steps".to_string(), Tensor::from(self.steps))];
        for ((name, _), (m, v)) in self.vars.iter().zip(self.m.iter().zip(&self.v)) {
            out.push((format!("m.{name}"), m.shallow_clone()));
            out.push((format!("v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Writes [`AdamW::state`] to `path` (safetensors, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::save_tensors(path, &self.state())
    }

    /// Restores the state saved by [`AdamW::save`]; every variable must be there.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("reading optimiser state {}", path.display()))?
            .into_iter()
            .collect();
        let get = |k: &str| {
            saved
                .get(k)
                .with_context(|| format!("{}: no `{k}` (another model?)", path.display()))
        };
        self.steps = get("steps")?.int64_value(&[]);
        tch::no_grad(|| -> Result<()> {
            for ((name, t), (m, v)) in self.vars.iter().zip(self.m.iter_mut().zip(&mut self.v)) {
                m.copy_(&get(&format!("m.{name}"))?.to_device(t.device()));
                v.copy_(&get(&format!("v.{name}"))?.to_device(t.device()));
            }
            Ok(())
        })
    }
}

impl Optimiser for AdamW {
    fn zero_grad(&mut self) {
        for (_, t) in &mut self.vars {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    fn clip_grad_norm(&mut self, max: f64) {
        let grads: Vec<Tensor> = self
            .vars
            .iter()
            .map(|(_, t)| t.grad())
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return;
        }
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.norm().to_kind(Kind::Double))
            .collect();
        // max / (norm + 1e-6), at most 1, kept on the device (no host sync per step); a
        // factor of exactly 1 leaves the gradients as they are, and so does a NaN norm (as
        // before: one bad gradient does not spread to every variable)
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (Tensor::full([], max, (Kind::Double, total.device())) / (total + 1e-6))
            .clamp_max(1.0)
            .nan_to_num(1.0, None, None);
        for mut g in grads {
            let _ = g.g_mul_(&coef.to_kind(g.kind()));
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.steps as i32);
        let bc2 = 1.0 - b2.powi(self.steps as i32);
        tch::no_grad(|| {
            for ((_, p), (m, v)) in self.vars.iter_mut().zip(self.m.iter_mut().zip(&mut self.v)) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = p.g_mul_scalar_(1.0 - self.lr * self.weight_decay);
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
                let denom = v.sqrt() / bc2.sqrt() + self.eps;
                let _ = p.g_sub_(&(&*m / &denom * (self.lr / bc1)));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps on f(w) = Σ w² from w = (1, -2), lr 0.1, wd 0.01: the first step moves each
    /// weight by lr · sign(g) (m̂/√v̂ = ±1) after the decay; later steps by hand below.
    #[test]
    fn adamw_matches_hand_computed_steps_and_restores_its_state() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f64, -2.0]));
        let mut opt = AdamW::new(&vs, 0.1, 0.01);
        let loss = |w: &Tensor| w.square().sum(Kind::Double);
        // By hand, per weight: w ← w(1 − lr·wd); m, v moments of g = 2w (before the decay).
        let mut want = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for t in 1..=3 {
            opt.zero_grad();
            loss(&w).backward();
            opt.step();
            for k in 0..2 {
                let g = 2.0 * want[k];
                want[k] *= 1.0 - 0.1 * 0.01;
                m[k] = 0.9 * m[k] + 0.1 * g;
                v[k] = 0.999 * v[k] + 0.001 * g * g;
                let (mh, vh) = (
                    m[k] / (1.0 - 0.9f64.powi(t)),
                    v[k] / (1.0 - 0.999f64.powi(t)),
                );
                want[k] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
            let got = Vec::<f64>::try_from(&w).unwrap();
            for k in 0..2 {
                assert!(
                    (got[k] - want[k]).abs() < 1e-6, // f32 variables
                    "step {t}: {got:?} vs {want:?}"
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        opt.save(&dir.path().join("opt.safetensors")).unwrap();
        let mut again = AdamW::new(&vs, 0.1, 0.01);
        again.load(&dir.path().join("opt.safetensors")).unwrap();
        assert_eq!(again.steps, 3);
        assert!(again.m[0].equal(&opt.m[0]) && again.v[0].equal(&opt.v[0]));
    }

    #[test]
    fn clipping_scales_the_global_norm() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[3.0f64]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[4.0f64]));
        let mut opt = AdamW::new(&vs, 0.1, 0.0);
        (&a * 3.0 + &b * 4.0).sum(Kind::Double).backward(); // grads 3, 4: norm 5
        opt.clip_grad_norm(1.0);
        let ga = f64::try_from(a.grad()).unwrap();
        assert!((ga - 3.0 / (5.0 + 1e-6)).abs() < 1e-6, "{ga}"); // f32 variables
                                                                 // below the limit the gradients stay exactly as they are
        let before = b.grad().copy();
        opt.clip_grad_norm(10.0);
        assert!(b.grad().equal(&before));
        // a NaN gradient leaves the others unscaled
        let mut ga = a.grad();
        let _ = ga.fill_(f64::NAN);
        opt.clip_grad_norm(1e-3);
        assert!(b.grad().equal(&before));
    }
}
