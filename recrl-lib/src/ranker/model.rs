//! SASRec (Kang & McAuley 2018) on tch: item + positional embeddings, causal self-attention
//! blocks with a point-wise feed-forward network, and an output item table `E`.
//!
//! Sequences are left-padded with item 0. Positions count back from the newest item (the last
//! column has position 0), so a sequence's outputs do not depend on how much padding a batch
//! adds. Padding keys are masked in attention and padding rows are zeroed after every block.

use crate::config::RankerConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Shape and regularisation of a SASRec model.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SasrecShape {
    /// Items `1..=n_items`; id 0 is padding.
    pub n_items: usize,
    /// Embedding and hidden size `d`.
    pub hidden: usize,
    /// Self-attention blocks.
    pub blocks: usize,
    /// Attention heads per block (`hidden` must be divisible by it).
    pub heads: usize,
    /// Longest input sequence (positional embeddings).
    pub max_len: usize,
    /// Dropout on embeddings, attention weights and sub-layer outputs.
    pub dropout: f64,
    /// Pre-LN blocks (LayerNorm before each sub-layer, one final LayerNorm) or post-LN.
    pub pre_ln: bool,
    /// Score with the input embedding table (classic SASRec) instead of an untied `E`.
    pub tie_output: bool,
}

impl SasrecShape {
    /// The shape of `cfg` for a dataset with `n_items` items.
    pub fn new(cfg: &RankerConfig, n_items: usize) -> SasrecShape {
        SasrecShape {
            n_items,
            hidden: cfg.hidden,
            blocks: cfg.blocks,
            heads: cfg.heads,
            max_len: cfg.max_len,
            dropout: cfg.dropout,
            pre_ln: cfg.pre_ln,
            tie_output: cfg.tie_output,
        }
    }
}

/// Causal multi-head self-attention.
#[derive(Debug)]
struct SelfAttention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    o: nn::Linear,
    heads: i64,
    dropout: f64,
}

impl SelfAttention {
    fn new(p: nn::Path, d: i64, heads: i64, dropout: f64) -> SelfAttention {
        let lin = |name: &str| nn::linear(&p / name, d, d, Default::default());
        SelfAttention {
            q: lin("q"),
            k: lin("k"),
            v: lin("v"),
            o: lin("o"),
            heads,
            dropout,
        }
    }

    /// `x`: `[B, L, d]`; `mask`: `[B, 1, L, L]`, true where a query may attend to a key.
    fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let (b, l, d) = x.size3().expect("[B, L, d]");
        let split = |t: Tensor| t.view([b, l, self.heads, d / self.heads]).transpose(1, 2);
        let (q, k, v) = (
            split(self.q.forward(x)),
            split(self.k.forward(x)),
            split(self.v.forward(x)),
        );
        let p = if train { self.dropout } else { 0.0 };
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), p, false, None, false);
        self.o
            .forward(&y.transpose(1, 2).contiguous().view([b, l, d]))
    }
}

/// One transformer block: self-attention and a point-wise FFN, each with a residual.
#[derive(Debug)]
struct Block {
    attn: SelfAttention,
    ln_attn: nn::LayerNorm,
    ffn_in: nn::Linear,
    ffn_out: nn::Linear,
    ln_ffn: nn::LayerNorm,
    dropout: f64,
    pre_ln: bool,
}

impl Block {
    fn new(p: nn::Path, shape: &SasrecShape) -> Block {
        let d = shape.hidden as i64;
        let ln = |name: &str| nn::layer_norm(&p / name, vec![d], Default::default());
        Block {
            attn: SelfAttention::new(&p / "attn", d, shape.heads as i64, shape.dropout),
            ln_attn: ln("ln_attn"),
            ffn_in: nn::linear(&p / "ffn_in", d, d, Default::default()),
            ffn_out: nn::linear(&p / "ffn_out", d, d, Default::default()),
            ln_ffn: ln("ln_ffn"),
            dropout: shape.dropout,
            pre_ln: shape.pre_ln,
        }
    }

    fn ffn(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.ffn_in.forward(x).relu().dropout(self.dropout, train);
        self.ffn_out.forward(&h)
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let drop = |t: Tensor| t.dropout(self.dropout, train);
        if self.pre_ln {
            let x = x + drop(self.attn.forward(&self.ln_attn.forward(x), mask, train));
            &x + drop(self.ffn(&self.ln_ffn.forward(&x), train))
        } else {
            let x = self
                .ln_attn
                .forward(&(x + drop(self.attn.forward(x, mask, train))));
            self.ln_ffn.forward(&(&x + drop(self.ffn(&x, train))))
        }
    }
}

