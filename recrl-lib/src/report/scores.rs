//! The text metrics of one run's explanations (`logs/<ds>/<tag>/text_metrics.json`): the
//! greedy explanations of the audit set (`explanations.jsonl`, step 6) against reference
//! sentences, with the features of each explained item.

use super::text::{self, Prf};
use crate::audit::{Explained, Mode};
use crate::data::{Dataset, ReviewKind};
use crate::minilm::MiniLm;
use crate::stats::mean_or_nan;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the references are for a dataset without review texts.
pub const METADATA_REFERENCES: &str = "item metadata sentences";

/// The reference explanation for explaining `item` to `user`: a review text where the dataset
/// keeps one (the user's own review of the item, else the item's reference review, see
/// [`crate::data::Reviews`]), else the item's [`Dataset::reference_sentence`]. The kind is `None` for a
/// metadata sentence.
pub fn reference(ds: &Dataset, user: u32, item: u32) -> (String, Option<ReviewKind>) {
    match ds.reviews.reference(user, item) {
        Some((text, kind)) => (text.to_string(), Some(kind)),
        None => (ds.reference_sentence(item), None),
    }
}

/// Says where references came from, e.g. "review texts (3 own, 90 of the item) and item
/// metadata sentences (7)"; [`METADATA_REFERENCES`] when no review was used.
pub fn describe_references(kinds: &[Option<ReviewKind>]) -> String {
    let count = |k: Option<ReviewKind>| kinds.iter().filter(|&&x| x == k).count();
    let (own, of_item, metadata) = (
        count(Some(ReviewKind::Own)),
        count(Some(ReviewKind::OfItem)),
        count(None),
    );
    if own + of_item == 0 {
        return METADATA_REFERENCES.into();
    }
    let reviews = format!("review texts ({own} own, {of_item} of the item)");
    if metadata == 0 {
        reviews
    } else {
        format!("{reviews} and {METADATA_REFERENCES} ({metadata})")
    }
}

/// The features of `item` for FMR/FCR/DIV: genres, tags and author.
pub fn item_features(ds: &Dataset, item: u32) -> Vec<String> {
    let m = &ds.items[item as usize];
    let mut f = m.genres.clone();
    f.extend(m.tags.iter().cloned());
    f.extend(m.author.iter().cloned());
    f
}

/// Every distinct feature of the dataset's items, sorted.
pub fn catalogue(ds: &Dataset) -> Vec<String> {
    let mut all: Vec<String> = (1..=ds.n_items() as u32)
        .flat_map(|i| item_features(ds, i))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Text metrics of one run's explanations, with how they were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextReport {
    /// Always "recrl-text/1".
    pub format: String,
    /// Dataset name.
    pub dataset: String,
    /// Run tag.
    pub tag: String,
    /// Decoding of the scored explanations ("greedy").
    pub mode: String,
    /// Explanations scored.
    pub n: usize,
    /// What the references are ([`describe_references`]).
    pub references: String,
    /// Corpus BLEU-1 (sacrebleu, 13a), 0–100.
    pub bleu1: f64,
    /// Corpus BLEU-4 (sacrebleu, 13a), 0–100.
    pub bleu4: f64,
    /// Mean ROUGE-1 (rouge-score, no stemming), 0–100.
    pub rouge1: Prf,
    /// Mean ROUGE-2, 0–100.
    pub rouge2: Prf,
    /// Mean ROUGE-L, 0–100.
    pub rouge_l: Prf,
    /// Distinct unigrams over all unigrams.
    pub distinct1: f64,
    /// Distinct bigrams over all bigrams.
    pub distinct2: f64,
    /// Unique sentence ratio.
    pub usr: f64,
    /// Feature matching ratio.
    pub fmr: f64,
    /// Feature coverage ratio.
    pub fcr: f64,
    /// Feature diversity (mean shared features per pair; lower is more diverse).
    pub div: f64,
    /// Mean cosine of MiniLM sentence embeddings to the reference (`None` without the model).
    pub embedding_cosine: Option<f64>,
    /// Mean BERTScore-style F1 with MiniLM token states (`None` without the model).
    pub bertscore_f1: Option<f64>,
    /// Mean words per explanation.
    pub mean_words: f64,
}

