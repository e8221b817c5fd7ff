//! The Llama decoder: RMSNorm, rotary position embeddings, grouped-query attention with a KV
//! cache, SwiGLU MLP, tied or untied lm_head. Base weights are frozen tensors; only LoRA
//! adapters (see [`super::lora`]) and inputs spliced into the embeddings carry gradients.

use super::config::LlamaConfig;
use super::linear::Linear;
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
}

/// Keys and values of every layer for the tokens seen so far, `[B, kv_heads, S, head_dim]`.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
}

impl KvCache {
    /// Cached sequence length.
    pub fn len(&self) -> i64 {
        self.layers.first().map_or(0, |(k, _)| k.size()[2])
    }
    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A Llama-architecture causal language model.
#[derive(Debug)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Token embedding `[vocab, d]`.
    pub embed: Tensor,
    /// Decoder layers.
    pub blocks: Vec<Block>,
    /// Final RMSNorm weight.
    pub norm: Tensor,
    /// Untied output head `[vocab, d]`; `None` when tied to `embed`.
    pub lm_head: Option<Tensor>,
    /// Whether LoRA adapters take part in the forward pass (off = the reference policy).
    pub lora_enabled: bool,
    inv_freq: Tensor,
}

impl Llama {
    /// Builds the model from Hugging Face-named tensors (f32, any device), moved to `device`
    /// in the kind `opts` asks for; linear layers are quantised one by one as they arrive when
    /// `opts.int8`, so the f32 model never exists whole. Missing tensors are named in the error.
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
            });
        }
        let embed = take("model.embed_tokens.weight")?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(take("lm_head.weight")?)
        };
        let hd = config.head_dim() as i64;
        let exps = Tensor::arange_start_step(0, hd, 2, (Kind::Double, Device::Cpu)) / hd as f64;
        let inv_freq = (Tensor::from(config.rope_theta).pow(&exps))
            .reciprocal()
            .to_kind(Kind::Float);
        Ok(Llama {
            norm: take("model.norm.weight")?,
            embed,
            lm_head,
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
        let fresh = cache.layers.is_empty();
        let mut x = embeds.shallow_clone();
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = if fresh {
                None
            } else {
                Some(&mut cache.layers[i])
            };
            let (y, kv) = self.attention(
                block,
                &rms_norm(&x, &block.input_norm, self.config.rms_norm_eps),
                &allowed,
                &cos,
                &sin,
                layer_cache,
                train,
            );
            if fresh {
                cache.layers.push(kv);
            }
            x = x + y;
            let h = rms_norm(&x, &block.post_norm, self.config.rms_norm_eps);
            let l = self.lora_enabled;
            let mlp = block.down.forward(
                &(block.gate.forward(&h, l, train).silu() * block.up.forward(&h, l, train)),
                l,
                train,
            );
            x = x + mlp;
        }
        rms_norm(&x, &self.norm, self.config.rms_norm_eps)
    }

    /// Vocabulary logits `[.., vocab]` (f32) of final hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden
            .linear::<Tensor>(self.lm_head.as_ref().unwrap_or(&self.embed), None)
            .to_kind(Kind::Float)
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

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        b: &Block,
        x: &Tensor,
        allowed: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        cache: Option<&mut (Tensor, Tensor)>,
        train: bool,
    ) -> (Tensor, (Tensor, Tensor)) {
        let c = &self.config;
        let (bsz, t) = (x.size()[0], x.size()[1]);
        let hd = c.head_dim() as i64;
        let l = self.lora_enabled;
        let heads = |y: Tensor, n: usize| y.view([bsz, t, n as i64, hd]).transpose(1, 2);
        let q = apply_rope(
            &heads(b.q.forward(x, l, train), c.num_attention_heads),
            cos,
            sin,
        );
        let mut k = apply_rope(
            &heads(b.k.forward(x, l, train), c.num_key_value_heads),
            cos,
            sin,
        );
        let mut v = heads(b.v.forward(x, l, train), c.num_key_value_heads);
        if let Some((pk, pv)) = cache {
            k = Tensor::cat(&[&*pk, &k], 2);
            v = Tensor::cat(&[&*pv, &v], 2);
            *pk = k.shallow_clone();
            *pv = v.shallow_clone();
        }
        // Grouped-query attention: SDPA repeats each KV head for its query heads.
        let gqa = c.num_attention_heads != c.num_key_value_heads;
        let y =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(allowed), 0.0, false, None, gqa);
        let y = y.transpose(1, 2).contiguous().view([bsz, t, -1]);
        (b.o.forward(&y, l, train), (k, v))
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
    }

    /// Base parameters (frozen) and bytes they occupy.
    pub fn base_size(&mut self) -> (i64, i64) {
        let extra: Vec<&Tensor> = [Some(&self.embed), Some(&self.norm), self.lm_head.as_ref()]
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

/// RoPE positions `[B, T]` of a left-padded mask: real tokens count 0, 1, 2, …; padding 0.
pub fn positions_of(mask: &Tensor) -> Tensor {
    (mask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
}

/// `x / rms(x) · w` (libtorch's fused `rms_norm`, which accumulates in f32).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    x.rms_norm([w.size()[0]].as_slice(), Some(w), eps)
}

/// Rotary embedding in the `rotate_half` layout: `x cos + rotate_half(x) sin`.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let (x1, x2) = (x.narrow(3, 0, half), x.narrow(3, half, half));
    let rotated = Tensor::cat(&[&x2.neg(), &x1], 3);
    x * cos + rotated * sin
}
