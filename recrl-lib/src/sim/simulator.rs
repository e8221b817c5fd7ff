//! The simulated user (the seed's "RecSim" user, docs/design.md §7):
//! `P(click) = σ(α·s(u,i) + β_q·q(x) + b_u)`, with `b_u ~ N(0, 0.3²)` fixed per user, `s(u,i)`
//! from the *current* `E`, and `q(x) ∈ [0, 1]` a grounded explanation-quality score that
//! reads only the explanation (never the prompt) and cannot be won by length alone.

use crate::data::{Dataset, ItemMeta};
use crate::ranker::Ranker;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What `q(x)` checks, with weights summing to 1.
pub const QUALITY_PARTS: [(&str, f64); 5] = [
    ("names the item or its genres/author", 0.35),
    ("refers to the user's history", 0.25),
    ("length in band", 0.2),
    ("no repetition", 0.1),
    ("no toxic terms", 0.1),
];

/// Words in `[MIN_WORDS, MAX_WORDS]` earn the length part in full; it fades linearly to 0 at
/// half the minimum and at twice the maximum.
pub const MIN_WORDS: usize = 8;
/// See [`MIN_WORDS`].
pub const MAX_WORDS: usize = 45;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

const STOP: [&str; 24] = [
    "the", "a", "an", "of", "and", "in", "on", "to", "for", "with", "is", "it", "at", "by", "from",
    "or", "as", "la", "le", "les", "de", "der", "die", "das",
];

/// Distinctive words of a title (lower case, ≥ 3 letters, no stop words).
fn key_words(title: &str) -> Vec<String> {
    words(title)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        .collect()
}

/// Whether `text_words` mention `title`: at least half of its key words (at least one).
fn mentions(text_words: &HashSet<String>, title: &str) -> bool {
    let keys = key_words(title);
    if keys.is_empty() {
        return false;
    }
    let hit = keys.iter().filter(|k| text_words.contains(*k)).count();
    hit * 2 >= keys.len() && hit > 0
}

/// The grounded quality score `q(x)` and its parts.
#[derive(Debug, Clone, Default)]
pub struct QualityScorer {
    /// Lower-case toxic terms (whole-word matches).
    pub toxic: HashSet<String>,
}

impl QualityScorer {
    /// `q(x)` of `explanation` about `recommended`, for a user whose history holds `history`.
    pub fn score(&self, explanation: &str, recommended: &ItemMeta, history: &[&ItemMeta]) -> f64 {
        self.parts(explanation, recommended, history)
            .iter()
            .zip(QUALITY_PARTS)
            .map(|(p, (_, w))| p * w)
            .sum()
    }

    /// Each part of [`QUALITY_PARTS`] in [0, 1].
    pub fn parts(
        &self,
        explanation: &str,
        recommended: &ItemMeta,
        history: &[&ItemMeta],
    ) -> [f64; 5] {
        let ws = words(explanation);
        let set: HashSet<String> = ws.iter().cloned().collect();
        let genre_hit = recommended
            .genres
            .iter()
            .any(|g| key_words(g).iter().any(|k| set.contains(k)));
        let author_hit = recommended
            .author
            .as_deref()
            .is_some_and(|a| mentions(&set, a));
        let item = (mentions(&set, &recommended.title) || genre_hit || author_hit) as u8 as f64;
        let hist = history.iter().any(|m| mentions(&set, &m.title)) as u8 as f64;
        let n = ws.len();
        let length = if n < MIN_WORDS {
            ((n as f64 - MIN_WORDS as f64 / 2.0) / (MIN_WORDS as f64 / 2.0)).clamp(0.0, 1.0)
        } else if n > MAX_WORDS {
            (1.0 - (n - MAX_WORDS) as f64 / MAX_WORDS as f64).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let bigrams: Vec<(&String, &String)> = ws.iter().zip(ws.iter().skip(1)).collect();
        let distinct: HashSet<&(&String, &String)> = bigrams.iter().collect();
        let repetition = if bigrams.is_empty() {
            0.0
        } else {
            distinct.len() as f64 / bigrams.len() as f64
        };
        let clean = (!ws.iter().any(|w| self.toxic.contains(w))) as u8 as f64;
        [item, hist, length, repetition, clean]
    }
}

/// Simulated-user weights: `z = α·s̃ + β_q·(q − ½) + b_u`, with `s̃` the score standardised
/// by the step-0 mean and spread of the users' top scores (a fixed affine map, i.e. the design's
/// `α s + β_q q + b_u` with constants absorbed), so that an average user, item and quality of ½
/// click half the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimParams {
    /// α.
    pub alpha: f64,
    /// β_q.
    pub beta_q: f64,
    /// Standard deviation of `b_u`.
    pub sigma_b: f64,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            alpha: 1.0,
            beta_q: 3.0,
            sigma_b: 0.3,
        }
    }
}

/// A population of simulated users.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// Weight α of the standardised ranker score.
    pub alpha: f64,
    /// Weight β_q of the explanation quality.
    pub beta_q: f64,
    /// `b[u]`: the fixed bias of user u (index 0 unused).
    pub bias: Vec<f64>,
    /// Mean of the step-0 top scores (`s̃ = (s − score_mean) / score_sd`).
    pub score_mean: f64,
    /// Spread of the step-0 top scores.
    pub score_sd: f64,
}

