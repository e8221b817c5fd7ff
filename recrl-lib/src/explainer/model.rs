//! The Llama decoder, one struct per part: [`RmsNorm`], [`Rope`] (rotary position
//! embeddings), [`Attention`] (grouped-query, keys and values kept in a [`KvCache`]), [`Mlp`]
//! (SwiGLU), [`Block`] (one decoder layer) and [`Llama`] (embeddings, blocks, final norm, tied
//! or untied lm_head). Base weights are frozen tensors; only LoRA adapters (see
//! [`super::lora`]) and inputs spliced into the embeddings carry gradients.
//!
//! Everything runs on libtorch, except at the hooks marked `#[cfg(feature = "fast-decode")]`:
//! there a decoding step on the CPU may take the kernels of `super::fast` (few-rows kernels,
//! a huge-page weight arena, fused q|k|v and gate|up products, in-place KV-cache writes). Each
//! hook falls through to the libtorch code below it where its kernel declines.

use super::config::LlamaConfig;
#[cfg(feature = "fast-decode")]
use super::fast;
use super::linear::{dense_matmul, forward_side_by_side, Linear};
use super::LoadOptions;
use anyhow::{Context, Result};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Reads the model's tensors by Hugging Face name: frozen, on the model's device, in its kind.
struct Weights<'a> {
    get: &'a mut dyn FnMut(&str) -> Result<Tensor>,
    device: Device,
    kind: Kind,
    /// Quantise linear layers to int8 as they arrive.
    int8: bool,
}

impl Weights<'_> {
    /// The tensor `name`.
    fn tensor(&mut self, name: &str) -> Result<Tensor> {
        Ok((self.get)(name)?
            .to_device(self.device)
            .to_kind(self.kind)
            .set_requires_grad(false))
    }

    /// The linear layer `name` (tensor `{name}.weight`).
    fn linear(&mut self, name: &str) -> Result<Linear> {
        let mut l = Linear::new(self.tensor(&format!("{name}.weight"))?);
        if self.int8 {
            l.quantize_int8();
        }
        Ok(l)
    }
}

/// RMSNorm: `x / rms(x) · weight` over the last axis.
#[derive(Debug)]
pub struct RmsNorm {
    /// Per-feature gain `[d]`.
    pub weight: Tensor,
    /// Added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    /// A norm with gain `weight`.
    pub fn new(weight: Tensor, eps: f64) -> RmsNorm {
        RmsNorm { weight, eps }
    }

    /// Normalises `x` `[.., d]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        rms_norm(x, &self.weight, self.eps)
    }
}

/// Rotary position embeddings in the `rotate_half` layout, frequencies `θ^(-2i / head_dim)`.
#[derive(Debug)]
pub struct Rope {
    /// `[head_dim / 2]` f32.
    inv_freq: Tensor,
}

impl Rope {
    /// The frequencies of `config` (`rope_theta`, `head_dim`) on `device`.
    pub fn new(config: &LlamaConfig, device: Device) -> Rope {
        let hd = config.head_dim() as i64;
        let exps = Tensor::arange_start_step(0, hd, 2, (Kind::Double, Device::Cpu)) / hd as f64;
        let inv_freq = (Tensor::from(config.rope_theta).pow(&exps))
            .reciprocal()
            .to_kind(Kind::Float);
        Rope {
            inv_freq: inv_freq.to_device(device),
        }
    }

    /// `(cos, sin)` `[B, 1, T, head_dim]` in `kind` at `positions` `[B, T]`.
    pub fn forward(&self, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }
}

/// What every block of one forward pass reads besides its input.
#[derive(Debug)]
pub struct Pass {
    /// `[B, 1, T, S]` bool: the keys each query sees.
    pub allowed: Tensor,
    /// RoPE `cos` `[B, 1, T, head_dim]`.
    pub cos: Tensor,
    /// RoPE `sin` `[B, 1, T, head_dim]`.
    pub sin: Tensor,
    /// Whether LoRA adapters take part.
    pub lora: bool,
    /// Training: adapter dropout on.
    pub train: bool,
}

