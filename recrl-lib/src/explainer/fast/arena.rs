//! Frozen weights packed into one CPU buffer backed by transparent huge pages. Decoding a
//! token streams every weight once, and with 2 MiB pages instead of 4 KiB ones the stream
//! runs about 20% faster on the 2-core dev machine (`BENCHMARKS.md`, step 4).

use crate::explainer::config::LlamaConfig;
use crate::explainer::linear::{BaseWeight, Linear};
use tch::{Device, Kind, Tensor};

/// Values are placed at multiples of this (64 bytes in f32: one cache line).
const ALIGN: i64 = 16;

/// A buffer that frozen weights are copied into, each becoming a view of it.
#[derive(Debug, Default)]
pub struct WeightArena {
    buf: Option<Tensor>,
    used: i64,
}

impl WeightArena {
    /// Room for `numel` values of `kind` (plus alignment) on the CPU; on other devices, or
    /// for `numel == 0`, it holds nothing and [`WeightArena::hold`] returns plain copies.
    pub fn new(numel: i64, tensors: i64, kind: Kind, device: Device) -> WeightArena {
        if numel == 0 || device != Device::Cpu {
            return WeightArena::default();
        }
        let buf = Tensor::empty([numel + ALIGN * tensors], (kind, device));
        advise_huge_pages(&buf);
        WeightArena {
            buf: Some(buf),
            used: 0,
        }
    }

    /// The arena for the weights [`crate::explainer::Llama::from_tensors`] packs: every dense
    /// linear layer and the output head (none with `int8` weights, which stay separate).
    pub fn for_model(config: &LlamaConfig, kind: Kind, device: Device, int8: bool) -> WeightArena {
        if int8 {
            return WeightArena::default();
        }
        let (numel, tensors) = dense_numel(config);
        WeightArena::new(numel, tensors, kind, device)
    }

    /// `t` (any layout) as a contiguous tensor inside the arena when it has room, else a
    /// contiguous copy of its own.
    pub fn hold(&mut self, t: &Tensor) -> Tensor {
        let n = t.numel() as i64;
        match &self.buf {
            Some(buf) if self.used + n <= buf.numel() as i64 && t.kind() == buf.kind() => {
                let mut slot = buf.narrow(0, self.used, n).view(t.size().as_slice());
                tch::no_grad(|| slot.copy_(t));
                self.used += (n + ALIGN - 1) / ALIGN * ALIGN;
                slot
            }
            _ => t.contiguous(),
        }
    }

    /// Moves `lin`'s dense base weight into the arena (int8 weights stay where they are).
    pub fn place(&mut self, lin: &mut Linear) {
        if let BaseWeight::DenseT(wt) = &lin.base {
            lin.base = BaseWeight::DenseT(self.hold(wt));
        }
    }
}

/// Values and count of the tensors [`WeightArena::for_model`] makes room for: every dense
/// linear layer and the output head.
fn dense_numel(c: &LlamaConfig) -> (i64, i64) {
    let (d, ffn, hd) = (
        c.hidden_size as i64,
        c.intermediate_size as i64,
        c.head_dim() as i64,
    );
    let (nq, nkv) = (c.num_attention_heads as i64, c.num_key_value_heads as i64);
    let attention = d * (nq + 2 * nkv) * hd + nq * hd * d;
    let mlp = 3 * d * ffn;
    let layers = c.num_hidden_layers as i64;
    (
        layers * (attention + mlp) + d * c.vocab_size as i64,
        4 * layers + 1,
    )
}

/// Asks the kernel to back `t`'s memory with 2 MiB pages (before it is first written, so that
/// its pages are faulted in huge). Only the 2 MiB-aligned interior qualifies; on failure, or
/// off Linux, the memory keeps small pages and only the speed differs.
fn advise_huge_pages(t: &Tensor) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 1 << 21;
        let start = t.data_ptr() as usize;
        let end = start + t.numel() * t.kind().elt_size_in_bytes();
        let first = start.div_ceil(HUGE) * HUGE;
        let last = end / HUGE * HUGE;
        if last > first {
            // SAFETY: [first, last) lies inside `t`'s allocation; the advice changes only how
            // the kernel backs those pages, never their contents.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = t;
}
