//! The KV cache written in place: its buffers keep spare room, and each decoding step copies
//! its keys and values into it instead of concatenating every layer's whole cache again.

use super::few_rows;
use tch::Tensor;

/// Tokens a layer's buffers make room for when they (re)grow to take the keys `k` and values
/// `v` of new tokens after `len` cached ones: the reserve (prompt + reply) at the first step,
/// at least twice what they then hold when a later step outgrows them, and no spare room where
/// gradients flow (no in-place writes into the autograd graph).
pub fn room(k: &Tensor, v: &Tensor, len: i64, reserve: i64) -> i64 {
    let need = len + k.size()[2];
    match (k.requires_grad() || v.requires_grad(), len) {
        (true, _) => need,
        (false, 0) => need.max(reserve),
        (false, _) => need.max(reserve).max(2 * need),
    }
}

/// Writes one step's keys and values `[B, kv_heads, T, head_dim]` into `buffers` after the
/// `len` cached tokens, when the buffers have room and no gradient flows; `false` (nothing
/// written) otherwise.
pub fn write_in_place(
    buffers: Option<&(Tensor, Tensor)>,
    len: i64,
    k: &Tensor,
    v: &Tensor,
) -> bool {
    let t = k.size()[2];
    let grad = k.requires_grad() || v.requires_grad();
    let fits = buffers.is_some_and(|(kb, _)| kb.size()[2] >= len + t);
    let Some((kb, vb)) = buffers.filter(|_| !grad && fits) else {
        return false;
    };
    for (buf, new) in [(kb, k), (vb, v)] {
        let mut slot = buf.narrow(2, len, t);
        if !few_rows::copy_small(&slot, new) {
            slot.copy_(new);
        }
    }
    true
}