/// Grouped-query self-attention with rotary embeddings.
#[derive(Debug)]
pub struct Attention {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// Query heads, key/value heads, head size.
    heads: (i64, i64, i64),
    /// With fast-decode: `q | k | v` as one product.
    fused: Packed,
}

impl Attention {
    /// The projections `{prefix}.{q,k,v,o}_proj`.
    fn load(w: &mut Weights, prefix: &str, config: &LlamaConfig) -> Result<Attention> {
        Ok(Attention {
            q: w.linear(&format!("{prefix}.q_proj"))?,
            k: w.linear(&format!("{prefix}.k_proj"))?,
            v: w.linear(&format!("{prefix}.v_proj"))?,
            o: w.linear(&format!("{prefix}.o_proj"))?,
            heads: (
                config.num_attention_heads as i64,
                config.num_key_value_heads as i64,
                config.head_dim() as i64,
            ),
            fused: Packed::default(),
        })
    }

    /// Attention of normed `x` `[B, T, d]` over the cached and the new tokens; appends the new
    /// keys and values to `cache` (as layer `layer`).
    pub fn forward(&self, x: &Tensor, pass: &Pass, cache: &mut KvCache, layer: usize) -> Tensor {
        let (bsz, t) = (x.size()[0], x.size()[1]);
        let (nq, nkv, hd) = self.heads;
        // [B, q + k + v heads, T, head_dim]; RoPE turns the query and key heads in one go.
        let qkv = self.qkv(x, pass);
        #[cfg(feature = "fast-decode")] // hook: rotates a few decoding rows in place
        let rotated =
            fast::few_rows::rope_in_place(&qkv, (nq + nkv) as usize, &pass.cos, &pass.sin);
        #[cfg(not(feature = "fast-decode"))]
        let rotated = false;
        let heads = qkv.view([bsz, t, nq + 2 * nkv, hd]).transpose(1, 2);
        let qk = match rotated {
            true => heads.narrow(1, 0, nq + nkv),
            false => apply_rope(&heads.narrow(1, 0, nq + nkv), &pass.cos, &pass.sin),
        };
        let q = qk.narrow(1, 0, nq);
        let (k, v) = cache.append(
            layer,
            &qk.narrow(1, nq, nkv),
            &heads.narrow(1, nq + nkv, nkv),
        );
        // hook: one-token attention of a few decoding rows; it reads the queries from `qkv`,
        // so only once they are rotated there.
        #[cfg(feature = "fast-decode")]
        if rotated {
            let shape = (nq as usize, nkv as usize, hd as usize);
            if let Some(y) = fast::few_rows::attend_one(&qkv, shape, &k, &v, &pass.allowed) {
                return self.o.forward(&y, pass.lora, pass.train);
            }
        }
        // Grouped-query attention: SDPA repeats each KV head for its query heads.
        let gqa = nq != nkv;
        let y = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(&pass.allowed),
            0.0,
            false,
            None,
            gqa,
        )
        .transpose(1, 2)
        .contiguous()
        .view([bsz, t, -1]);
        self.o.forward(&y, pass.lora, pass.train)
    }

    /// `q | k | v` of `x` side by side, `[B, T, (q + k + v heads) × head_dim]`.
    fn qkv(&self, x: &Tensor, pass: &Pass) -> Tensor {
        side_by_side(&self.fused, &[&self.q, &self.k, &self.v], x, pass)
    }

    /// fast-decode: packs the dense weights into `arena`, `q | k | v` side by side.
    #[cfg(feature = "fast-decode")]
    fn pack(&mut self, arena: &mut fast::WeightArena) {
        self.fused = fast::Fused::new(&mut [&mut self.q, &mut self.k, &mut self.v], arena);
        arena.place(&mut self.o);
    }
}

/// The weights of a group of projections packed side by side: [`fast::Fused`] with the
/// `fast-decode` feature, nothing without it.
#[cfg(feature = "fast-decode")]
type Packed = fast::Fused;
/// The weights of a group of projections packed side by side: nothing without the
/// `fast-decode` feature.
#[cfg(not(feature = "fast-decode"))]
#[derive(Debug, Default)]
struct Packed;

