//! The Llama decoder: RMSNorm, rotary position embeddings, grouped-query attention with a KV
//! cache, SwiGLU MLP, tied or untied lm_head. Base weights are frozen tensors; only LoRA
//! adapters (see [`super::lora`]) and inputs spliced into the embeddings carry gradients.
//! On the CPU, decoding steps of up to 8 rows run through [`super::few_rows`]' kernels and read
//! the weights from one huge-page [`WeightArena`]; everything else runs on libtorch.

use super::arena::WeightArena;
use super::config::LlamaConfig;
use super::few_rows;
use super::linear::{dense_matmul, Fused, Linear};
use super::LoadOptions;
use anyhow::{Context, Result};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// One decoder layer.
#[derive(Debug)]
pub struct Block {
    /// RMSNorm weight before attention.
    pub input_norm: Tensor,
    /// Projections `q, k, v, o`.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// RMSNorm weight before the MLP.
    pub post_norm: Tensor,
    /// SwiGLU gate.
    pub gate: Linear,
    /// SwiGLU up projection.
    pub up: Linear,
    /// SwiGLU down projection.
    pub down: Linear,
    /// `q | k | v` as one product.
    qkv: Fused,
    /// `gate | up` as one product.
    gate_up: Fused,
}

impl Block {
    /// Packs the dense weights into `arena`, those of `q | k | v` and of `gate | up` side by
    /// side (again after they were replaced, e.g. by merging adapters).
    fn pack(&mut self, arena: &mut WeightArena) {
        self.qkv = Fused::new(&mut [&mut self.q, &mut self.k, &mut self.v], arena);
        self.o.place(arena);
        self.gate_up = Fused::new(&mut [&mut self.gate, &mut self.up], arena);
        self.down.place(arena);
    }
}

/// Keys and values of every layer for the tokens seen so far, in buffers
/// `[B, kv_heads, capacity, head_dim]` that later tokens are written into in place.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: i64,
    reserve: i64,
}

impl KvCache {
    /// A cache whose buffers hold `tokens` (prompt + reply) without growing.
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

    /// Writes `layer`'s keys and values `[B, kv_heads, T, head_dim]` of the new tokens after
    /// the cached ones and returns all of them. Tensors that need gradients are concatenated
    /// instead (no in-place writes into the autograd graph).
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let (len, t) = (self.len, k.size()[2]);
        let need = len + t;
        let grad = k.requires_grad() || v.requires_grad();
        let fits = self
            .layers
            .get(layer)
            .is_some_and(|(kb, _)| kb.size()[2] >= need);
        if grad || !fits {
            let room = match (grad, len) {
                (true, _) => need,
                (false, 0) => need.max(self.reserve),
                (false, _) => need.max(self.reserve).max(2 * need),
            };
            let old = self.layers.get(layer);
            let grow = |buf: Option<&Tensor>, x: &Tensor| {
                let mut parts: Vec<Tensor> = buf.map(|b| b.narrow(2, 0, len)).into_iter().collect();
                parts.push(x.shallow_clone());
                if room > need {
                    let mut shape = x.size();
                    shape[2] = room - need;
                    parts.push(Tensor::zeros(shape, (x.kind(), x.device())));
                }
                Tensor::cat(&parts, 2)
            };
            let kv = (grow(old.map(|l| &l.0), k), grow(old.map(|l| &l.1), v));
            match self.layers.get_mut(layer) {
                Some(slot) => *slot = kv,
                None => self.layers.push(kv),
            }
        } else {
            let (kb, vb) = &self.layers[layer];
            for (buf, new) in [(kb, k), (vb, v)] {
                let mut slot = buf.narrow(2, len, t);
                if !few_rows::copy_small(&slot, new) {
                    slot.copy_(new);
                }
            }
        }
        let (kb, vb) = &self.layers[layer];
        (kb.narrow(2, 0, need), vb.narrow(2, 0, need))
    }
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
    /// Final RMSNorm weight.
    pub norm: Tensor,
    /// Output head, transposed `[d, vocab]` contiguous (faster to stream, like
    /// [`super::linear::BaseWeight::DenseT`]).
    head_t: Tensor,
    /// Whether LoRA adapters take part in the forward pass (off = the reference policy).
    pub lora_enabled: bool,
    inv_freq: Tensor,
}

