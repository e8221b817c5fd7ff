//! The grounded explanation quality `q(x) ∈ [0, 1]` (docs/design.md §7.2) that the simulated user
//! clicks on. It reads only the explanation, the recommended item's metadata and the user's
//! history titles, never the prompt text, and it is built so that noise earns nothing:
//!
//! `q = fluency · no_repetition · no_toxic · form · (0.3 item + 0.2 history + 0.3 relevance + 0.2 length)`
//!
//! * the **gates** (each in [0, 1]) multiply: text that the frozen reference model finds
//!   unlikely (random sub-words, shuffled words), that loops, or that holds a toxic term scores
//!   near 0 whatever it mentions;
//! * the **form** gates ([`Form`]) are what a reader sees and what a policy learns to exploit
//!   (issue 31): a reply that is cut off, contradicts the catalogue or names a title it should
//!   not, copies raw fields or list templates, is a keyword list or a digit run rather than
//!   prose, or copies the item's reference sentence keeps `reward.form_penalty` (0.4,
//!   [`RewardConfig`]) of its `q` for each failed check. The first three are the judge's checks ([`crate::judge`]), so the judge's
//!   faithfulness, completeness and artefact rates are **not independent of this reward**;
//!   its readability is;
//! * the **content** parts add up: naming the item (title, genre or author), naming an item of
//!   the user's history, relevance to the item's reference sentence (MiniLM cosine), and a
//!   length in band.
//!
//! Fluency is the mean per-token log-probability of the explanation under the reference model
//! (the explainer's base, LoRA off), after a fixed neutral request ([`FLUENCY_REQUEST`]),
//! mapped linearly to [0, 1] between two anchors measured once per model on fixed sentences
//! ([`Fluency::calibrate`]). Relevance maps the cosine linearly between [`RELEVANCE_COSINES`].

use crate::config::RewardConfig;
use crate::data::{Dataset, ItemMeta};
use crate::explainer::Explainer;
use crate::judge::{faithful, Judge};
use crate::minilm::MiniLm;
use crate::rng::Rng;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The content parts of `q(x)` and their weights (summing to 1).
pub const CONTENT_WEIGHTS: [(&str, f64); 4] = [
    ("names the item or its genres/author", 0.3),
    ("refers to the user's history", 0.2),
    (
        "relevance to the item (MiniLM cosine with its reference sentence)",
        0.3,
    ),
    ("length in band", 0.2),
];

/// Words in `[MIN_WORDS, MAX_WORDS]` earn the length part in full; it fades linearly to 0 at
/// half the minimum and at twice the maximum.
pub const MIN_WORDS: usize = 8;
/// See [`MIN_WORDS`].
pub const MAX_WORDS: usize = 45;

/// The function words of the prose check: articles, pronouns, prepositions, conjunctions,
/// auxiliaries and a few adverbs.
pub const FUNCTION_WORDS: [&str; 78] = [
    "a", "an", "the", "and", "but", "or", "so", "if", "as", "of", "in", "on", "at", "to", "for",
    "with", "from", "by", "about", "into", "like", "than", "that", "this", "these", "those", "it",
    "its", "it's", "you", "your", "you'll", "you're", "you've", "i", "me", "my", "we", "our",
    "they", "them", "their", "he", "she", "his", "her", "who", "which", "what", "when", "where",
    "how", "is", "are", "was", "were", "be", "been", "being", "will", "would", "can", "could",
    "may", "might", "should", "has", "have", "had", "do", "does", "did", "not", "since", "because",
    "also", "too", "very",
];

/// The user turn the reference model reads before an explanation when fluency is measured:
/// the same for every explanation, naming no item and no user.
pub const FLUENCY_REQUEST: &str = "Recommend a film or a book to me in one or two sentences.";

/// MiniLM cosines mapped to relevance 0 and 1 (linear between, clamped): about the cosine of
/// unrelated sentences and of a sentence with a paraphrase of it.
pub const RELEVANCE_COSINES: (f64, f64) = (0.15, 0.6);