/// `parts` of `x` side by side, `[B, T, Σ outputs]`: one product over `packed` when
/// fast-decode packed them (and no gradient flows), else one product per part.
fn side_by_side(packed: &Packed, parts: &[&Linear], x: &Tensor, pass: &Pass) -> Tensor {
    #[cfg(feature = "fast-decode")] // hook: one product over the fused weights
    if let Some(y) = packed.forward(parts, x, pass.lora, pass.train) {
        return y;
    }
    #[cfg(not(feature = "fast-decode"))]
    let _ = packed;
    forward_side_by_side(parts, x, pass.lora, pass.train)
}

/// The SwiGLU feed-forward network: `down(silu(gate(x)) · up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate: Linear,
    /// Up projection.
    pub up: Linear,
    /// Down projection.
    pub down: Linear,
    /// With fast-decode: `gate | up` as one product.
    fused: Packed,
}

impl Mlp {
    /// The projections `{prefix}.{gate,up,down}_proj`.
    fn load(w: &mut Weights, prefix: &str) -> Result<Mlp> {
        Ok(Mlp {
            gate: w.linear(&format!("{prefix}.gate_proj"))?,
            up: w.linear(&format!("{prefix}.up_proj"))?,
            down: w.linear(&format!("{prefix}.down_proj"))?,
            fused: Packed::default(),
        })
    }

    /// The network on normed `x` `[B, T, d]`.
    pub fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let gate_up = self.gate_up(x, pass);
        self.down.forward(&swiglu(&gate_up), pass.lora, pass.train)
    }

    /// `gate | up` of `x` side by side, `[B, T, 2 · ffn]`.
    fn gate_up(&self, x: &Tensor, pass: &Pass) -> Tensor {
        side_by_side(&self.fused, &[&self.gate, &self.up], x, pass)
    }

    /// fast-decode: packs the dense weights into `arena`, `gate | up` side by side.
    #[cfg(feature = "fast-decode")]
    fn pack(&mut self, arena: &mut fast::WeightArena) {
        self.fused = fast::Fused::new(&mut [&mut self.gate, &mut self.up], arena);
        arena.place(&mut self.down);
    }
}

/// One decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Debug)]
pub struct Block {
    /// RMSNorm before attention.
    pub input_norm: RmsNorm,
    /// Self-attention.
    pub attn: Attention,
    /// RMSNorm before the MLP.
    pub post_norm: RmsNorm,
    /// Feed-forward network.
    pub mlp: Mlp,
}

impl Block {
    /// Layer `i` (`model.layers.{i}.*`).
    fn load(w: &mut Weights, i: usize, config: &LlamaConfig) -> Result<Block> {
        let p = format!("model.layers.{i}");
        let attn = Attention::load(w, &format!("{p}.self_attn"), config)?;
        let mlp = Mlp::load(w, &format!("{p}.mlp"))?;
        let eps = config.rms_norm_eps;
        Ok(Block {
            input_norm: RmsNorm::new(w.tensor(&format!("{p}.input_layernorm.weight"))?, eps),
            attn,
            post_norm: RmsNorm::new(
                w.tensor(&format!("{p}.post_attention_layernorm.weight"))?,
                eps,
            ),
            mlp,
        })
    }

    /// The layer on `x` `[B, T, d]` (as layer `layer` of `cache`).
    pub fn forward(&self, x: &Tensor, pass: &Pass, cache: &mut KvCache, layer: usize) -> Tensor {
        let h = self.input_norm.forward(x);
        let x = x + self.attn.forward(&h, pass, cache, layer);
        let h = self.post_norm.forward(&x);
        &x + self.mlp.forward(&h, pass)
    }

    /// fast-decode: packs the dense weights into `arena`, those of `q | k | v` and of
    /// `gate | up` side by side (again after they were replaced, e.g. by merging adapters).
    #[cfg(feature = "fast-decode")]
    fn pack(&mut self, arena: &mut fast::WeightArena) {
        self.attn.pack(arena);
        self.mlp.pack(arena);
    }
}

