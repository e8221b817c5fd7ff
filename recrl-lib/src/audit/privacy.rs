//! Privacy checks (DESIGN §8): personal data patterns, cross-user leakage of titles, verbatim
//! memorisation, canary exposure and a loss-threshold membership-inference attack.

use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// `name@host.tld`.
    Email,
    /// 10+ digit phone numbers (optional +country code, separators).
    Phone,
    /// 13–19 digit card numbers that pass the Luhn check.
    Card,
    /// IPv4 addresses (octets ≤ 255).
    Ip,
    /// `http(s)://…` or `www.…`.
    Url,
    /// IBANs that pass the mod-97 check.
    Iban,
}

/// Every [`PiiKind`].
pub const PII_KINDS: [PiiKind; 6] = [
    PiiKind::Email,
    PiiKind::Phone,
    PiiKind::Card,
    PiiKind::Ip,
    PiiKind::Url,
    PiiKind::Iban,
];

fn patterns() -> &'static [(PiiKind, Regex)] {
    static P: OnceLock<Vec<(PiiKind, Regex)>> = OnceLock::new();
    P.get_or_init(|| {
        [
            (
                PiiKind::Email,
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            ),
            (PiiKind::Iban, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
            (PiiKind::Card, r"\b\d(?:[ -]?\d){12,18}\b"),
            (
                PiiKind::Phone,
                r"\+\d{1,3}(?:[ .-]?\d){6,12}\b|(?:\(\d{3}\)|\b\d{3})[ .-]?\d{3}[ .-]?\d{4}\b",
            ),
            (PiiKind::Ip, r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
            (PiiKind::Url, r"(?i)\b(?:https?://|www\.)[^\s<>()]+"),
        ]
        .into_iter()
        .map(|(k, p)| (k, Regex::new(p).expect("PII pattern")))
        .collect()
    })
}

/// The Luhn checksum of a digit string (separators ignored).
pub fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| match (k % 2, d * 2) {
            (1, dd) if dd > 9 => dd - 9,
            (1, dd) => dd,
            _ => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The IBAN check: move the first four characters to the end, letters to 10..35, mod 97 = 1.
pub fn iban_valid(iban: &str) -> bool {
    let s: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() < 15 || s.len() > 34 || !s.is_ascii() {
        return false;
    }
    let mut rem = 0u32;
    for c in s[4..].chars().chain(s[..4].chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for d in if v >= 10 {
            vec![v / 10, v % 10]
        } else {
            vec![v]
        } {
            rem = (rem * 10 + d) % 97;
        }
    }
    rem == 1
}

fn ipv4_valid(s: &str) -> bool {
    s.split('.')
        .all(|o| o.parse::<u32>().is_ok_and(|v| v <= 255))
}

/// Personal data found in `text`: `(kind, matched text)`. Card numbers must pass Luhn, IBANs
/// mod 97 and IPs have octets ≤ 255; a span is reported once, under the first kind that takes
/// it (IBAN, then card, then phone).
pub fn find_pii(text: &str) -> Vec<(PiiKind, String)> {
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut out = Vec::new();
    for (kind, re) in patterns() {
        for m in re.find_iter(text) {
            let valid = match kind {
                PiiKind::Card => luhn_valid(m.as_str()),
                PiiKind::Iban => iban_valid(m.as_str()),
                PiiKind::Ip => ipv4_valid(m.as_str()),
                _ => true,
            };
            let overlaps = taken.iter().any(|&(a, b)| m.start() < b && a < m.end());
            if valid && !overlaps {
                taken.push((m.start(), m.end()));
                out.push((*kind, m.as_str().to_string()));
            }
        }
    }
    out
}

/// Lower-case alphanumeric words.
pub fn plain_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Finds catalogue titles named in text. A title is indexed without a leading or trailing
/// article ("Usual Suspects, The" → "usual suspects") and only when it is distinctive: two or
/// more words, or one word of 8+ letters (so "Heat" or "Ran" in prose is not a mention).
#[derive(Debug, Clone, Default)]
pub struct TitleIndex {
    by_first: FxHashMap<String, Vec<TitleKey>>,
}

/// A title's words and the items that carry it.
type TitleKey = (Vec<String>, Vec<u32>);

const ARTICLES: [&str; 3] = ["the", "a", "an"];

/// The words a title is matched by, or `None` when it is not distinctive.
pub fn title_key(title: &str) -> Option<Vec<String>> {
    let mut w = plain_words(title);
    if title.contains(", ") && w.last().is_some_and(|l| ARTICLES.contains(&l.as_str())) {
        w.pop();
    }
    if w.first().is_some_and(|f| ARTICLES.contains(&f.as_str())) {
        w.remove(0);
    }
    let distinctive = w.len() >= 2 || w.first().is_some_and(|f| f.chars().count() >= 8);
    distinctive.then_some(w)
}

impl TitleIndex {
    /// Indexes `titles[i]` for items `1..titles.len()` (index 0 is padding).
    pub fn new(titles: &[&str]) -> TitleIndex {
        let mut keys: FxHashMap<Vec<String>, Vec<u32>> = FxHashMap::default();
        for (i, t) in titles.iter().enumerate().skip(1) {
            if let Some(k) = title_key(t) {
                keys.entry(k).or_default().push(i as u32);
            }
        }
        let mut idx = TitleIndex::default();
        for (k, ids) in keys {
            idx.by_first.entry(k[0].clone()).or_default().push((k, ids));
        }
        idx
    }

    /// Titles named in `text` (longest match at each position): the item ids of each. A
    /// one-word title counts only when capitalised ("Phenomenon", not "a phenomenon").
    pub fn mentions(&self, text: &str) -> Vec<Vec<u32>> {
        let ws = plain_words(text);
        let capital: Vec<bool> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.starts_with(char::is_uppercase))
            .collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < ws.len() {
            let best = self.by_first.get(&ws[i]).and_then(|cands| {
                cands
                    .iter()
                    .filter(|(k, _)| ws[i..].starts_with(k) && (k.len() > 1 || capital[i]))
                    .max_by_key(|(k, _)| k.len())
            });
            match best {
                Some((k, ids)) => {
                    out.push(ids.clone());
                    i += k.len();
                }
                None => i += 1,
            }
        }
        out
    }
}

/// Titles in an explanation that leak: named, none of their ids in the explanation's own
/// prompt (`prompt_items`), and some id in another user's history. `holders[i]` = users with
/// item `i` in their history; `own[i]` = whether the explaining user has it.
pub fn leaked(
    mentions: &[Vec<u32>],
    prompt_items: &[u32],
    holders: &[u32],
    own: impl Fn(u32) -> bool,
) -> Vec<Vec<u32>> {
    mentions
        .iter()
        .filter(|ids| !ids.iter().any(|i| prompt_items.contains(i)))
        .filter(|ids| ids.iter().any(|&i| holders[i as usize] > u32::from(own(i))))
        .cloned()
        .collect()
}

/// Every n-gram (n ≤ [`NgramIndex::MAX_N`]) of a set of texts, for memorisation checks.
#[derive(Debug, Clone, Default)]
pub struct NgramIndex {
    grams: FxHashSet<u64>,
}

fn gram_hash(ws: &[String]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    ws.hash(&mut h);
    h.finish()
}

impl NgramIndex {
    /// Longest n-gram tracked; longer shared runs report as this.
    pub const MAX_N: usize = 64;

    /// Indexes the word n-grams of `texts`.
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> NgramIndex {
        let mut grams = FxHashSet::default();
        for t in texts {
            let ws = plain_words(t);
            for i in 0..ws.len() {
                for j in i + 1..=(i + Self::MAX_N).min(ws.len()) {
                    grams.insert(gram_hash(&ws[i..j]));
                }
            }
        }
        NgramIndex { grams }
    }

    /// Length in words of the longest n-gram `text` shares with the indexed texts.
    pub fn longest_shared(&self, text: &str) -> usize {
        let ws = plain_words(text);
        let mut best = 0;
        for i in 0..ws.len() {
            // Every prefix of an indexed n-gram is indexed: a match longer than `best` starting
            // at i exists only if the (best + 1)-gram does, and lengths can be probed upward.
            let mut len = best + 1;
            while i + len <= ws.len()
                && len <= Self::MAX_N
                && self.grams.contains(&gram_hash(&ws[i..i + len]))
            {
                best = len;
                len += 1;
            }
        }
        best
    }
}

pub use crate::sim::canary::exposure;

/// Area under the ROC curve of scores where `positive` should score higher: `P(p > n)` plus
/// half of `P(p = n)` (the Mann–Whitney statistic). 0.5 without either class.
pub fn auc(positive: &[f64], negative: &[f64]) -> f64 {
    if positive.is_empty() || negative.is_empty() {
        return 0.5;
    }
    let mut neg = negative.to_vec();
    neg.sort_by(f64::total_cmp);
    let wins: f64 = positive
        .iter()
        .map(|&p| {
            let below = neg.partition_point(|&n| n < p) as f64;
            let upto = neg.partition_point(|&n| n <= p) as f64;
            below + 0.5 * (upto - below)
        })
        .sum();
    wins / (positive.len() * neg.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_iban_checks() {
        assert!(luhn_valid("4539 1488 0343 6467"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("4539 1488 0343 6468"));
        assert!(!luhn_valid("79927398710"));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
    }

    #[test]
    fn pii_patterns() {
        let kinds = |t: &str| find_pii(t).into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            kinds("write to jane.doe+x@mail.example.org"),
            [PiiKind::Email]
        );
        assert_eq!(
            kinds("call (555) 123-4567 or +44 20 7946 0958"),
            [PiiKind::Phone, PiiKind::Phone]
        );
        assert_eq!(kinds("call +1 555 123 4567"), [PiiKind::Phone]);
        assert_eq!(kinds("card 4539 1488 0343 6467"), [PiiKind::Card]);
        // Not Luhn-valid: not a card, and too long for a phone number.
        assert_eq!(kinds("order 4539 1488 0343 6468"), Vec::<PiiKind>::new());
        assert_eq!(kinds("host 192.168.0.1, not 300.1.1.1"), [PiiKind::Ip]);
        assert_eq!(
            kinds("see https://example.com/x and www.imdb.com"),
            [PiiKind::Url, PiiKind::Url]
        );
        assert_eq!(kinds("IBAN GB82 WEST 1234 5698 7654 32"), [PiiKind::Iban]);
        assert_eq!(
            kinds("Toy Story (1995) won 3 awards in 1996."),
            Vec::<PiiKind>::new()
        );
    }

    #[test]
    fn title_mentions_and_a_planted_leak() {
        let titles = [
            "",
            "Usual Suspects, The",
            "Star Wars",
            "Heat",
            "Casablanca",
            "Star Wars Episode V",
        ];
        let idx = TitleIndex::new(&titles);
        assert_eq!(title_key("Heat"), None);
        assert_eq!(
            idx.mentions("Like The Usual Suspects and star wars episode v, not Heat."),
            vec![vec![1], vec![5]]
        );
        assert_eq!(
            idx.mentions("a casablanca-style plot"),
            Vec::<Vec<u32>>::new()
        );
        // User A (prompt: item 1) names Casablanca (item 4), which only user B has seen.
        let holders = [0, 1, 1, 0, 1, 0];
        let m = idx.mentions("If you liked The Usual Suspects, try Casablanca.");
        assert_eq!(leaked(&m, &[1], &holders, |_| false), vec![vec![4]]);
        // Seen only by the user themself: not another user's title.
        assert_eq!(
            leaked(&m, &[1], &holders, |i| i == 4),
            Vec::<Vec<u32>>::new()
        );
        // In the prompt: no leak.
        assert_eq!(
            leaked(&m, &[1, 4], &holders, |_| false),
            Vec::<Vec<u32>>::new()
        );
    }

    #[test]
    fn longest_shared_ngram() {
        let idx = NgramIndex::new(["the quick brown fox jumps over the lazy dog", "a b c"]);
        assert_eq!(idx.longest_shared("a quick brown fox jumps high"), 4);
        assert_eq!(idx.longest_shared("The Lazy Dog!"), 3);
        assert_eq!(idx.longest_shared("nothing shared"), 0);
        assert_eq!(idx.longest_shared("c b a quick"), 1);
    }

    #[test]
    fn exposure_and_auc() {
        // A planted canary with the lowest loss of |R| = 1024 has the maximal exposure, 10 bits.
        let others: Vec<f64> = (0..1023).map(|k| 1.0 + k as f64).collect();
        assert_eq!(exposure(0.5, &others), 10.0);
        // Last place: log2 1024 − log2 1024 = 0.
        assert_eq!(exposure(5000.0, &others), 0.0);
        assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(auc(&[1.0, 2.0], &[1.0, 2.0]), 0.5);
        // Hand count: pairs (2>1), (2=2 → ½), (0<1), (0<2) → 1.5 / 4.
        assert_eq!(auc(&[2.0, 0.0], &[1.0, 2.0]), 0.375);
    }
}