/// Fluent recommendation-like sentences: their median log-probability is fluency 1. The
/// same sentences with their words shuffled (seed [`CALIBRATION_SEED`]) anchor fluency 0 at
/// their highest log-probability.
pub const CALIBRATION: [&str; 12] = [
    "If you enjoyed the last mystery you read, this one keeps the same tense pace until the final page.",
    "This film follows a family through one hard winter, and its quiet moments stay with you.",
    "You seem to like clever comedies, so this story about two rival chefs should make you laugh.",
    "A thoughtful science fiction novel about a crew that wakes up far from home.",
    "Since you watched several westerns, you may like this one for its wide landscapes and honest characters.",
    "The book explains the history of the city with short chapters that are easy to follow.",
    "It is a warm animated adventure that children and adults can both enjoy on a weekend.",
    "Fans of crime dramas will appreciate the careful plot and the strong performance of the lead actor.",
    "This romantic drama is set in a small coastal town and moves at a gentle, patient pace.",
    "You liked fast action films, and this thriller delivers car chases and a surprising ending.",
    "The author writes about music and friendship with humour, which matches the books you rated highly.",
    "A classic war film that shows the cost of conflict through the eyes of a young soldier.",
];

/// Seed of the word shuffles in the calibration.
pub const CALIBRATION_SEED: u64 = 7;

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

/// What the models say of an explanation, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Grounding {
    /// The reference model's calibrated log-probability of the text ([`Fluency::of`]).
    pub fluency: f64,
    /// MiniLM relevance to the item's reference sentence ([`relevance_of`]).
    pub relevance: f64,
}

/// `q(x)` part by part, each in [0, 1] ([`QualityParts::q`] combines them).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct QualityParts {
    /// Names the recommended item (half its title's key words), a genre or its author.
    pub item: f64,
    /// Names an item of the user's history.
    pub history: f64,
    /// MiniLM relevance to the item's reference sentence.
    pub relevance: f64,
    /// Length in band ([`MIN_WORDS`]..[`MAX_WORDS`]).
    pub length: f64,
    /// Gate: the reference model's calibrated fluency.
    pub fluency: f64,
    /// Gate: share of distinct word bigrams.
    pub repetition: f64,
    /// Gate: 1 without toxic terms, else 0.
    pub clean: f64,
    /// Form gate: ends a sentence (the judge's completeness), else `form_penalty`.
    #[serde(default = "passed")]
    pub complete: f64,
    /// Form gate: no contradiction of the catalogue, no invented or unlisted title (the
    /// judge's faithfulness), else `form_penalty`.
    #[serde(default = "passed")]
    pub faithful: f64,
    /// Form gate: no raw field, list template or repeated digits (the judge's artefacts), else
    /// `form_penalty`.
    #[serde(default = "passed")]
    pub raw_free: f64,
    /// Form gate: reads as prose ([`reads_as_prose`]), else `form_penalty`.
    #[serde(default = "passed")]
    pub prose: f64,
    /// Form gate: does not copy the item's reference sentence ([`copies`]), else
    /// `form_penalty`.
    #[serde(default = "passed")]
    pub own_words: f64,
}

/// A form gate's value in records made before the form gates (issue 31): passed.
fn passed() -> f64 {
    1.0
}

/// The names of the parts of `q(x)`, in [`QualityParts::named`] order: the content parts, the
/// gates, the form gates.
pub const PART_NAMES: [&str; 12] = [
    "item",
    "history",
    "relevance",
    "length",
    "fluency",
    "repetition",
    "clean",
    "complete",
    "faithful",
    "raw_free",
    "prose",
    "own_words",
];

impl QualityParts {
    /// `q(x) = fluency · repetition · clean · form gates · Σ weight · content part`.
    pub fn q(&self) -> f64 {
        let v = self.values();
        let content = v[..4]
            .iter()
            .zip(CONTENT_WEIGHTS)
            .map(|(p, (_, w))| p * w)
            .sum::<f64>();
        v[4..].iter().product::<f64>() * content
    }