/// Keys and values of every layer for the tokens seen so far, `[B, kv_heads, S, head_dim]`
/// per layer (with fast-decode, views of buffers with room that later tokens are written into
/// in place).
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: i64,
    /// Tokens the buffers make room for (read by fast-decode only).
    #[cfg_attr(not(feature = "fast-decode"), allow(dead_code))]
    reserve: i64,
}

impl KvCache {
    /// A cache for `tokens` (prompt + reply); with fast-decode its buffers hold them without
    /// growing.
    pub fn with_capacity(tokens: i64) -> KvCache {
        KvCache {
            reserve: tokens,
            ..Default::default()
        }
    }

    /// Cached sequence length.
    pub fn len(&self) -> i64 {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Repeats every cached row `times` times in a row (`[B, ..]` → `[B·times, ..]`, spare room
    /// kept): a prompt computed once serves the `times` replies that follow it, and gradients
    /// through the copies add up in the prompt's keys and values.
    pub fn repeat_rows(&mut self, times: i64) {
        for (k, v) in &mut self.layers {
            *k = k.repeat_interleave_self_int(times, Some(0), None);
            *v = v.repeat_interleave_self_int(times, Some(0), None);
        }
    }

    /// Adds `layer`'s keys and values `[B, kv_heads, T, head_dim]` of the new tokens after the
    /// cached ones and returns all of them.
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let (len, need) = (self.len, self.len + k.size()[2]);
        #[cfg(feature = "fast-decode")] // hook: written in place into the buffers' room
        let written = fast::kv_cache::write_in_place(self.layers.get(layer), len, k, v);
        #[cfg(not(feature = "fast-decode"))]
        let written = false;
        if !written {
            #[cfg(feature = "fast-decode")] // hook: buffers with room for later tokens
            let room = fast::kv_cache::room(k, v, len, self.reserve);
            #[cfg(not(feature = "fast-decode"))]
            let room = need;
            let old = self.layers.get(layer);
            let kv = (
                extend(old.map(|l| &l.0), k, len, room),
                extend(old.map(|l| &l.1), v, len, room),
            );
            match self.layers.get_mut(layer) {
                Some(slot) => *slot = kv,
                None => self.layers.push(kv),
            }
        }
        let (kb, vb) = &self.layers[layer];
        (kb.narrow(2, 0, need), vb.narrow(2, 0, need))
    }
}

/// The first `len` tokens of `buf`, then `x`, then zeros up to `room` tokens (axis 2).
fn extend(buf: Option<&Tensor>, x: &Tensor, len: i64, room: i64) -> Tensor {
    let need = len + x.size()[2];
    let mut parts: Vec<Tensor> = buf.map(|b| b.narrow(2, 0, len)).into_iter().collect();
    parts.push(x.shallow_clone());
    if room > need {
        let mut shape = x.size();
        shape[2] = room - need;
        parts.push(Tensor::zeros(shape, (x.kind(), x.device())));
    }
    Tensor::cat(&parts, 2)
}

/// A Llama-architecture causal language model.
#[derive(Debug)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Token embedding `[vocab, d]`; when tied to the output head, a transposed view of it.
    pub embed: Tensor,
    /// Decoder layers.
    pub blocks: Vec<Block>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
    /// Output head, transposed `[d, vocab]` contiguous (faster to stream, like
    /// [`super::linear::BaseWeight::DenseT`]).
    head_t: Tensor,
    /// Whether LoRA adapters take part in the forward pass (off = the reference policy).
    pub lora_enabled: bool,
    rope: Rope,
}

