//! The independent judge of explanations (docs/design.md §8.8): four measures computed from the
//! reply text and the catalogue metadata only, never from a model and never tuned on results,
//! so that they can catch what an RL policy learns to write against the reward `q(x)`:
//!
//! * **faithfulness** ([`faithful`]): no checkable claim contradicts the metadata of the
//!   recommended item or of the listed history items (years and decades, genre words through
//!   [`faithful::GENRES`], author names, catalogue titles not in the prompt, invented titles);
//! * **completeness** ([`text::ends_sentence`]): the reply ends a sentence;
//! * **artefacts** ([`artefact`]): copied raw fields, list templates, repeated digits or
//!   punctuation;
//! * **readability** ([`text::flesch`]): Flesch reading ease, clamped to [0, 100].
//!
//! [`Judge::judge`] gives one reply's [`Verdict`] (the flags with a reason each), [`Rates::of`]
//! the shares over many, and [`template`] the fixed-template baseline explanation (no LLM).
//!
//! ```
//! use recrl_lib::data::{Dataset, DatasetName, ItemMeta};
//! use recrl_lib::judge::{template, Judge};
//! let mut ds = Dataset::from_sequences(DatasetName::Ml100k, &[vec![1, 2, 3]], 3)?;
//! ds.items[1] = ItemMeta { title: "GoldenEye".into(), year: Some(1995), genres: vec!["Action".into()], ..Default::default() };
//! ds.items[2] = ItemMeta { title: "Tomorrow Never Dies".into(), year: Some(1997), genres: vec!["Action".into(), "Thriller".into()], ..Default::default() };
//! let judge = Judge::new(&ds);
//! let v = judge.judge(&template(&ds, 2, &[1]), 2, &[1]);
//! assert!(v.faithful && v.complete && !v.artefact, "{:?}", v.flags);
//! let v = judge.judge("You may enjoy: Tomorrow Never Dies (1997) \nYou may", 2, &[1]);
//! assert!(!v.complete && v.artefact);
//! # anyhow::Ok(())
//! ```

pub mod artefact;
pub mod faithful;
pub mod text;

#[cfg(test)]
mod tests;

use crate::data::{Dataset, DatasetName};
use serde::{Deserialize, Serialize};

/// Definition of the faithfulness rate (for `audit.json`).
pub const FAITHFULNESS: &str = "share of replies with no contradiction of the catalogue: every 4-digit year 1880-2030 (and decade) is the year of the recommended item or of a listed history item, every genre word names a genre of one of them, every author named is the author of one of them, and no title is named that is not (part of) their titles (a catalogue title of another item, or a title-like phrase in quotes or after 'like'/'such as'/'similar to' in no title)";
/// Definition of the completeness rate.
pub const COMPLETENESS: &str = "share of replies that end a sentence: the last character, after closing quotes, brackets and emoji, is . ! ? or an ellipsis, and a final period does not follow an initial ('by J. K.') or an abbreviation (Mr, Mrs, Ms, Dr, St, Jr, Sr, vs, Prof) unless a named title ends there ('Malcolm X.'); a reply is cut either by the token budget (max_new_tokens: generation stops mid-sentence) or by the character cut (explanation_max_len, 220 characters since issue 31, 160 before: what the simulated user reads, applied before judging); generation stops a reply at its first sentence end (max_sentences 1)";
/// Definition of the artefact rate.
pub const ARTEFACT: &str = "share of replies with at least one artefact: copied raw fields (bracketed years '(1997)', formats '(Paperback)', nested brackets, ISBN-like runs of 9+ digits, field labels 'genres:'/'author:'/'tags:', pipe-separated lists), list templates ('You may also enjoy:', a line starting 'You may enjoy:', two or more 'You may ...:' lines, bullet or numbered lists), repeated digits or punctuation ('3.3.3.3', '1111', '!!!!', '....')";
/// Definition of the readability measure.
pub const READABILITY: &str = "mean Flesch reading ease, 206.835 - 1.015 (words/sentences) - 84.6 (syllables/words), clamped to [0, 100]; syllables = vowel groups (a e i o u y) less a silent final e, at least 1 per word; words = runs of letters, digits and apostrophes with a letter; sentences = runs of . ! ? or an ellipsis followed by whitespace, a closing mark or the end (at least 1); replies without words are left out";

/// The four measures' names and definitions, in report order.
pub const MEASURES: [(&str, &str); 4] = [
    ("faithfulness", FAITHFULNESS),
    ("completeness", COMPLETENESS),
    ("artefact", ARTEFACT),
    ("readability", READABILITY),
];

/// Flags of one reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// No contradiction found.
    pub faithful: bool,
    /// Ends a sentence.
    pub complete: bool,
    /// At least one artefact.
    pub artefact: bool,
    /// Flesch reading ease clamped to [0, 100] (NaN for a text without words).
    pub readability: f64,
    /// Human-readable reasons: `contradiction: …`, `invented title: …`, `cut: …`, `artefact: …`.
    pub flags: Vec<String>,
}

impl Verdict {
    /// The verdict as the four measures' values (1 or 0 for the flags), in [`MEASURES`] order.
    pub fn per_measure(&self) -> [(&'static str, f64); 4] {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        [
            ("faithfulness", b(self.faithful)),
            ("completeness", b(self.complete)),
            ("artefact", b(self.artefact)),
            ("readability", self.readability),
        ]
    }

