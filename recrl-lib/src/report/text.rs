//! Text metrics of a set of explanations against references (docs/design.md §8): corpus BLEU-1/4 as
//! sacrebleu computes it (13a tokeniser, exponential smoothing), ROUGE-1/2/L as Google's
//! `rouge-score` computes it (lower-cased alphanumeric tokens, no stemming), distinct-n, the
//! unique sentence ratio (USR) and the feature metrics FMR / FCR / DIV. Scores on the 0–100
//! scale where the reference tools use it (BLEU, ROUGE), shares in [0, 1] otherwise.

use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// sacrebleu's default "13a" tokeniser (mteval-v13a): entities unescaped, punctuation split off,
/// `.` and `,` split unless between digits, `-` split after a digit.
pub fn tokenize_13a(text: &str) -> Vec<String> {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"([\{-~\[-` -&\(-\+:-@/])", " $1 "),
            (r"([^0-9])([\.,])", "$1 $2 "),
            (r"([\.,])([^0-9])", " $1 $2"),
            (r"([0-9])(-)", "$1 $2 "),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).expect("13a rule"), r))
        .collect()
    });
    let mut line = text
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, rep) in rules {
        line = re.replace_all(&line, *rep).into_owned();
    }
    line.split_whitespace().map(str::to_string).collect()
}

/// `rouge-score`'s tokeniser: lower case, every run of characters outside `[a-z0-9]` is a
/// separator (so non-ASCII letters separate too).
pub fn tokenize_rouge(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> FxHashMap<&[String], usize> {
    let mut counts = FxHashMap::default();
    if n > 0 && tokens.len() >= n {
        for g in tokens.windows(n) {
            *counts.entry(g).or_insert(0) += 1;
        }
    }
    counts
}

/// Corpus BLEU with its parts, as sacrebleu reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// BLEU, 0–100.
    pub score: f64,
    /// Modified n-gram precisions, 0–100 (smoothed where no n-gram matched).
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis tokens.
    pub sys_len: usize,
    /// Reference tokens.
    pub ref_len: usize,
}

/// Corpus BLEU up to n-grams of `order` with one reference per hypothesis: sacrebleu's
/// `BLEU(max_ngram_order=order).corpus_score` (13a tokens, "exp" smoothing: the k-th order
/// without a match gets precision `100 / (2^k · total)`).
pub fn corpus_bleu(hypotheses: &[&str], references: &[&str], order: usize) -> Bleu {
    assert_eq!(
        hypotheses.len(),
        references.len(),
        "one reference per hypothesis"
    );
    let (mut correct, mut total) = (vec![0usize; order], vec![0usize; order]);
    let (mut sys_len, mut ref_len) = (0, 0);
    for (h, r) in hypotheses.iter().zip(references) {
        let (h, r) = (tokenize_13a(h), tokenize_13a(r));
        sys_len += h.len();
        ref_len += r.len();
        for n in 1..=order {
            let rc = ngram_counts(&r, n);
            for (g, c) in ngram_counts(&h, n) {
                correct[n - 1] += c.min(rc.get(g).copied().unwrap_or(0));
            }
            total[n - 1] += (h.len() + 1).saturating_sub(n);
        }
    }
    let mut precisions = vec![0.0; order];
    let mut smooth = 1.0;
    for n in 0..order {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let bp = if sys_len >= ref_len {
        1.0
    } else if sys_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    };
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    let score = bp * (precisions.iter().map(|&p| log(p)).sum::<f64>() / order as f64).exp();
    Bleu {
        score,
        precisions,
        bp,
        sys_len,
        ref_len,
    }
}

/// Precision, recall and F1 of one ROUGE variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// Precision.
    pub p: f64,
    /// Recall.
    pub r: f64,
    /// F1.
    pub f: f64,
}

