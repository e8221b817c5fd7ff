//! Linear layers that read the same input (q, k, v; gate, up) computed as one matrix product:
//! their dense base weights are column blocks of one `[in, Σ out]` matrix, and each layer's
//! own weight is a view of its block. Fewer, larger products stream the weights faster (on
//! the 2-core CPU, 30 SmolLM2 layers decode in about 70% of the time of separate products).

use super::arena::WeightArena;
use crate::explainer::linear::{dense_matmul, BaseWeight, Linear};
use tch::Tensor;

/// The `[in, Σ out]` block of some linear layers' weights, or nothing (the layers run one by
/// one).
#[derive(Debug, Default)]
pub struct Fused(Option<Tensor>);

impl Fused {
    /// Puts the dense weights of `parts` side by side (in `arena`); holds nothing (so the
    /// parts run one by one) when any part is int8.
    pub fn new(parts: &mut [&mut Linear], arena: &mut WeightArena) -> Fused {
        let dense: Option<Vec<&Tensor>> = parts
            .iter()
            .map(|p| match &p.base {
                BaseWeight::DenseT(wt) => Some(wt),
                BaseWeight::Int8 { .. } => None,
            })
            .collect();
        let Some(dense) = dense else {
            return Fused(None);
        };
        let block = arena.hold(&Tensor::cat(&dense, 1));
        let mut offset = 0;
        for p in parts.iter_mut() {
            let n = p.out_features();
            p.base = BaseWeight::DenseT(block.narrow(1, offset, n));
            offset += n;
        }
        Fused(Some(block))
    }

    /// The block, while every part's weight is still its view (merging or quantising a part
    /// replaces its weight, and the parts then run one by one).
    fn block(&self, parts: &[&Linear]) -> Option<&Tensor> {
        let block = self.0.as_ref()?;
        let elt = block.kind().elt_size_in_bytes() as i64;
        let mut offset = 0;
        for p in parts {
            let BaseWeight::DenseT(wt) = &p.base else {
                return None;
            };
            let at = block.data_ptr() as i64 + offset * elt;
            if wt.data_ptr() as i64 != at || wt.stride() != block.stride() {
                return None;
            }
            offset += wt.size()[1];
        }
        (offset == block.size()[1] && parts.iter().all(|p| p.in_features() == block.size()[0]))
            .then_some(block)
    }

    /// The outputs of `parts` side by side, `[.., Σ out]`, adapters included when `use_lora`,
    /// from one product; `None` (the caller runs the parts one by one, see
    /// [`crate::explainer::linear::forward_side_by_side`]) without a current block or where
    /// gradients flow (training), where separate products measured faster than one product
    /// plus the adapters' concatenated terms.
    pub fn forward(
        &self,
        parts: &[&Linear],
        x: &Tensor,
        use_lora: bool,
        train: bool,
    ) -> Option<Tensor> {
        let block = self.block(parts).filter(|_| !x.requires_grad())?;
        let y = dense_matmul(x, block);
        let deltas: Vec<Option<Tensor>> = parts
            .iter()
            .map(|p| p.lora_delta(x, use_lora, train))
            .collect();
        if deltas.iter().all(Option::is_none) {
            return Some(y);
        }
        let deltas: Vec<Tensor> = deltas
            .into_iter()
            .zip(parts)
            .map(|(d, p)| {
                d.unwrap_or_else(|| {
                    let mut shape = x.size();
                    *shape.last_mut().expect("x has a feature axis") = p.out_features();
                    Tensor::zeros(shape, (x.kind(), x.device()))
                })
            })
            .collect();
        Some(y + Tensor::cat(&deltas, -1))
    }
}