/// The SASRec network. Its variables live in the [`nn::VarStore`] it was built in.
#[derive(Debug)]
pub struct Sasrec {
    /// Shape it was built with.
    pub shape: SasrecShape,
    item_emb: Tensor,
    pos_emb: Tensor,
    ln_emb: nn::LayerNorm,
    blocks: Vec<Block>,
    ln_final: nn::LayerNorm,
    output: Option<Tensor>,
}

impl Sasrec {
    /// Builds the network under `p` with N(0, 0.02²) embeddings (the padding row zero).
    pub fn new(p: &nn::Path, shape: SasrecShape) -> Sasrec {
        assert!(
            shape.heads > 0 && shape.hidden.is_multiple_of(shape.heads),
            "ranker.hidden ({}) must be a multiple of ranker.heads ({})",
            shape.hidden,
            shape.heads
        );
        let d = shape.hidden as i64;
        let rows = shape.n_items as i64 + 1;
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let item_emb = p.var("item_emb", &[rows, d], init);
        let output = (!shape.tie_output).then(|| p.var("output_item_table", &[rows, d], init));
        tch::no_grad(|| {
            let _ = item_emb.get(0).zero_();
            if let Some(e) = &output {
                let _ = e.get(0).zero_();
            }
        });
        let ln = |name: &str| nn::layer_norm(p / name, vec![d], Default::default());
        Sasrec {
            shape,
            item_emb,
            pos_emb: p.var("pos_emb", &[shape.max_len as i64, d], init),
            ln_emb: ln("ln_emb"),
            blocks: (0..shape.blocks)
                .map(|i| Block::new(p / "blocks" / i, &shape))
                .collect(),
            ln_final: ln("ln_final"),
            output,
        }
    }

    /// The output item table `E` (`[n_items + 1, d]`, row 0 unused): scores are `h_uᵀ e_i`.
    /// With `tie_output` this is the input embedding table.
    pub fn output_table(&self) -> &Tensor {
        self.output.as_ref().unwrap_or(&self.item_emb)
    }

    /// Hidden states of every position: `seqs` `[B, L]` (i64, left-padded with 0,
    /// `L ≤ max_len`) → `[B, L, d]`, zero at padding positions.
    pub fn encode(&self, seqs: &Tensor, train: bool) -> Tensor {
        let (_, l) = seqs.size2().expect("[B, L] item ids");
        assert!(
            l as usize <= self.shape.max_len,
            "sequence length {l} exceeds ranker.max_len {}",
            self.shape.max_len
        );
        let keep = seqs.ne(0);
        let keep_f = keep.unsqueeze(-1).to_kind(Kind::Float);
        let positions = Tensor::arange(l, (Kind::Int64, seqs.device())).flip([0]);
        let mut x = lookup(&self.item_emb, seqs) + lookup(&self.pos_emb, &positions);
        if !self.shape.pre_ln {
            x = self.ln_emb.forward(&x);
        }
        x = x.dropout(self.shape.dropout, train) * &keep_f;
        let mask = attention_mask(&keep);
        for block in &self.blocks {
            x = block.forward(&x, &mask, train) * &keep_f;
        }
        if self.shape.pre_ln {
            x = self.ln_final.forward(&x) * &keep_f;
        }
        x
    }

    /// The user state `h_u`: the hidden state of the newest item (last column), `[B, d]`.
    pub fn user_states(&self, seqs: &Tensor) -> Tensor {
        self.encode(seqs, false).select(1, -1)
    }

    /// Scores of every item for hidden states `h` (`[..., d]` → `[..., n_items + 1]`);
    /// column 0 (padding) is −∞ so it never ranks.
    pub fn scores(&self, h: &Tensor) -> Tensor {
        let s = h.matmul(&self.output_table().tr());
        let _ = s.narrow(-1, 0, 1).fill_(f64::NEG_INFINITY);
        s
    }
}

/// Rows of `table` at `ids` (any shape of ids; a trailing `d` axis is added).
pub fn lookup(table: &Tensor, ids: &Tensor) -> Tensor {
    Tensor::embedding(table, ids, -1, false, false)
}

/// `[B, 1, L, L]` boolean mask: causal, padding keys hidden. A padding query attends to itself
/// only, so no row is empty (its output is zeroed anyway).
fn attention_mask(keep: &Tensor) -> Tensor {
    let l = keep.size()[1];
    let dev = keep.device();
    let causal = Tensor::ones([l, l], (Kind::Bool, dev)).tril(0);
    let eye = Tensor::eye(l, (Kind::Bool, dev));
    let keys = keep.unsqueeze(1).unsqueeze(1);
    causal
        .unsqueeze(0)
        .unsqueeze(0)
        .logical_and(&keys)
        .logical_or(&eye)
}