    /// Each part with its name ([`PART_NAMES`]).
    pub fn named(&self) -> [(&'static str, f64); 12] {
        let v = self.values();
        std::array::from_fn(|k| (PART_NAMES[k], v[k]))
    }

    fn values(&self) -> [f64; 12] {
        [
            self.item,
            self.history,
            self.relevance,
            self.length,
            self.fluency,
            self.repetition,
            self.clean,
            self.complete,
            self.faithful,
            self.raw_free,
            self.prose,
            self.own_words,
        ]
    }

    fn from_values(v: [f64; 12]) -> QualityParts {
        let [item, history, relevance, length, fluency, repetition, clean, complete, faithful, raw_free, prose, own_words] =
            v;
        QualityParts {
            item,
            history,
            relevance,
            length,
            fluency,
            repetition,
            clean,
            complete,
            faithful,
            raw_free,
            prose,
            own_words,
        }
    }

    /// The mean of each part over `parts` (zeros when empty).
    pub fn mean(parts: &[QualityParts]) -> QualityParts {
        let n = parts.len().max(1) as f64;
        let mut sum = [0.0; 12];
        for p in parts {
            for (s, v) in sum.iter_mut().zip(p.values()) {
                *s += v;
            }
        }
        QualityParts::from_values(sum.map(|s| s / n))
    }
}

/// The form checks of one reply, each `true` when it passes ([`QualityParts`]' form gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Form {
    /// Ends a sentence ([`crate::judge::text::ends_sentence`]).
    pub complete: bool,
    /// The judge finds no contradiction and no invented or unlisted title.
    pub faithful: bool,
    /// The judge finds no artefact.
    pub raw_free: bool,
    /// Reads as prose ([`reads_as_prose`]).
    pub prose: bool,
    /// Does not copy the item's reference sentence ([`copies`]).
    pub own_words: bool,
}

impl Form {
    /// Every check passed.
    pub const PASS: Form = Form {
        complete: true,
        faithful: true,
        raw_free: true,
        prose: true,
        own_words: true,
    };

    /// The checks of `text` explaining `item` to a user whose prompt listed `history`, against
    /// `judge`'s catalogue, with `reward`'s thresholds.
    pub fn of(
        judge: &Judge,
        reward: &RewardConfig,
        text: &str,
        item: u32,
        history: &[u32],
    ) -> Form {
        let ds = judge.dataset();
        let verdict = judge.judge(text, item, history);
        let mut outside = text.to_string();
        for span in faithful::title_spans(ds, text, item, history) {
            outside.replace_range(span.clone(), &" ".repeat(span.len()));
        }
        Form {
            complete: verdict.complete,
            faithful: verdict.faithful,
            raw_free: !verdict.artefact,
            prose: reads_as_prose(&words(&outside), reward),
            own_words: !copies(
                &words(text),
                &words(&ds.reference_sentence(item)),
                reward.copy_share,
            ),
        }
    }
}

/// Whether the words of a reply outside its named titles read as prose: at least
/// `prose_min_words` of them, at least `prose_function_share` function words
/// ([`FUNCTION_WORDS`]), no more than `prose_number_run` number words in a row.
pub fn reads_as_prose(ws: &[String], reward: &RewardConfig) -> bool {
    let function = ws
        .iter()
        .filter(|w| FUNCTION_WORDS.contains(&w.as_str()))
        .count();
    let mut run = 0;
    let mut longest = 0;
    for w in ws {
        run = if w.chars().all(|c| c.is_ascii_digit()) {
            run + 1
        } else {
            0
        };
        longest = longest.max(run);
    }
    ws.len() >= reward.prose_min_words
        && function as f64 >= reward.prose_function_share * ws.len() as f64
        && longest <= reward.prose_number_run
}

