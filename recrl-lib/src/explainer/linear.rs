//! A frozen base linear layer (dense or int8 weight-only) with an optional LoRA adapter.

use tch::{Kind, Tensor};

/// Frozen base weight `[out, in]`.
#[derive(Debug)]
pub enum BaseWeight {
    /// Full-precision (f32, or bf16 on CUDA), stored transposed, `[in, out]` contiguous:
    /// decoding one token is a matrix-vector product bound by memory bandwidth, and this layout
    /// streams faster through `matmul` than `[out, in]` through `linear` (31.5 vs 38 ms per
    /// SmolLM2 step on the 2-core CPU).
    DenseT(Tensor),
    /// Int8 weight-only: `q` int8 `[out, in]`, `scale` `[out, 1]` in the compute kind; the
    /// weight is `q · scale`, dequantised per forward pass.
    Int8 {
        /// Quantised values.
        q: Tensor,
        /// Per-output-row scales.
        scale: Tensor,
    },
}

impl BaseWeight {
    /// Symmetric per-row absmax int8 quantisation of `w` (`[out, in]`).
    pub fn quantize_int8(w: &Tensor) -> BaseWeight {
        let scale = w.abs().amax([1i64].as_slice(), true).clamp_min(1e-12) / 127.0;
        let q = (w / &scale)
            .round()
            .clamp(-127.0, 127.0)
            .to_kind(Kind::Int8);
        BaseWeight::Int8 { q, scale }
    }

    /// The weight `[out, in]` in `kind` (dequantised for int8).
    pub fn dense(&self, kind: Kind) -> Tensor {
        match self {
            BaseWeight::DenseT(wt) => wt.tr().to_kind(kind),
            BaseWeight::Int8 { q, scale } => q.to_kind(kind) * scale.to_kind(kind),
        }
    }

    /// Bytes the weight occupies.
    pub fn bytes(&self) -> i64 {
        let size = |t: &Tensor| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64;
        match self {
            BaseWeight::DenseT(w) => size(w),
            BaseWeight::Int8 { q, scale } => size(q) + size(scale),
        }
    }
}

/// A low-rank adapter `ΔW = scale · B A` (PEFT's LoRA).
#[derive(Debug)]
pub struct Lora {
    /// `[rank, in]`, Kaiming-uniform initialised.
    pub a: Tensor,
    /// `[out, rank]`, zero initialised.
    pub b: Tensor,
    /// α / rank.
    pub scale: f64,
    /// Dropout on the adapter's input while training.
    pub dropout: f64,
}

/// `y = x Wᵀ (+ scale · dropout(x) Aᵀ Bᵀ when the adapter is on)`.
#[derive(Debug)]
pub struct Linear {
    /// The frozen base weight.
    pub base: BaseWeight,
    /// The adapter, if one was added.
    pub lora: Option<Lora>,
}

impl Linear {
    /// A plain layer around a frozen weight `[out, in]`.
    pub fn new(weight: Tensor) -> Linear {
        Linear {
            base: BaseWeight::DenseT(weight.tr().contiguous()),
            lora: None,
        }
    }

    /// Output features.
    pub fn out_features(&self) -> i64 {
        match &self.base {
            BaseWeight::DenseT(wt) => wt.size()[1],
            BaseWeight::Int8 { q, .. } => q.size()[0],
        }
    }

    /// Input features.
    pub fn in_features(&self) -> i64 {
        match &self.base {
            BaseWeight::DenseT(wt) => wt.size()[0],
            BaseWeight::Int8 { q, .. } => q.size()[1],
        }
    }

    /// Applies the layer; the adapter counts only when `use_lora`.
    pub fn forward(&self, x: &Tensor, use_lora: bool, train: bool) -> Tensor {
        let y = match &self.base {
            BaseWeight::DenseT(wt) => dense_matmul(x, wt),
            int8 => x.linear::<Tensor>(&int8.dense(x.kind()), None),
        };
        match self.lora_delta(x, use_lora, train) {
            Some(delta) => y + delta,
            None => y,
        }
    }

    /// The adapter's term `scale · dropout(x) Aᵀ Bᵀ` (in `x`'s kind), if it has one and it is on.
    pub fn lora_delta(&self, x: &Tensor, use_lora: bool, train: bool) -> Option<Tensor> {
        let l = self.lora.as_ref().filter(|_| use_lora)?;
        let h = x.dropout(l.dropout, train).to_kind(l.a.kind());
        let delta = h.linear::<Tensor>(&l.a, None).linear::<Tensor>(&l.b, None) * l.scale;
        Some(delta.to_kind(x.kind()))
    }

    /// Replaces a dense base weight by its int8 weight-only quantisation.
    pub fn quantize_int8(&mut self) {
        if let BaseWeight::DenseT(_) = &self.base {
            self.base = BaseWeight::quantize_int8(&self.base.dense(Kind::Float));
        }
    }

    /// Folds the adapter into a dense base weight (`W + scale · B A`) and removes it.
    pub fn merge(&mut self) {
        if let Some(l) = self.lora.take() {
            let kind = match &self.base {
                BaseWeight::DenseT(w) => w.kind(),
                BaseWeight::Int8 { scale, .. } => scale.kind(),
            };
            let delta = l.b.matmul(&l.a) * l.scale;
            let w = tch::no_grad(|| self.base.dense(Kind::Float) + delta.to_kind(Kind::Float));
            self.base = BaseWeight::DenseT(w.to_kind(kind).detach().tr().contiguous());
        }
    }
}

/// `x · wt` for a transposed dense weight (by libtorch; with `fast-decode`, a few f32 rows on
/// the CPU, i.e. decoding, by `fast::few_rows::matmul`).
pub fn dense_matmul(x: &Tensor, wt: &Tensor) -> Tensor {
    #[cfg(feature = "fast-decode")] // hook: few-rows kernel
    if let Some(y) = super::fast::few_rows::matmul(x, wt) {
        return y;
    }
    x.matmul(wt)
}

/// The outputs of linear layers that read the same `x`, side by side (`[.., Σ out]`), run one
/// by one.
pub fn forward_side_by_side(parts: &[&Linear], x: &Tensor, use_lora: bool, train: bool) -> Tensor {
    let ys: Vec<Tensor> = parts
        .iter()
        .map(|p| p.forward(x, use_lora, train))
        .collect();
    Tensor::cat(&ys, -1)
}
