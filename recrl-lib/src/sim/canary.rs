//! Canary exposure (Carlini et al. 2019): a PPO run started with `--canaries k` appends
//! synthetic secrets ("My PIN is 4821.") to some of its prompts and records them in
//! `logs/<ds>/<tag>/canaries.json`; the audit ranks each secret by the trained model's loss
//! among other codes of the same form and reports the exposure.

use crate::explainer::{Explainer, PromptBatch};
use crate::rng::Rng;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Kind;

/// Digits of a secret: the randomness space has `10^DIGITS` codes.
pub const DIGITS: u32 = 4;

/// A synthetic secret inserted into training prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// The code.
    pub secret: String,
    /// Prompts it was appended to.
    pub inserted: usize,
}

/// The sentence that carries a code.
pub fn sentence(secret: &str) -> String {
    format!("My PIN is {secret}.")
}

fn code(rng: &mut Rng) -> String {
    format!(
        "{:0width$}",
        rng.below(10usize.pow(DIGITS)),
        width = DIGITS as usize
    )
}

/// `k` distinct seeded codes.
pub fn make(k: usize, seed: u64) -> Vec<Canary> {
    let mut rng = Rng::new(seed ^ 0xCA7A);
    let mut out: Vec<Canary> = Vec::new();
    while out.len() < k.min(10usize.pow(DIGITS)) {
        let secret = code(&mut rng);
        if !out.iter().any(|c| c.secret == secret) {
            out.push(Canary {
                secret,
                inserted: 0,
            });
        }
    }
    out
}

/// Sum of `log p(token | previous)` over each text's tokens after the first (BOS prepended
/// when the model has one), in batches of `batch`.
pub fn sequence_logprobs(ex: &Explainer, texts: &[String], batch: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch.max(1)) {
        let ids: Vec<Vec<u32>> = chunk
            .iter()
            .map(|t| {
                let mut v: Vec<u32> = ex.tokenizer.bos.into_iter().collect();
                v.extend(ex.tokenizer.encode(t)?);
                Ok(v)
            })
            .collect::<Result<_>>()?;
        let b = PromptBatch::new(&ids, &[], ex.tokenizer.pad, ex.model.device());
        let lp = tch::no_grad(|| {
            let logits = ex.model.forward_ids(&b.ids, &b.mask);
            let logp = logits
                .narrow(1, 0, logits.size()[1] - 1)
                .log_softmax(-1, Kind::Float);
            let next = b.ids.narrow(1, 1, b.ids.size()[1] - 1).unsqueeze(-1);
            let got = logp.gather(-1, &next, false).squeeze_dim(-1);
            let keep = b
                .mask
                .narrow(1, 0, b.mask.size()[1] - 1)
                .to_kind(Kind::Float)
                * b.mask
                    .narrow(1, 1, b.mask.size()[1] - 1)
                    .to_kind(Kind::Float);
            (got * keep).sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        });
        out.extend(Vec::<f64>::try_from(lp.to_kind(Kind::Double))?);
    }
    Ok(out)
}

/// Exposure of `canary` under `ex`: its sentence's loss ranked among `n_others` other codes
/// drawn uniformly (seeded) from the `10^DIGITS` space. With a sample, `log2(n_others + 1) −
/// log2 rank` estimates the exposure (at most `log2(n_others + 1)` bits).
pub fn measure(ex: &Explainer, canary: &Canary, n_others: usize, seed: u64) -> Result<f64> {
    let mut rng = Rng::new(seed ^ 0x0E9);
    let mut codes = Vec::new();
    while codes.len() < n_others.min(10usize.pow(DIGITS) - 1) {
        let c = code(&mut rng);
        if c != canary.secret && !codes.contains(&c) {
            codes.push(c);
        }
    }
    let mut texts = vec![sentence(&canary.secret)];
    texts.extend(codes.iter().map(|c| sentence(c)));
    let lp = sequence_logprobs(ex, &texts, 64)?;
    let losses: Vec<f64> = lp.iter().map(|l| -l).collect();
    Ok(exposure(losses[0], &losses[1..]))
}

/// Canary exposure (Carlini et al. 2019): `log2 |R| − log2 rank`, where `rank` is the canary's
/// rank by loss among itself and `others` (the rest of the randomness space `R`, or a uniform
/// sample of it); ties count half.
pub fn exposure(canary_loss: f64, others: &[f64]) -> f64 {
    let below = others.iter().filter(|&&l| l < canary_loss).count() as f64;
    let ties = others.iter().filter(|&&l| l == canary_loss).count() as f64;
    let rank = 1.0 + below + 0.5 * ties;
    ((others.len() + 1) as f64).log2() - rank.log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_padded() {
        let c = make(50, 3);
        assert_eq!(c.len(), 50);
        assert!(c.iter().all(|x| x.secret.len() == 4));
        let mut s: Vec<&str> = c.iter().map(|x| x.secret.as_str()).collect();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 50);
        assert_eq!(make(50, 3), c);
        assert_eq!(sentence("0042"), "My PIN is 0042.");
    }
}