fn mean_prf(v: &[Prf]) -> Prf {
    Prf {
        p: 100.0 * mean_or_nan(v.iter().map(|x| x.p)),
        r: 100.0 * mean_or_nan(v.iter().map(|x| x.r)),
        f: 100.0 * mean_or_nan(v.iter().map(|x| x.f)),
    }
}

/// Scores the greedy explanations among `rows` (see [`TextReport`]); `encoder` adds the
/// embedding similarities.
pub fn score(
    ds: &Dataset,
    tag: &str,
    rows: &[Explained],
    encoder: Option<&MiniLm>,
) -> Result<TextReport> {
    let rows: Vec<&Explained> = rows.iter().filter(|r| r.mode == Mode::Greedy).collect();
    anyhow::ensure!(!rows.is_empty(), "{tag}: no greedy explanations to score");
    let hyps: Vec<&str> = rows.iter().map(|r| r.explanation.as_str()).collect();
    let (refs_owned, kinds): (Vec<String>, Vec<Option<ReviewKind>>) = rows
        .iter()
        .map(|r| reference(ds, r.user as u32, r.recommended))
        .unzip();
    let refs: Vec<&str> = refs_owned.iter().map(String::as_str).collect();
    let own: Vec<Vec<String>> = rows
        .iter()
        .map(|r| item_features(ds, r.recommended))
        .collect();
    let rouge: Vec<text::Rouge> = hyps
        .iter()
        .zip(&refs)
        .map(|(h, r)| text::rouge(h, r))
        .collect();
    let features = text::feature_scores(&hyps, &own, &catalogue(ds));
    let (cosine, bert) = match encoder {
        Some(e) => (
            Some(mean_or_nan(e.cosine(&hyps, &refs)?.into_iter())),
            Some(mean_or_nan(e.bertscore_f1(&hyps, &refs)?.into_iter())),
        ),
        None => (None, None),
    };
    Ok(TextReport {
        format: "recrl-text/1".into(),
        dataset: ds.name.as_str().into(),
        tag: tag.into(),
        mode: "greedy".into(),
        n: rows.len(),
        references: describe_references(&kinds),
        bleu1: text::corpus_bleu(&hyps, &refs, 1).score,
        bleu4: text::corpus_bleu(&hyps, &refs, 4).score,
        rouge1: mean_prf(&rouge.iter().map(|r| r.rouge1).collect::<Vec<_>>()),
        rouge2: mean_prf(&rouge.iter().map(|r| r.rouge2).collect::<Vec<_>>()),
        rouge_l: mean_prf(&rouge.iter().map(|r| r.rouge_l).collect::<Vec<_>>()),
        distinct1: text::distinct_n(&hyps, 1),
        distinct2: text::distinct_n(&hyps, 2),
        usr: text::usr(&hyps),
        fmr: features.fmr,
        fcr: features.fcr,
        div: features.div,
        embedding_cosine: cosine,
        bertscore_f1: bert,
        mean_words: mean_or_nan(hyps.iter().map(|h| h.split_whitespace().count() as f64)),
    })
}

/// Scores `<log_dir>/explanations.jsonl` and writes `<log_dir>/text_metrics.json` atomically.
pub fn score_run(
    ds: &Dataset,
    tag: &str,
    log_dir: &Path,
    encoder: Option<&MiniLm>,
) -> Result<TextReport> {
    let rows = crate::audit::explanations::read_explanations(
        &log_dir.join(crate::paths::files::EXPLANATIONS),
    )?;
    let report = score(ds, tag, &rows, encoder)?;
    crate::io::write_atomic(
        &log_dir.join(crate::paths::files::TEXT_METRICS),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(report)
}

/// Reads a `text_metrics.json`.
pub fn read(path: &Path) -> Result<TextReport> {
    crate::io::read_json(path)
}