impl Llama {
    /// Builds the model from Hugging Face-named tensors (f32, any device), moved to `device`
    /// in the kind `opts` asks for; linear layers are quantised one by one as they arrive when
    /// `opts.int8`, so the f32 model never exists whole. With fast-decode, dense linear layers
    /// and the output head are packed into one huge-page weight arena on the CPU. Missing
    /// tensors are named in the error.
    pub fn from_tensors(
        config: LlamaConfig,
        mut get: impl FnMut(&str) -> Result<Tensor>,
        device: Device,
        opts: LoadOptions,
    ) -> Result<Llama> {
        let mut w = Weights {
            get: &mut get,
            device,
            kind: opts.kind(device),
            int8: opts.int8,
        };
        #[cfg(feature = "fast-decode")] // hook: one huge-page buffer for the dense weights
        let mut arena = fast::WeightArena::for_model(&config, w.kind, device, opts.int8);
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            blocks.push(Block::load(&mut w, i, &config)?);
            #[cfg(feature = "fast-decode")] // hook: the block's weights into the arena
            blocks.last_mut().expect("just pushed").pack(&mut arena);
        }
        let embed = w.tensor("model.embed_tokens.weight")?;
        let head = match config.tie_word_embeddings {
            true => embed.tr(),
            false => w.tensor("lm_head.weight")?.tr(),
        };
        #[cfg(feature = "fast-decode")] // hook: the head into the arena
        let head_t = arena.hold(&head);
        #[cfg(not(feature = "fast-decode"))]
        let head_t = head.contiguous();
        let embed = match config.tie_word_embeddings {
            true => head_t.tr(),
            false => embed,
        };
        Ok(Llama {
            norm: RmsNorm::new(w.tensor("model.norm.weight")?, config.rms_norm_eps),
            embed,
            head_t,
            blocks,
            lora_enabled: true,
            rope: Rope::new(&config, device),
            config,
        })
    }

    /// Builds from a name → tensor map (e.g. a safetensors file).
    pub fn from_map(
        config: LlamaConfig,
        mut map: HashMap<String, Tensor>,
        device: Device,
        opts: LoadOptions,
    ) -> Result<Llama> {
        Llama::from_tensors(
            config,
            |n| {
                map.remove(n)
                    .with_context(|| format!("tensor {n} is missing"))
            },
            device,
            opts,
        )
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.embed.device()
    }

    /// The compute kind of the weights.
    pub fn kind(&self) -> Kind {
        self.embed.kind()
    }

    /// Token embeddings `[B, T, d]` of ids `[B, T]`.
    pub fn embed_tokens(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed, ids, -1, false, false)
    }

    /// Runs the decoder on input embeddings `[B, T, d]`.
    ///
    /// * `mask`: `[B, S]` bool, true at real tokens, for the cached tokens followed by these
    ///   `T` (`S = cache.len() + T`); left padding is masked out.
    /// * `positions`: `[B, T]` i64 RoPE positions (count of real tokens before each one).
    ///
    /// Appends this step's keys/values to `cache` and returns the final hidden states.
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        mask: &Tensor,
        positions: &Tensor,
        cache: &mut KvCache,
        train: bool,
    ) -> Tensor {
        let (t, past) = (embeds.size()[1], cache.len());
        let allowed = allowed_keys(mask, past, past + t, self.device());
        let (cos, sin) = self.rope.forward(positions, self.kind());
        let pass = Pass {
            allowed,
            cos,
            sin,
            lora: self.lora_enabled,
            train,
        };
        let mut x = embeds.shallow_clone();
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, &pass, cache, i);
        }
        cache.len = past + t;
        self.norm.forward(&x)
    }

    /// Vocabulary logits `[.., vocab]` (f32) of final hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        dense_matmul(hidden, &self.head_t).to_kind(Kind::Float)
    }

    /// Logits `[B, T, vocab]` of a whole batch of left-padded ids (no cache kept).
    pub fn forward_ids(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let positions = positions_of(mask);
        let hidden = self.forward_embeds(
            &self.embed_tokens(ids),
            mask,
            &positions,
            &mut KvCache::default(),
            false,
        );
        self.logits(&hidden)
    }

    /// Re-packs every block's `q | k | v` and `gate | up` weights for one product each (after
    /// their weights were replaced, e.g. by merging adapters; int8 weights stay separate).
    /// Without fast-decode the layers always run one by one, and this does nothing.
    pub fn fuse(&mut self) {
        #[cfg(feature = "fast-decode")]
        for b in &mut self.blocks {
            b.pack(&mut fast::WeightArena::default());
        }
    }

    /// All linear layers with their Hugging Face module names (`model.layers.3.self_attn.q_proj`).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let (a, m) = (&mut b.attn, &mut b.mlp);
            for (n, lin) in [
                ("self_attn.q_proj", &mut a.q),
                ("self_attn.k_proj", &mut a.k),
                ("self_attn.v_proj", &mut a.v),
                ("self_attn.o_proj", &mut a.o),
                ("mlp.gate_proj", &mut m.gate),
                ("mlp.up_proj", &mut m.up),
                ("mlp.down_proj", &mut m.down),
            ] {
                out.push((format!("{p}.{n}"), lin));
            }
        }
        out
    }

    /// Int8 weight-only quantisation of every base linear layer (embeddings and norms stay).
    pub fn quantize_int8(&mut self) {
        for (_, lin) in self.linears_mut() {
            lin.quantize_int8();
        }
        self.fuse(); // drops the dense blocks
    }

    /// Base parameters (frozen) and bytes they occupy.
    pub fn base_size(&mut self) -> (i64, i64) {
        let untied_head = (!self.config.tie_word_embeddings).then_some(&self.head_t);
        let extra: Vec<&Tensor> = [Some(&self.embed), Some(&self.norm.weight), untied_head]
            .into_iter()
            .flatten()
            .collect();
        let mut params: i64 = extra.iter().map(|t| t.numel() as i64).sum();
        let mut bytes: i64 = extra
            .iter()
            .map(|t| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
            .sum();
        for b in &self.blocks {
            for n in [&b.input_norm.weight, &b.post_norm.weight] {
                params += n.numel() as i64;
                bytes += n.numel() as i64 * n.kind().elt_size_in_bytes() as i64;
            }
        }
        for (_, lin) in self.linears_mut() {
            params += lin.out_features() * lin.in_features();
            bytes += lin.base.bytes();
        }
        (params, bytes)
    }
}