/// Whether `reply` copies `reference` (both as words): one run of consecutive words of the
/// reply holds at least `share` of the reference's words (references under 4 words are never
/// copied).
pub fn copies(reply: &[String], reference: &[String], share: f64) -> bool {
    if reference.len() < 4 {
        return false;
    }
    let mut prev = vec![0usize; reference.len() + 1];
    let mut longest = 0;
    for w in reply {
        let mut row = vec![0usize; reference.len() + 1];
        for (j, r) in reference.iter().enumerate() {
            if w == r {
                row[j + 1] = prev[j] + 1;
                longest = longest.max(row[j + 1]);
            }
        }
        prev = row;
    }
    longest as f64 >= share * reference.len() as f64
}

/// The lexical parts of `q(x)` (no model): word matches, length, repetition, toxic terms, and
/// the form gates' penalty.
#[derive(Debug, Clone, Default)]
pub struct QualityScorer {
    /// Lower-case toxic terms (whole-word matches).
    pub toxic: HashSet<String>,
    /// The form gates' settings (the configuration's `reward` section).
    pub reward: RewardConfig,
}

impl QualityScorer {
    /// Every part of `explanation` about `recommended` for a user whose history holds
    /// `history`, the model-made ones taken from `grounding`, the form gates from `form`.
    pub fn parts(
        &self,
        explanation: &str,
        recommended: &ItemMeta,
        history: &[&ItemMeta],
        grounding: Grounding,
        form: Form,
    ) -> QualityParts {
        let gate = |pass: bool| {
            if pass {
                1.0
            } else {
                self.reward.form_penalty
            }
        };
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
        let item = mentions(&set, &recommended.title) || genre_hit || author_hit;
        let hist = history.iter().any(|m| mentions(&set, &m.title));
        QualityParts {
            item: item as u8 as f64,
            history: hist as u8 as f64,
            relevance: grounding.relevance,
            length: length_part(ws.len()),
            fluency: grounding.fluency,
            repetition: distinct_bigram_share(&ws),
            clean: (!ws.iter().any(|w| self.toxic.contains(w))) as u8 as f64,
            complete: gate(form.complete),
            faithful: gate(form.faithful),
            raw_free: gate(form.raw_free),
            prose: gate(form.prose),
            own_words: gate(form.own_words),
        }
    }
}