impl Prf {
    fn of(overlap: usize, hyp: usize, reference: usize) -> Prf {
        let p = overlap as f64 / hyp.max(1) as f64;
        let r = overlap as f64 / reference.max(1) as f64;
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        Prf { p, r, f }
    }
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one hypothesis against one reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rouge {
    /// Unigram overlap.
    pub rouge1: Prf,
    /// Bigram overlap.
    pub rouge2: Prf,
    /// Longest common subsequence.
    pub rouge_l: Prf,
}

fn rouge_n(h: &[String], r: &[String], n: usize) -> Prf {
    let (hc, rc) = (ngram_counts(h, n), ngram_counts(r, n));
    let overlap = hc
        .iter()
        .map(|(g, c)| (*c).min(rc.get(g).copied().unwrap_or(0)))
        .sum();
    Prf::of(overlap, hc.values().sum(), rc.values().sum())
}

fn lcs(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// `rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference, hypothesis)`.
pub fn rouge(hypothesis: &str, reference: &str) -> Rouge {
    let (h, r) = (tokenize_rouge(hypothesis), tokenize_rouge(reference));
    let rouge_l = if h.is_empty() || r.is_empty() {
        Prf::default()
    } else {
        Prf::of(lcs(&h, &r), h.len(), r.len())
    };
    Rouge {
        rouge1: rouge_n(&h, &r, 1),
        rouge2: rouge_n(&h, &r, 2),
        rouge_l,
    }
}

/// Distinct-n: distinct n-grams over all n-grams of the set (ROUGE tokens); 0 for no n-grams.
pub fn distinct_n(texts: &[&str], n: usize) -> f64 {
    let tokens: Vec<Vec<String>> = texts.iter().map(|t| tokenize_rouge(t)).collect();
    let mut seen = FxHashSet::default();
    let mut total = 0;
    for t in &tokens {
        for (g, c) in ngram_counts(t, n) {
            seen.insert(g);
            total += c;
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

/// Unique sentence ratio: distinct explanations (compared as ROUGE token sequences) over all.
pub fn usr(texts: &[&str]) -> f64 {
    let unique: FxHashSet<Vec<String>> = texts.iter().map(|t| tokenize_rouge(t)).collect();
    unique.len() as f64 / texts.len().max(1) as f64
}

fn contains_phrase(tokens: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && tokens.windows(phrase.len()).any(|w| w == phrase)
}

/// Whether `text` mentions `feature`: its ROUGE tokens appear as a whole-word phrase,
/// case-insensitively ("Sci-Fi" matches "sci fi" and "Sci-Fi", not "scientific").
pub fn mentions(text: &str, feature: &str) -> bool {
    contains_phrase(&tokenize_rouge(text), &tokenize_rouge(feature))
}

/// Feature metrics of explanations (Li et al.'s PETER): FMR, the share of explanations that
/// mention one of their own item's features; FCR, distinct catalogue features mentioned over all
/// catalogue features; DIV, the mean number of mentioned features that two explanations share,
/// over all pairs (lower is more diverse).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureScores {
    /// Feature matching ratio.
    pub fmr: f64,
    /// Feature coverage ratio.
    pub fcr: f64,
    /// Feature diversity.
    pub div: f64,
}

/// [`FeatureScores`] of `texts`; `own[k]` are the features of the item `texts[k]` explains and
/// `catalogue` every distinct feature of the dataset.
pub fn feature_scores(texts: &[&str], own: &[Vec<String>], catalogue: &[String]) -> FeatureScores {
    assert_eq!(texts.len(), own.len(), "one feature list per explanation");
    let phrases: Vec<Vec<String>> = catalogue.iter().map(|f| tokenize_rouge(f)).collect();
    let mut hits = vec![0usize; catalogue.len()];
    let mut matched = 0;
    for (text, own) in texts.iter().zip(own) {
        let tokens = tokenize_rouge(text);
        if own
            .iter()
            .any(|f| contains_phrase(&tokens, &tokenize_rouge(f)))
        {
            matched += 1;
        }
        for (h, p) in hits.iter_mut().zip(&phrases) {
            *h += contains_phrase(&tokens, p) as usize;
        }
    }
    let n = texts.len() as f64;
    // Σ over pairs of |M_i ∩ M_j| = Σ over features of C(hits, 2).
    let shared: f64 = hits
        .iter()
        .map(|&c| (c * c.saturating_sub(1)) as f64 / 2.0)
        .sum();
    let pairs = n * (n - 1.0) / 2.0;
    FeatureScores {
        fmr: matched as f64 / n.max(1.0),
        fcr: hits.iter().filter(|&&c| c > 0).count() as f64 / catalogue.len().max(1) as f64,
        div: if pairs > 0.0 { shared / pairs } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rouge_by_hand() {
        // h: the cat sat on the mat (6), r: the cat is on the mat (6)
        let s = rouge("The cat sat on the mat", "the cat is on the mat.");
        // unigrams: the×2, cat, on, mat match = 5 of 6 each way
        assert!((s.rouge1.p - 5.0 / 6.0).abs() < 1e-12 && (s.rouge1.r - 5.0 / 6.0).abs() < 1e-12);
        // bigrams: "the cat", "on the", "the mat" = 3 of 5
        assert!((s.rouge2.f - 0.6).abs() < 1e-12);
        // LCS: the cat on the mat = 5
        assert!((s.rouge_l.f - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(rouge("", "x").rouge_l, Prf::default());
    }

    #[test]
    fn bleu_of_an_exact_copy_is_100() {
        let b = corpus_bleu(&["a b c d e"], &["a b c d e"], 4);
        assert!((b.score - 100.0).abs() < 1e-9 && b.bp == 1.0);
        // 4 unigrams of 2 match; no bigram: smoothed 100/(2·3); BLEU-2 = sqrt(50 · 16.67)
        let b = corpus_bleu(&["a x b y"], &["a b"], 2);
        assert!((b.precisions[1] - 100.0 / 6.0).abs() < 1e-9);
        assert!((b.score - (50.0f64 * 100.0 / 6.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn distinct_usr_and_features_by_hand() {
        let texts = ["a b a", "a b", "A B!"];
        // unigrams: a,b,a,a,b,a,b = 7, distinct 2; bigrams: ab, ba, ab, ab = 4, distinct 2
        assert!((distinct_n(&texts, 1) - 2.0 / 7.0).abs() < 1e-12);
        assert!((distinct_n(&texts, 2) - 0.5).abs() < 1e-12);
        assert!((usr(&texts) - 2.0 / 3.0).abs() < 1e-12);
        let cat: Vec<String> = ["Sci-Fi", "Drama", "War"].map(String::from).to_vec();
        let own = vec![vec!["Sci-Fi".to_string()], vec!["War".to_string()], vec![]];
        let f = feature_scores(
            &["a sci fi drama", "scientific drama", "no features"],
            &own,
            &cat,
        );
        assert!((f.fmr - 1.0 / 3.0).abs() < 1e-12);
        assert!((f.fcr - 2.0 / 3.0).abs() < 1e-12);
        // pairs: (1,2) share Drama, others none: 1 / 3
        assert!((f.div - 1.0 / 3.0).abs() < 1e-12);
        assert!(mentions("Great SCI-FI!", "Sci-Fi") && !mentions("scifi", "Sci-Fi"));
    }
}