/// `[B, 1, T, S]` bool: the keys that the `T` new tokens' queries (after `past` cached ones;
/// `S = past + T`) see: real keys up to themselves, and always themselves, so that padding
/// rows stay finite. `mask` is `[B, S]`, true at real tokens.
fn allowed_keys(mask: &Tensor, past: i64, s: i64, device: Device) -> Tensor {
    let q_idx = Tensor::arange_start(past, s, (Kind::Int64, device)).unsqueeze(1);
    let k_idx = Tensor::arange(s, (Kind::Int64, device)).unsqueeze(0);
    let causal = k_idx.le_tensor(&q_idx);
    causal
        .logical_and(&mask.unsqueeze(1).unsqueeze(1))
        .logical_or(&k_idx.eq_tensor(&q_idx))
}

/// RoPE positions `[B, T]` of a left-padded mask: real tokens count 0, 1, 2, …; padding 0.
pub fn positions_of(mask: &Tensor) -> Tensor {
    (mask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
}

/// `x / rms(x) · w` (libtorch's `rms_norm`, which accumulates in f32).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    #[cfg(feature = "fast-decode")] // hook: a few decoding rows in one pass
    if let Some(y) = fast::few_rows::rms_norm(x, w, eps) {
        return y;
    }
    x.rms_norm([w.size()[0]].as_slice(), Some(w), eps)
}

/// SwiGLU `silu(gate) · up` of `gate | up` side by side (`[.., 2 f]` → `[.., f]`).
fn swiglu(gate_up: &Tensor) -> Tensor {
    #[cfg(feature = "fast-decode")] // hook: a few decoding rows in one pass
    if let Some(y) = fast::few_rows::swiglu(gate_up) {
        return y;
    }
    let f = gate_up.size()[gate_up.dim() - 1] / 2;
    gate_up.narrow(-1, 0, f).silu() * gate_up.narrow(-1, f, f)
}

/// Rotary embedding in the `rotate_half` layout: `x cos + rotate_half(x) sin`.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let (x1, x2) = (x.narrow(3, 0, half), x.narrow(3, half, half));
    let rotated = Tensor::cat(&[&x2.neg(), &x1], 3);
    x * cos + rotated * sin
}