/// 1 in `[MIN_WORDS, MAX_WORDS]`, fading linearly to 0 at half the minimum and twice the maximum.
fn length_part(n: usize) -> f64 {
    if n < MIN_WORDS {
        ((n as f64 - MIN_WORDS as f64 / 2.0) / (MIN_WORDS as f64 / 2.0)).clamp(0.0, 1.0)
    } else if n > MAX_WORDS {
        (1.0 - (n - MAX_WORDS) as f64 / MAX_WORDS as f64).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Distinct word bigrams over all bigrams (0 for fewer than two words).
fn distinct_bigram_share(ws: &[String]) -> f64 {
    let bigrams: Vec<(&String, &String)> = ws.iter().zip(ws.iter().skip(1)).collect();
    let distinct: HashSet<&(&String, &String)> = bigrams.iter().collect();
    if bigrams.is_empty() {
        0.0
    } else {
        distinct.len() as f64 / bigrams.len() as f64
    }
}

/// Relevance from a MiniLM cosine: linear from [`RELEVANCE_COSINES`]`.0` (0) to `.1` (1).
pub fn relevance_of(cosine: f64) -> f64 {
    let (lo, hi) = RELEVANCE_COSINES;
    ((cosine - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// Fluency from the reference model's mean per-token log-probability, linear between two
/// anchors measured on the model itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fluency {
    /// Log-probability of fluency 0: the highest of the shuffled [`CALIBRATION`] sentences.
    pub zero: f64,
    /// Log-probability of fluency 1: the median of the [`CALIBRATION`] sentences.
    pub one: f64,
}

/// Below this gap (nats a token) between the anchors the model cannot tell fluent text from
/// shuffled words (a random-weight model): every fluency is 0.
pub const MIN_ANCHOR_GAP: f64 = 0.5;

impl Fluency {
    /// The anchors of `ex`'s base model.
    pub fn calibrate(ex: &mut Explainer) -> Result<Fluency> {
        let prefix = ex.chat_prefix(FLUENCY_REQUEST)?;
        let fluent = ex.reference_log_probs(&prefix, &CALIBRATION)?;
        let shuffled: Vec<String> = shuffled_calibration();
        let refs: Vec<&str> = shuffled.iter().map(String::as_str).collect();
        let noise = ex.reference_log_probs(&prefix, &refs)?;
        Ok(Fluency {
            zero: noise.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            one: crate::stats::quantile(&fluent, 0.5),
        })
    }

    /// Fluency of a text whose mean per-token log-probability is `logp` (0 for NaN).
    pub fn of(&self, logp: f64) -> f64 {
        if self.one - self.zero < MIN_ANCHOR_GAP || logp.is_nan() {
            return 0.0;
        }
        ((logp - self.zero) / (self.one - self.zero)).clamp(0.0, 1.0)
    }
}

/// [`CALIBRATION`] with the words of each sentence shuffled (seed [`CALIBRATION_SEED`]).
pub fn shuffled_calibration() -> Vec<String> {
    let mut rng = Rng::new(CALIBRATION_SEED);
    CALIBRATION
        .iter()
        .map(|s| {
            let mut w: Vec<&str> = s.split_whitespace().collect();
            rng.shuffle(&mut w);
            w.join(" ")
        })
        .collect()
}

/// One explanation to grade: its text, the recommended item and the user's history items.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The explanation.
    pub text: &'a str,
    /// The recommended item.
    pub item: u32,
    /// The history items the prompt listed.
    pub history: &'a [u32],
}

/// `q(x)` with its models: the lexical scorer, the reference model's fluency anchors and
/// MiniLM.
pub struct Grader {
    /// The lexical parts.
    pub scorer: QualityScorer,
    /// The fluency anchors of the explainer's base model.
    pub fluency: Fluency,
    /// The sentence encoder of the relevance part.
    pub encoder: MiniLm,
}

impl Grader {
    /// A grader for `ex`'s base model (calibrated now) with `encoder` and the form gates of
    /// `reward`.
    pub fn new(ex: &mut Explainer, encoder: MiniLm, reward: &RewardConfig) -> Result<Grader> {
        Ok(Grader {
            scorer: QualityScorer {
                reward: reward.clone(),
                ..QualityScorer::default()
            },
            fluency: Fluency::calibrate(ex)?,
            encoder,
        })
    }

    /// A grader with MiniLM from `models` (`checkpoints/models/all-MiniLM-L6-v2` under a
    /// project root) on `ex`'s device, and the form gates of `reward`.
    pub fn load(
        models: &crate::paths::Layout,
        ex: &mut Explainer,
        reward: &RewardConfig,
    ) -> Result<Grader> {
        let dir = models.model(crate::minilm::MODEL_DIR);
        let encoder = MiniLm::load(&dir, ex.model.device()).with_context(|| {
            format!(
                "q(x) needs all-MiniLM-L6-v2 in {} (scripts/setup.sh fetches it)",
                dir.display()
            )
        })?;
        Grader::new(ex, encoder, reward)
    }

    /// The parts of `q(x)` of each subject: the reference model (`ex` with LoRA off) reads
    /// each text after [`FLUENCY_REQUEST`], MiniLM compares it with its item's reference
    /// sentence, the judge and the prose and copy checks give the form gates ([`Form::of`]).
    pub fn grade(
        &self,
        ex: &mut Explainer,
        ds: &Dataset,
        subjects: &[Subject],
    ) -> Result<Vec<QualityParts>> {
        self.grade_with(ex, &Judge::new(ds), subjects)
    }

    /// As [`Grader::grade`], with `judge`'s catalogue index (built once by a caller that
    /// grades many batches of one dataset, such as a PPO run's environment).
    pub fn grade_with(
        &self,
        ex: &mut Explainer,
        judge: &Judge,
        subjects: &[Subject],
    ) -> Result<Vec<QualityParts>> {
        let ds = judge.dataset();
        let texts: Vec<&str> = subjects.iter().map(|s| s.text).collect();
        let prefix = ex.chat_prefix(FLUENCY_REQUEST)?;
        let logps = ex.reference_log_probs(&prefix, &texts)?;
        let references: Vec<String> = subjects
            .iter()
            .map(|s| ds.reference_sentence(s.item))
            .collect();
        let refs: Vec<&str> = references.iter().map(String::as_str).collect();
        let cosines = self.encoder.cosine(&texts, &refs)?;
        Ok(subjects
            .iter()
            .zip(logps.iter().zip(&cosines))
            .map(|(s, (&lp, &cos))| {
                let hist: Vec<&ItemMeta> =
                    s.history.iter().map(|&i| &ds.items[i as usize]).collect();
                let grounding = Grounding {
                    fluency: self.fluency.of(lp),
                    relevance: relevance_of(cos),
                };
                let form = Form::of(judge, &self.scorer.reward, s.text, s.item, s.history);
                self.scorer
                    .parts(s.text, &ds.items[s.item as usize], &hist, grounding, form)
            })
            .collect())
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

    const FULL: Grounding = Grounding {
        fluency: 1.0,
        relevance: 1.0,
    };

    #[test]
    fn q_is_the_gated_weighted_sum_by_hand() {
        let p = QualityParts {
            item: 1.0,
            history: 0.0,
            relevance: 0.5,
            length: 1.0,
            fluency: 0.8,
            repetition: 0.9,
            clean: 1.0,
            complete: 1.0,
            faithful: 1.0,
            raw_free: 1.0,
            prose: 1.0,
            own_words: 1.0,
        };
        // content 0.3 + 0 + 0.15 + 0.2 = 0.65; gates 0.8 · 0.9 · 1 = 0.72
        assert!((p.q() - 0.65 * 0.72).abs() < 1e-12, "{}", p.q());
        assert_eq!(QualityParts { clean: 0.0, ..p }.q(), 0.0);
        let cut = QualityParts {
            complete: RewardConfig::default().form_penalty,
            ..p
        };
        assert!((cut.q() - 0.4 * 0.65 * 0.72).abs() < 1e-12, "{}", cut.q());
        let twice = QualityParts { prose: 0.4, ..cut };
        assert!((twice.q() - 0.16 * 0.65 * 0.72).abs() < 1e-12);
        let named = p.named();
        assert_eq!(named.map(|(n, _)| n), PART_NAMES);
        assert_eq!((named[5].1, named[11].1), (0.9, 1.0));
        let w: f64 = CONTENT_WEIGHTS.iter().map(|(_, w)| w).sum();
        assert!((w - 1.0).abs() < 1e-12);
        let m = QualityParts::mean(&[p, QualityParts { item: 0.0, ..p }]);
        assert_eq!((m.item, m.fluency), (0.5, 0.8));
    }

    #[test]
    fn lexical_parts_pay_for_grounding_not_for_padding() {
        let q = QualityScorer {
            toxic: ["damn".to_string()].into_iter().collect(),
            ..QualityScorer::default()
        };
        let rec = movie("Star Wars", &["Action", "Sci-Fi"]);
        let seen = movie("Return of the Jedi", &["Action"]);
        let score = |t: &str| q.parts(t, &rec, &[&seen], FULL, Form::PASS).q();
        let grounded = "Since you loved Return of the Jedi, Star Wars brings the same action and space adventure you enjoy.";
        let g = score(grounded);
        assert!(
            (g - 1.0).abs() < 1e-12,
            "every part earned: {:?}",
            q.parts(grounded, &rec, &[&seen], FULL, Form::PASS)
        );
        let filler = "This is a wonderful choice that many people find very enjoyable and memorable in many ways. ".repeat(6);
        let f = q.parts(&filler, &rec, &[&seen], Grounding::default(), Form::PASS);
        assert!(f.q() == 0.0 && f.item == 0.0 && f.history == 0.0, "{f:?}");
        let padded = format!(
            "{grounded} {}",
            "And it is really good fun to watch again and again with friends. ".repeat(8)
        );
        assert!(score(&padded) < g, "padding must not pay");
        assert_eq!(score(&grounded.replace("loved", "damn loved")), 0.0);
        let looped = "Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars";
        assert!(q.parts(looped, &rec, &[&seen], FULL, Form::PASS).repetition < 0.3);
        assert!(score(looped) < 0.3);
    }

    #[test]
    fn prose_needs_function_words_and_no_digit_runs() {
        let r = RewardConfig::default();
        let prose = |t: &str| reads_as_prose(&words(t), &r);
        // 6 of 10 words are function words.
        assert!(prose(
            "since you loved it you will enjoy this space adventure"
        ));
        // Genres and years: no function word.
        assert!(!prose("Action, Adventure, Sci-Fi, 1977, Action"));
        // 1 of 6 (0.17 < 0.2).
        assert!(!prose("Action Adventure War Romance of 1977"));
        // 2 of 6 (0.33) but three numbers in a row.
        assert!(!prose("it is a 1977 1977 1977 film"));
        assert!(prose("it is a 1977 1977 film"));
        assert!(!prose("you will love"), "under 4 words");
    }

    #[test]
    fn a_copy_is_one_run_of_most_of_the_reference() {
        let ws = |t: &str| words(t);
        let copy = |reply: &str, reference: &[String]| copies(&ws(reply), reference, 0.8);
        let reference = ws("Fargo (1996) is a Crime, Drama and Thriller film from 1996.");
        assert_eq!(reference.len(), 11);
        // All 11 words in one run, with more around them.
        assert!(copy(
            "Watch this: Fargo (1996) is a Crime, Drama and Thriller film from 1996. Enjoy!",
            &reference
        ));
        // 9 of 11 in one run (0.82 ≥ 0.8).
        assert!(copy(
            "Fargo 1996 is a crime drama and thriller film, you will like it",
            &reference
        ));
        // The template shares 8 of 11 in one run (0.73): not a copy.
        assert!(!copy("Since you enjoyed Heat, you may like Fargo, a crime, drama and thriller film from 1996.", &reference));
        // Every word, but in a run of 8 and a run of 3, is not a copy either.
        assert!(!copy(
            "a crime drama and thriller film from 1996 and fargo 1996 is",
            &reference
        ));
        assert!(!copy("a b c", &ws("a b c")), "references under 4 words");
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
    fn fluency_and_relevance_maps_by_hand() {
        let f = Fluency {
            zero: -6.0,
            one: -3.0,
        };
        assert_eq!(f.of(-4.5), 0.5);
        assert_eq!((f.of(-9.0), f.of(-1.0), f.of(f64::NAN)), (0.0, 1.0, 0.0));
        let flat = Fluency {
            zero: -10.0,
            one: -9.8,
        };
        assert_eq!(flat.of(-1.0), 0.0, "a model that cannot tell noise apart");
        assert!((relevance_of(0.375) - 0.5).abs() < 1e-12);
        assert_eq!((relevance_of(0.0), relevance_of(0.9)), (0.0, 1.0));
        let shuffled = shuffled_calibration();
        for (s, c) in shuffled.iter().zip(CALIBRATION) {
            let (mut a, mut b): (Vec<&str>, Vec<&str>) = (
                s.split_whitespace().collect(),
                c.split_whitespace().collect(),
            );
            a.sort();
            b.sort();
            assert_eq!(a, b, "a shuffle keeps the words");
        }
        assert_ne!(shuffled[0], CALIBRATION[0]);
    }
}