impl SimUser {
    /// `n_users` users with `b_u ~ N(0, σ_b²)` drawn from `seed` (Box–Muller); scores are used
    /// as they are until [`SimUser::standardised_by`].
    pub fn new(n_users: usize, alpha: f64, beta_q: f64, sigma_b: f64, seed: u64) -> SimUser {
        let mut rng = Rng::new(seed);
        let bias = (0..=n_users)
            .map(|_| {
                let (u1, u2) = (rng.unit().max(1e-300), rng.unit());
                sigma_b * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        SimUser {
            alpha,
            beta_q,
            bias,
            score_mean: 0.0,
            score_sd: 1.0,
        }
    }

    /// Standardises scores by the mean and (population) spread of `scores`.
    pub fn standardised_by(mut self, scores: &[f64]) -> SimUser {
        let n = scores.len().max(1) as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let sd = (scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        (self.score_mean, self.score_sd) = (mean, sd.max(1e-6));
        self
    }

    /// The users of a run on `ds` (seeded by the run's `seed`), standardised by the top-1
    /// scores of every training user under `ranker` as it is at step 0.
    pub fn for_run(ds: &Dataset, ranker: &Ranker, params: &SimParams, seed: u64) -> SimUser {
        let histories: Vec<&Vec<u32>> = ds.train.iter().filter(|h| !h.is_empty()).collect();
        let top = ranker.top_k(&histories, 1, true);
        let scores: Vec<f64> = top.iter().map(|t| t[0].1 as f64).collect();
        SimUser::new(
            ds.n_users(),
            params.alpha,
            params.beta_q,
            params.sigma_b,
            seed ^ 0x5157,
        )
        .standardised_by(&scores)
    }

    /// `P(click)` of user `u` given the score `s(u,i)` and quality `q(x)`.
    pub fn click_probability(&self, u: usize, score: f64, quality: f64) -> f64 {
        let z = self.alpha * (score - self.score_mean) / self.score_sd
            + self.beta_q * (quality - 0.5)
            + self.bias[u];
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movie(title: &str, genres: &[&str]) -> ItemMeta {
        ItemMeta {
            title: title.into(),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn grounded_text_beats_long_ungrounded_text_and_padding_does_not_pay() {
        let q = QualityScorer {
            toxic: ["damn".to_string()].into_iter().collect(),
        };
        let rec = movie("Star Wars", &["Action", "Sci-Fi"]);
        let seen = movie("Return of the Jedi", &["Action"]);
        let grounded = "Since you loved Return of the Jedi, Star Wars brings the same action and space adventure you enjoy.";
        let g = q.score(grounded, &rec, &[&seen]);
        assert!(
            (g - 1.0).abs() < 1e-12,
            "every part earned: {:?}",
            q.parts(grounded, &rec, &[&seen])
        );
        // Length alone: a long, fluent, ungrounded text.
        let filler = "This is a wonderful choice that many people find very enjoyable and memorable in many ways. ".repeat(6);
        let f = q.score(&filler, &rec, &[&seen]);
        assert!(f < 0.3, "ungrounded long text scores {f}");
        // Padding a grounded text past the band lowers its score.
        let padded = format!(
            "{grounded} {}",
            "And it is really good fun to watch again and again with friends. ".repeat(8)
        );
        assert!(q.score(&padded, &rec, &[&seen]) < g, "padding must not pay");
        // Toxic words and repetition cost.
        assert!(q.score(&grounded.replace("loved", "damn loved"), &rec, &[&seen]) < g);
        let looped = "Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars";
        assert!(q.parts(looped, &rec, &[&seen])[3] < 0.3);
    }

    #[test]
    fn mentions_need_key_words_not_stop_words() {
        let set: HashSet<String> = words("one of the best of the year").into_iter().collect();
        assert!(
            !mentions(&set, "The Story of Us"),
            "shared stop words are not a mention"
        );
        let set: HashSet<String> = words("a story you will love").into_iter().collect();
        assert!(mentions(&set, "The Story of Us"), "its key word is");
        assert!(
            !mentions(&set, "Toy Story Two Three"),
            "half the key words are needed"
        );
        let set: HashSet<String> = words("you will like heat").into_iter().collect();
        assert!(mentions(&set, "Heat"));
        assert!(!mentions(&set, "Casino"));
    }

    #[test]
    fn click_probability_is_the_logistic_of_the_weighted_sum() {
        let mut sim = SimUser::new(3, 2.0, 1.5, 0.3, 1).standardised_by(&[1.0, 3.0]);
        assert_eq!((sim.score_mean, sim.score_sd), (2.0, 1.0));
        sim.bias[1] = -0.5;
        let p = sim.click_probability(1, 2.4, 0.6);
        // z = α (s − 2)/1 + β_q (q − ½) + b_u = 0.8 + 0.15 − 0.5
        let z: f64 = 0.45;
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-12);
        let big = SimUser::new(20_000, 1.0, 1.0, 0.3, 7);
        let b = &big.bias[1..];
        let mean = b.iter().sum::<f64>() / b.len() as f64;
        let sd = (b.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / b.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.01 && (sd - 0.3).abs() < 0.01,
            "b_u ~ N(0, 0.3²): mean {mean}, sd {sd}"
        );
    }
}