impl Llama {
    /// Builds the model from Hugging Face-named tensors (f32, any device), moved to `device`
    /// in the kind `opts` asks for; linear layers are quantised one by one as they arrive when
    /// `opts.int8`, so the f32 model never exists whole. Dense linear layers and the output
    /// head are packed into one [`WeightArena`] on the CPU. Missing tensors are named in the
    /// error.
    pub fn from_tensors(
        config: LlamaConfig,
        mut get: impl FnMut(&str) -> Result<Tensor>,
        device: Device,
        opts: LoadOptions,
    ) -> Result<Llama> {
        let kind = opts.kind(device);
        let mut take = |name: &str| -> Result<Tensor> {
            Ok(get(name)?
                .to_device(device)
                .to_kind(kind)
                .set_requires_grad(false))
        };
        let mut arena = match opts.int8 {
            true => WeightArena::default(),
            false => {
                let (numel, tensors) = dense_numel(&config);
                WeightArena::new(numel, tensors, kind, device)
            }
        };
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut lin = |n: &str| -> Result<Linear> {
                let mut l = Linear::new(take(&format!("{p}.{n}.weight"))?);
                if opts.int8 {
                    l.quantize_int8();
                }
                Ok(l)
            };
            blocks.push(Block {
                q: lin("self_attn.q_proj")?,
                k: lin("self_attn.k_proj")?,
                v: lin("self_attn.v_proj")?,
                o: lin("self_attn.o_proj")?,
                gate: lin("mlp.gate_proj")?,
                up: lin("mlp.up_proj")?,
                down: lin("mlp.down_proj")?,
                input_norm: take(&format!("{p}.input_layernorm.weight"))?,
                post_norm: take(&format!("{p}.post_attention_layernorm.weight"))?,
                qkv: Fused::default(),
                gate_up: Fused::default(),
            });
            blocks.last_mut().expect("just pushed").pack(&mut arena);
        }
        let embed = take("model.embed_tokens.weight")?;
        let (embed, head_t) = if config.tie_word_embeddings {
            let head_t = arena.hold(&embed.tr());
            (head_t.tr(), head_t)
        } else {
            (embed, arena.hold(&take("lm_head.weight")?.tr()))
        };
        let hd = config.head_dim() as i64;
        let exps = Tensor::arange_start_step(0, hd, 2, (Kind::Double, Device::Cpu)) / hd as f64;
        let inv_freq = (Tensor::from(config.rope_theta).pow(&exps))
            .reciprocal()
            .to_kind(Kind::Float);
        Ok(Llama {
            norm: take("model.norm.weight")?,
            embed,
            head_t,
            blocks,
            lora_enabled: true,
            inv_freq: inv_freq.to_device(device),
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
    #[allow(clippy::assign_op_pattern)] // `x += y` would add in place into the caller's embeddings
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        mask: &Tensor,
        positions: &Tensor,
        cache: &mut KvCache,
        train: bool,
    ) -> Tensor {
        let (t, past) = (embeds.size()[1], cache.len());
        let s = past + t;
        // Query t (absolute index past+t) sees real keys up to itself; always itself, so that
        // padding rows stay finite.
        let q_idx = Tensor::arange_start(past, s, (Kind::Int64, self.device())).unsqueeze(1);
        let k_idx = Tensor::arange(s, (Kind::Int64, self.device())).unsqueeze(0);
        let causal = k_idx.le_tensor(&q_idx);
        let allowed = causal
            .logical_and(&mask.unsqueeze(1).unsqueeze(1))
            .logical_or(&k_idx.eq_tensor(&q_idx));
        let (cos, sin) = self.rope(positions);
        let mut x = embeds.shallow_clone();
        let (l, ffn) = (self.lora_enabled, self.config.intermediate_size as i64);
        for (i, block) in self.blocks.iter().enumerate() {
            let h = rms_norm(&x, &block.input_norm, self.config.rms_norm_eps);
            let attended = self.attention(block, &h, &allowed, (&cos, &sin), (cache, i), train);
            x = x + attended;
            let h = rms_norm(&x, &block.post_norm, self.config.rms_norm_eps);
            let gate_up = block
                .gate_up
                .forward(&[&block.gate, &block.up], &h, l, train);
            let swiglu = few_rows::swiglu(&gate_up).unwrap_or_else(|| {
                gate_up.narrow(-1, 0, ffn).silu() * gate_up.narrow(-1, ffn, ffn)
            });
            x = x + block.down.forward(&swiglu, l, train);
        }
        cache.len = s;
        rms_norm(&x, &self.norm, self.config.rms_norm_eps)
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

    /// `(cos, sin)` `[B, 1, T, head_dim]` for RoPE at `positions` (`rotate_half` layout).
    fn rope(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        (
            emb.cos().to_kind(self.kind()),
            emb.sin().to_kind(self.kind()),
        )
    }

    /// Self-attention of one block on normed `x` `[B, T, d]`; appends the new keys and
    /// values to `cache` (layer `i`).
    fn attention(
        &self,
        b: &Block,
        x: &Tensor,
        allowed: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        (cache, i): (&mut KvCache, usize),
        train: bool,
    ) -> Tensor {
        let c = &self.config;
        let (bsz, t) = (x.size()[0], x.size()[1]);
        let hd = c.head_dim() as i64;
        let (nq, nkv) = (c.num_attention_heads as i64, c.num_key_value_heads as i64);
        let l = self.lora_enabled;
        // [B, q + k + v heads, T, head_dim]; RoPE turns the query and key heads in one go.
        let qkv = b.qkv.forward(&[&b.q, &b.k, &b.v], x, l, train);
        let rotated = few_rows::rope_in_place(&qkv, (nq + nkv) as usize, cos, sin);
        let heads = qkv.view([bsz, t, nq + 2 * nkv, hd]).transpose(1, 2);
        let qk = match rotated {
            true => heads.narrow(1, 0, nq + nkv),
            false => apply_rope(&heads.narrow(1, 0, nq + nkv), cos, sin),
        };
        let q = qk.narrow(1, 0, nq);
        let (k, v) = cache.append(i, &qk.narrow(1, nq, nkv), &heads.narrow(1, nq + nkv, nkv));
        let shape = (nq as usize, nkv as usize, hd as usize);
        // The fast path reads the queries from `qkv`, so only once they are rotated there.
        let fast = rotated.then(|| few_rows::attend_one(&qkv, shape, &k, &v, allowed));
        let y = fast.flatten().unwrap_or_else(|| {
            // Grouped-query attention: SDPA repeats each KV head for its query heads.
            let gqa = nq != nkv;
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(allowed), 0.0, false, None, gqa)
                .transpose(1, 2)
                .contiguous()
                .view([bsz, t, -1])
        });
        b.o.forward(&y, l, train)
    }

    /// Re-packs every block's `q | k | v` and `gate | up` weights for one product each (after
    /// their weights were replaced, e.g. by merging adapters; int8 weights stay separate).
    pub fn fuse(&mut self) {
        for b in &mut self.blocks {
            b.pack(&mut WeightArena::default());
        }
    }

    /// All linear layers with their Hugging Face module names (`model.layers.3.self_attn.q_proj`).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            for (n, lin) in [
                ("self_attn.q_proj", &mut b.q),
                ("self_attn.k_proj", &mut b.k),
                ("self_attn.v_proj", &mut b.v),
                ("self_attn.o_proj", &mut b.o),
                ("mlp.gate_proj", &mut b.gate),
                ("mlp.up_proj", &mut b.up),
                ("mlp.down_proj", &mut b.down),
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
        let extra: Vec<&Tensor> = [Some(&self.embed), Some(&self.norm), untied_head]
            .into_iter()
            .flatten()
            .collect();
        let mut params: i64 = extra.iter().map(|t| t.numel() as i64).sum();
        let mut bytes: i64 = extra
            .iter()
            .map(|t| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
            .sum();
        for b in &self.blocks {
            for n in [&b.input_norm, &b.post_norm] {
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

/// Values and count of the tensors [`Llama::from_tensors`] packs: every dense linear layer and
/// the output head.
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

/// RoPE positions `[B, T]` of a left-padded mask: real tokens count 0, 1, 2, …; padding 0.
pub fn positions_of(mask: &Tensor) -> Tensor {
    (mask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
}

/// `x / rms(x) · w` (libtorch's `rms_norm`, which accumulates in f32; a few decoding rows on
/// the CPU by [`few_rows::rms_norm`]).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    few_rows::rms_norm(x, w, eps)
        .unwrap_or_else(|| x.rms_norm([w.size()[0]].as_slice(), Some(w), eps))
}

/// Rotary embedding in the `rotate_half` layout: `x cos + rotate_half(x) sin`.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let (x1, x2) = (x.narrow(3, 0, half), x.narrow(3, half, half));
    let rotated = Tensor::cat(&[&x2.neg(), &x1], 3);
    x * cos + rotated * sin
}