    /// The reasons that start with `kind` (`"contradiction"`, `"invented title"`, `"cut"`,
    /// `"artefact"`).
    pub fn flags_of<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.flags
            .iter()
            .filter(move |f| f.starts_with(kind))
            .map(String::as_str)
    }
}

/// The judge of one dataset: the dataset plus precomputed title, author and genre indexes.
pub struct Judge<'a> {
    ds: &'a Dataset,
    catalogue: faithful::Catalogue,
}

impl<'a> Judge<'a> {
    /// Indexes the titles, authors and genres of `ds`'s catalogue.
    pub fn new(ds: &'a Dataset) -> Judge<'a> {
        Judge {
            ds,
            catalogue: faithful::Catalogue::new(ds),
        }
    }

    /// The dataset judged against.
    pub fn dataset(&self) -> &'a Dataset {
        self.ds
    }

    /// The indexes the faithfulness checks use.
    pub fn catalogue(&self) -> &faithful::Catalogue {
        &self.catalogue
    }

    /// Judges `text` (the reply as the user reads it) explaining `item` to a user whose prompt
    /// listed `history`.
    pub fn judge(&self, text: &str, item: u32, history: &[u32]) -> Verdict {
        let mut flags = faithful::check(&self.catalogue, self.ds, text, item, history);
        let faithful = flags.is_empty();
        let titles = faithful::title_spans(self.ds, text, item, history);
        let complete = text::ends_sentence(text)
            && text::ends_with_abbreviation(text)
                .is_none_or(|dot| titles.iter().any(|t| t.end == dot));
        if !complete {
            flags.push("cut: no sentence end".to_string());
        }
        let artefacts = artefact::artefacts_except(text, &titles);
        let artefact = !artefacts.is_empty();
        flags.extend(artefacts);
        Verdict {
            faithful,
            complete,
            artefact,
            readability: text::flesch(text),
            flags,
        }
    }
}

/// Rates over replies: share faithful, share complete, share with an artefact, mean
/// readability (over replies with words; NaN if none). Shares are NaN for no replies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Share of faithful replies.
    pub faithfulness: f64,
    /// Share of complete replies.
    pub completeness: f64,
    /// Share of replies with an artefact.
    pub artefact: f64,
    /// Mean readability over the replies with words.
    pub readability: f64,
    /// Number of replies.
    pub n: usize,
}

impl Rates {
    /// The rates of `verdicts`.
    pub fn of(verdicts: &[Verdict]) -> Rates {
        let share = |f: fn(&Verdict) -> bool| {
            crate::stats::mean_or_nan(verdicts.iter().map(|v| if f(v) { 1.0 } else { 0.0 }))
        };
        Rates {
            faithfulness: share(|v| v.faithful),
            completeness: share(|v| v.complete),
            artefact: share(|v| v.artefact),
            readability: crate::stats::mean_or_nan(
                verdicts
                    .iter()
                    .map(|v| v.readability)
                    .filter(|r| !r.is_nan()),
            ),
            n: verdicts.len(),
        }
    }
}

/// The fixed-template baseline explanation (no LLM), from the metadata alone:
/// `Since you enjoyed <last history title>, you may like <title>, a <genres> film from <year>.`
/// for films (genres lower-cased and 'and'-joined), `Since you enjoyed <last history title>,
/// you may like <title> by <author>, from <year>.` for books; missing parts are left out,
/// titles lose their bracketed parts.
pub fn template(ds: &Dataset, item: u32, history: &[u32]) -> String {
    let title_of = |i: u32| {
        ds.items
            .get(i as usize)
            .filter(|_| i > 0)
            .map(|m| faithful::main_title(&m.title))
            .filter(|t| !t.is_empty())
    };
    let meta = ds.items.get(item as usize).cloned().unwrap_or_default();
    let title = title_of(item).unwrap_or("this one").to_string();
    let mut s = match history.iter().rev().find_map(|&h| title_of(h)) {
        Some(h) => format!("Since you enjoyed {h}, you may like {title}"),
        None => format!("You may like {title}"),
    };
    let book =
        matches!(ds.name, DatasetName::Books | DatasetName::Bookcrossing) || meta.author.is_some();
    if book {
        if let Some(a) = meta.author.as_deref().filter(|a| !a.trim().is_empty()) {
            s.push_str(&format!(" by {}", a.trim()));
        }
        if let Some(y) = meta.year {
            s.push_str(&format!(", from {y}"));
        }
    } else {
        let noun = if ds.name == DatasetName::Steam {
            "game"
        } else {
            "film"
        };
        let genres: Vec<String> = meta
            .genres
            .iter()
            .map(|g| g.trim().to_lowercase())
            .filter(|g| !g.is_empty() && g != "unknown" && g != "(no genres listed)")
            .collect();
        let listed = match genres.len() {
            0 => String::new(),
            1 => genres[0].clone(),
            n => format!("{} and {}", genres[..n - 1].join(", "), genres[n - 1]),
        };
        let year = meta.year.map(|y| format!(" from {y}")).unwrap_or_default();
        if !listed.is_empty() {
            let article = if listed.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            s.push_str(&format!(", {article} {listed} {noun}{year}"));
        } else if !year.is_empty() {
            s.push_str(&format!(", a {noun}{year}"));
        }
    }
    if !s.ends_with(['.', '!', '?']) {
        s.push('.');
    }
    s
}
