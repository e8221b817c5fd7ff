//! Faithfulness: every checkable claim of a reply agrees with the metadata of the recommended
//! item or of the history items its prompt listed (docs/design.md §8.8). Four kinds of claims
//! are checked: years and decades, genre words (through [`GENRES`]), author names, and titles.

use super::text::{is_minor, quoted, title_cased, tokens, Token, ARTICLES};
use crate::data::Dataset;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// Catalogue phrases (titles or author names) indexed by their first word.
#[derive(Debug, Clone, Default)]
pub struct PhraseIndex {
    by_first: HashMap<String, Vec<Phrase>>,
    len: usize,
}

/// One indexed phrase: its words, whether it is distinctive enough to be recognised without
/// quotes, and the items it belongs to.
#[derive(Debug, Clone)]
struct Phrase {
    words: Vec<String>,
    distinctive: bool,
    items: Vec<u32>,
}

/// A phrase found in a reply: its length in tokens and its items.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<'a> {
    /// Length in tokens.
    pub len: usize,
    /// The items the phrase belongs to.
    pub items: &'a [u32],
}

impl PhraseIndex {
    /// Adds `words` for `item` (distinctive or not).
    fn add(&mut self, words: Vec<String>, distinctive: bool, item: u32) {
        let Some(first) = words.first().cloned() else {
            return;
        };
        let list = self.by_first.entry(first).or_default();
        match list.iter_mut().find(|p| p.words == words) {
            Some(p) => {
                if !p.items.contains(&item) {
                    p.items.push(item);
                }
            }
            None => {
                self.len += 1;
                list.push(Phrase {
                    words,
                    distinctive,
                    items: vec![item],
                })
            }
        }
    }

    /// Number of distinct phrases.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The longest phrase the reply names at token `i`: a distinctive phrase written as a title
    /// ([`title_cased`]), or any phrase standing in quotes.
    pub fn longest_at(&self, text: &str, toks: &[Token], i: usize) -> Option<Found<'_>> {
        let cands = self.by_first.get(&toks[i].norm)?;
        cands
            .iter()
            .filter(|p| {
                let k = p.words.len();
                i + k <= toks.len()
                    && toks[i..i + k]
                        .iter()
                        .zip(&p.words)
                        .all(|(t, w)| t.norm == *w)
                    && ((p.distinctive && title_cased(&toks[i..i + k]))
                        || (toks[i].capital && quoted(text, toks[i].start, toks[i + k - 1].end)))
            })
            .max_by_key(|p| p.words.len())
            .map(|p| Found {
                len: p.words.len(),
                items: &p.items,
            })
    }
}

/// A title without its bracketed parts: "One for the Money (Stephanie Plum Novels (Paperback))"
/// → "One for the Money" (the whole title when nothing precedes the bracket).
pub fn main_title(title: &str) -> &str {
    match title.find('(') {
        Some(at) if !title[..at].trim().is_empty() => title[..at].trim(),
        _ => title.trim(),
    }
}

/// The words a title is recognised by: without a leading article, and without a trailing one
/// moved behind a comma ("Usual Suspects, The" → `usual suspects`).
fn title_words(title: &str) -> Vec<String> {
    let mut w: Vec<String> = tokens(title).into_iter().map(|t| t.norm).collect();
    if title.contains(", ")
        && w.len() > 1
        && w.last().is_some_and(|l| ARTICLES.contains(&l.as_str()))
    {
        w.pop();
    }
    if w.len() > 1 && ARTICLES.contains(&w[0].as_str()) {
        w.remove(0);
    }
    w
}

/// Distinctive: two or more words and at least 8 characters with single spaces ("Die Hard",
/// "Star Wars"; not "Heat", "It", "The Rock" nor "In & Out").
pub fn distinctive(words: &[String]) -> bool {
    let chars = || words.iter().map(|w| w.chars().count()).sum::<usize>() + words.len() - 1;
    words.len() >= 2 && chars() >= 8
}

/// The keys a catalogue title is indexed by: its main title ([`main_title`]) and, when it has
/// a subtitle, the part before the colon ("The Fortress of Solitude : A Novel" → also
/// `fortress of solitude`).
pub fn title_keys(title: &str) -> Vec<Vec<String>> {
    let main = main_title(title);
    let mut keys = vec![title_words(main)];
    if let Some(at) = main.find(':') {
        let head = title_words(&main[..at]);
        if !head.is_empty() && head != keys[0] {
            keys.push(head);
        }
    }
    keys.retain(|k| !k.is_empty());
    keys
}

/// Byte ranges of `text` where it names the recommended item's or a history item's main title
/// ([`main_title`], 4+ characters) verbatim, ignoring ASCII case.
pub fn title_spans(ds: &Dataset, text: &str, item: u32, history: &[u32]) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    for &i in std::iter::once(&item).chain(history) {
        let Some(m) = ds.items.get(i as usize).filter(|_| i > 0) else {
            continue;
        };
        let t = main_title(&m.title).to_ascii_lowercase();
        if t.chars().count() < 4 {
            continue;
        }
        out.extend(lower.match_indices(&t).map(|(at, _)| at..at + t.len()));
    }
    out
}

/// Author names: all their words, initials included ("J.K. Rowling" → `j k rowling`).
fn author_words(author: &str) -> Vec<String> {
    tokens(author).into_iter().map(|t| t.norm).collect()
}

/// Words of a name without initials (single letters), for matching "Rowling" or "Joanne
/// Rowling" against "J. K. Rowling".
fn name_core(words: &[String]) -> Vec<&str> {
    words
        .iter()
        .filter(|w| w.chars().count() > 1)
        .map(String::as_str)
        .collect()
}

/// Whether the name `words` agrees with the author `of`: its non-initial words all occur in
/// the author's name.
fn same_author(words: &[String], of: &[String]) -> bool {
    let core = name_core(words);
    let theirs = name_core(of);
    !core.is_empty() && core.iter().all(|w| theirs.contains(w))
}

/// One synonym of a genre: the words it is written with (alternatives per position), and the
/// next words that make it something else ("musical score" is not a Musical).
pub struct Synonym {
    /// The words, one slice of alternatives per position.
    pub words: &'static [&'static [&'static str]],
    /// Next words that cancel the claim.
    pub not_before: &'static [&'static str],
}

const fn syn(words: &'static [&'static [&'static str]]) -> Synonym {
    Synonym {
        words,
        not_before: &[],
    }
}

/// The genre synonym map: for each catalogue genre (its normalised names: lower case, letters
/// and digits only, so "Children's" is `childrens`), the ways a reply names it.
pub const GENRES: &[(&str, &[&str], &[Synonym])] = &[
    ("Action", &["action"], &[syn(&[&["action"]])]),
    (
        "Adventure",
        &["adventure"],
        &[syn(&[&["adventure", "adventures"]])],
    ),
    (
        "Animation",
        &["animation"],
        &[syn(&[&["animation", "animated", "cartoon", "cartoons"]])],
    ),
    (
        "Children's",
        &["childrens", "children"],
        &[
            syn(&[&["children"], &["s"]]),
            syn(&[&["for"], &["kids", "children"]]),
            syn(&[
                &["kids", "kid"],
                &["film", "films", "movie", "movies", "friendly"],
            ]),
            syn(&[
                &["family"],
                &["film", "films", "movie", "movies", "friendly"],
            ]),
        ],
    ),
    (
        "Comedy",
        &["comedy"],
        &[
            syn(&[&["comedy", "comedies", "comedic", "romcom", "romcoms"]]),
            syn(&[&["rom"], &["com", "coms"]]),
        ],
    ),
    ("Crime", &["crime"], &[syn(&[&["crime"]])]),
    (
        "Documentary",
        &["documentary"],
        &[syn(&[&["documentary", "documentaries"]])],
    ),
    ("Drama", &["drama"], &[syn(&[&["drama", "dramas"]])]),
    (
        "Fantasy",
        &["fantasy"],
        &[syn(&[&["fantasy", "fantasies"]])],
    ),
    ("Film-Noir", &["filmnoir", "noir"], &[syn(&[&["noir"]])]),
    (
        "Horror",
        &["horror"],
        &[syn(&[&["horror", "slasher", "slashers"]])],
    ),
    (
        "Musical",
        &["musical"],
        &[
            Synonym {
                words: &[&["musical"]],
                not_before: &[
                    "score",
                    "scores",
                    "soundtrack",
                    "soundtracks",
                    "talent",
                    "talents",
                    "instrument",
                    "instruments",
                    "taste",
                    "tastes",
                    "career",
                    "background",
                ],
            },
            syn(&[&["musicals"]]),
        ],
    ),
    (
        "Mystery",
        &["mystery"],
        &[syn(&[&["mystery", "mysteries", "whodunit", "whodunnit"]])],
    ),
    (
        "Romance",
        &["romance"],
        &[
            syn(&[&["romance", "romances", "romantic", "romcom", "romcoms"]]),
            syn(&[&["rom"], &["com", "coms"]]),
        ],
    ),
    (
        "Sci-Fi",
        &["scifi"],
        &[
            syn(&[&["scifi"]]),
            syn(&[&["sci"], &["fi"]]),
            syn(&[&["science"], &["fiction"]]),
        ],
    ),
    (
        "Thriller",
        &["thriller"],
        &[syn(&[&["thriller", "thrillers"]])],
    ),
    (
        "War",
        &["war"],
        &[syn(&[
            &["war"],
            &[
                "film", "films", "movie", "movies", "drama", "dramas", "epic", "epics", "story",
                "stories", "picture", "flick",
            ],
        ])],
    ),
    (
        "Western",
        &["western"],
        &[
            Synonym {
                words: &[&["western"]],
                not_before: &[
                    "europe",
                    "european",
                    "culture",
                    "cultures",
                    "world",
                    "society",
                    "societies",
                    "civilization",
                    "civilisation",
                    "values",
                    "countries",
                    "nations",
                    "hemisphere",
                    "front",
                    "medicine",
                    "philosophy",
                    "states",
                    "music",
                ],
            },
            syn(&[&["westerns"]]),
        ],
    ),
];

/// A catalogue genre name normalised: lower case, letters and digits only.
pub fn genre_key(genre: &str) -> String {
    genre
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The genre claims at token `i` (not inside `covered`): `(genre index in GENRES, length)`.
fn genre_at(toks: &[Token], covered: &[bool], i: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (g, (_, _, syns)) in GENRES.iter().enumerate() {
        for s in syns.iter() {
            let k = s.words.len();
            if i + k > toks.len() || covered[i..i + k].iter().any(|&c| c) {
                continue;
            }
            let hit = s
                .words
                .iter()
                .zip(&toks[i..i + k])
                .all(|(alts, t)| alts.contains(&t.norm.as_str()));
            let blocked = toks
                .get(i + k)
                .is_some_and(|t| s.not_before.contains(&t.norm.as_str()));
            if hit && !blocked {
                out.push((g, k));
                break;
            }
        }
    }
    out
}

/// What the catalogue offers the checks: title and author indexes and the genre vocabulary.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// Every title key of every item.
    pub titles: PhraseIndex,
    /// Every author name (two or more words) of every item.
    pub authors: PhraseIndex,
    /// Normalised genre names that occur in the catalogue ([`genre_key`]).
    pub genres: HashSet<String>,
    /// Whether any item has an author (books).
    pub has_authors: bool,
}

impl Catalogue {
    /// Indexes the items `1..=n` of `ds`.
    pub fn new(ds: &Dataset) -> Catalogue {
        let mut c = Catalogue::default();
        for (i, m) in ds.items.iter().enumerate().skip(1) {
            let item = i as u32;
            for k in title_keys(&m.title) {
                let d = distinctive(&k);
                c.titles.add(k, d, item);
            }
            if let Some(a) = &m.author {
                let w = author_words(a);
                if !w.is_empty() {
                    c.has_authors = true;
                }
                if distinctive(&w) {
                    c.authors.add(w, true, item);
                }
            }
            for g in &m.genres {
                c.genres.insert(genre_key(g));
            }
        }
        c
    }
}

/// The metadata a reply may draw on: the recommended item's and the history items'.
struct Allowed {
    ids: HashSet<u32>,
    /// Word lists of every full title and author name (any contiguous part of one is allowed).
    phrases: Vec<Vec<String>>,
    authors: Vec<Vec<String>>,
    years: Vec<i32>,
    genres: HashSet<String>,
}

impl Allowed {
    fn new(ds: &Dataset, item: u32, history: &[u32]) -> Allowed {
        let mut a = Allowed {
            ids: HashSet::new(),
            phrases: Vec::new(),
            authors: Vec::new(),
            years: Vec::new(),
            genres: HashSet::new(),
        };
        for &i in std::iter::once(&item).chain(history) {
            let Some(m) = ds.items.get(i as usize).filter(|_| i > 0) else {
                continue;
            };
            a.ids.insert(i);
            let t: Vec<String> = tokens(&m.title).into_iter().map(|t| t.norm).collect();
            for tok in &t {
                if tok.len() == 4 && tok.chars().all(|c| c.is_ascii_digit()) {
                    a.years.push(tok.parse().expect("four digits"));
                }
            }
            a.phrases.push(t);
            if let Some(au) = &m.author {
                let w = author_words(au);
                a.phrases.push(w.clone());
                a.authors.push(w);
            }
            a.years.extend(m.year);
            a.genres.extend(m.genres.iter().map(|g| genre_key(g)));
        }
        a
    }

    /// The longest run of tokens from `i` that is a contiguous part of an allowed title or
    /// author name: two or more words, or the whole of a one-word title or name.
    fn longest_at(&self, toks: &[Token], i: usize) -> usize {
        let mut best = 0;
        for p in &self.phrases {
            for s in 0..p.len() {
                let mut k = 0;
                while s + k < p.len() && i + k < toks.len() && toks[i + k].norm == p[s + k] {
                    k += 1;
                }
                let core = title_core_len(p);
                if k > best
                    && (k >= 2 || (k == 1 && core == 1 && !ARTICLES.contains(&p[s].as_str())))
                {
                    best = k;
                }
            }
        }
        best
    }
}

/// Words of a title or name that are not articles.
fn title_core_len(p: &[String]) -> usize {
    p.iter().filter(|w| !ARTICLES.contains(&w.as_str())).count()
}

/// Text of tokens `i..j` as written.
fn span<'t>(text: &'t str, toks: &[Token], i: usize, j: usize) -> &'t str {
    &text[toks[i].start..toks[j - 1].end]
}

/// Checks every claim of `text` against the catalogue; returns the reasons of the failed
/// checks (`contradiction: …`, `invented title: …`), each once. Years are checked only when
/// the item has a year, genres only when it has genres and the catalogue has the genre, authors
/// only when the catalogue has authors.
pub fn check(cat: &Catalogue, ds: &Dataset, text: &str, item: u32, history: &[u32]) -> Vec<String> {
    let toks = tokens(text);
    let allowed = Allowed::new(ds, item, history);
    let mut covered = vec![false; toks.len()];
    let mut flags = Vec::new();
    titles(cat, &allowed, text, &toks, &mut covered, &mut flags);
    if cat.has_authors {
        authors(cat, &allowed, text, &toks, &mut covered, &mut flags);
    }
    uncatalogued(text, &toks, &covered, &mut flags);
    let item_meta = ds.items.get(item as usize).filter(|_| item > 0);
    if item_meta.is_some_and(|m| m.year.is_some()) {
        years(&allowed, text, &toks, &covered, &mut flags);
    }
    if item_meta.is_some_and(|m| !m.genres.is_empty()) {
        genres(cat, &allowed, &toks, &covered, &mut flags);
    }
    let mut seen = HashSet::new();
    flags.retain(|f| seen.insert(f.clone()));
    flags
}

/// Titles: a catalogue title named in the reply that is not (part of) the recommended item's or
/// a history item's title is an invented reference.
fn titles(
    cat: &Catalogue,
    allowed: &Allowed,
    text: &str,
    toks: &[Token],
    covered: &mut [bool],
    flags: &mut Vec<String>,
) {
    let mut i = 0;
    while i < toks.len() {
        let own = allowed.longest_at(toks, i);
        let found = cat.titles.longest_at(text, toks, i);
        match found {
            Some(f) if f.len > own && !f.items.iter().any(|x| allowed.ids.contains(x)) => {
                flags.push(format!(
                    "invented title: \"{}\"",
                    span(text, toks, i, i + f.len)
                ));
                covered[i..i + f.len].iter_mut().for_each(|c| *c = true);
                i += f.len;
            }
            Some(f) if f.len > own => {
                covered[i..i + f.len].iter_mut().for_each(|c| *c = true);
                i += f.len;
            }
            _ if own > 0 => {
                covered[i..i + own].iter_mut().for_each(|c| *c = true);
                i += own;
            }
            _ => i += 1,
        }
    }
}

/// Authors: a catalogue author named in the reply who is not the author of the item or of a
/// history item, and "by <Capitalised Name>" naming someone else, are contradictions.
fn authors(
    cat: &Catalogue,
    allowed: &Allowed,
    text: &str,
    toks: &[Token],
    covered: &mut [bool],
    flags: &mut Vec<String>,
) {
    let mut i = 0;
    while i < toks.len() {
        if covered[i] {
            i += 1;
            continue;
        }
        let Some(f) = cat.authors.longest_at(text, toks, i) else {
            i += 1;
            continue;
        };
        if covered[i..i + f.len].iter().any(|&c| c) {
            i += 1;
            continue;
        }
        let words: Vec<String> = toks[i..i + f.len].iter().map(|t| t.norm.clone()).collect();
        if !allowed.authors.iter().any(|a| same_author(&words, a)) {
            flags.push(format!(
                "contradiction: author \"{}\" is not the author of the item or of a history item",
                span(text, toks, i, i + f.len)
            ));
        }
        covered[i..i + f.len].iter_mut().for_each(|c| *c = true);
        i += f.len;
    }
    if allowed.authors.is_empty() {
        return;
    }
    for b in 0..toks.len() {
        if toks[b].norm != "by" || b + 1 >= toks.len() || covered[b + 1] {
            continue;
        }
        let mut j = b + 1;
        while j < toks.len() && j - b <= 4 && toks[j].capital && !covered[j] {
            let gap = &text[toks[j - 1].end..toks[j].start];
            if j > b + 1
                && !gap
                    .chars()
                    .all(|c| c.is_whitespace() || c == '.' || c == '-')
            {
                break;
            }
            if j == b + 1 && !gap.chars().all(char::is_whitespace) {
                break;
            }
            j += 1;
        }
        if j == b + 1 || NOT_NAMES.contains(&toks[b + 1].norm.as_str()) {
            continue;
        }
        let words: Vec<String> = toks[b + 1..j].iter().map(|t| t.norm.clone()).collect();
        if name_core(&words).is_empty() || toks[b + 1].norm.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if !allowed.authors.iter().any(|a| same_author(&words, a)) {
            flags.push(format!(
                "contradiction: \"by {}\" names someone who is not the author of the item or of a history item",
                span(text, toks, b + 1, j)
            ));
        }
        covered[b + 1..j].iter_mut().for_each(|c| *c = true);
    }
}

/// Capitalised words after "by" that are not names.
const NOT_NAMES: &[&str] = &[
    "the",
    "a",
    "an",
    "i",
    "me",
    "you",
    "far",
    "its",
    "his",
    "her",
    "their",
    "this",
    "that",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Uncatalogued invented titles: a title-like phrase that matches no listed and no catalogued
/// title, after "like", "such as" or "similar to" (three or more words, or an article and a
/// word: "The Dark Knight", "The Matrix"; not a two-word name such as "Tom Hanks"), or in
/// quotes (two or more title-cased words); also such a phrase that extends a known title with
/// words of its own ("Star Wars: Rise of the Clones", "Fargo Returns" where only "Star Wars"
/// and "Fargo" are titles: [`extends_title`]).
fn uncatalogued(text: &str, toks: &[Token], covered: &[bool], flags: &mut Vec<String>) {
    let mut starts = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        let trigger = t.norm == "like"
            || (t.norm == "as" && k > 0 && toks[k - 1].norm == "such")
            || (t.norm == "to" && k > 0 && toks[k - 1].norm == "similar");
        if trigger && k + 1 < toks.len() {
            let gap = &text[t.end..toks[k + 1].start];
            if gap.chars().all(char::is_whitespace) {
                starts.push(k + 1);
            }
        }
    }
    for s in starts {
        let mut j = s;
        while j < toks.len() {
            let t = &toks[j];
            let joins = j == s || {
                let gap = &text[toks[j - 1].end..t.start];
                gap.chars()
                    .all(|c| c.is_whitespace() || matches!(c, ':' | '-' | '&'))
            };
            let word =
                t.capital || (j > s && is_minor(&t.norm) && !STOPS.contains(&t.norm.as_str()));
            if !joins || !word || STOPS.contains(&t.norm.as_str()) {
                break;
            }
            j += 1;
        }
        while j > s && !toks[j - 1].capital {
            j -= 1;
        }
        let n = j - s;
        let big = toks[s..j]
            .iter()
            .filter(|t| t.capital && !is_minor(&t.norm) && t.norm.chars().count() > 1)
            .count();
        let article = ARTICLES.contains(&toks[s].norm.as_str());
        let title_like = (n >= 3 && big >= 2) || (article && n >= 2 && big >= 1);
        if title_like
            && (!covered[s..j].iter().any(|&c| c) || extends_title(&toks[s..j], &covered[s..j]))
            && !PRONOUNS.contains(&toks[s].norm.as_str())
        {
            flags.push(format!(
                "invented title: \"{}\" (in no listed or catalogued title)",
                span(text, toks, s, j)
            ));
        }
    }
    for (open, close) in [('"', '"'), ('\u{201C}', '\u{201D}')] {
        let mut from = 0;
        while let Some(a) = text[from..].find(open).map(|a| a + from) {
            let inner_start = a + open.len_utf8();
            let Some(b) = text[inner_start..].find(close).map(|b| b + inner_start) else {
                break;
            };
            let inside: Vec<usize> = (0..toks.len())
                .filter(|&k| toks[k].start >= inner_start && toks[k].end <= b)
                .collect();
            if let (Some(&s), Some(&e)) = (inside.first(), inside.last()) {
                let q = &toks[s..=e];
                if q.len() >= 2
                    && q.len() <= 12
                    && title_cased(q)
                    && (!covered[s..=e].iter().any(|&c| c) || extends_title(q, &covered[s..=e]))
                {
                    flags.push(format!(
                        "invented title: \"{}\" (in no listed or catalogued title)",
                        span(text, toks, s, e + 1)
                    ));
                }
            }
            from = b + close.len_utf8();
        }
    }
}

/// Whether a title-like phrase that names a known title also holds a capitalised word of its
/// own (two or more letters, not a minor word): a sequel or subtitle the catalogue does not have.
fn extends_title(toks: &[Token], covered: &[bool]) -> bool {
    toks.iter().zip(covered).any(|(t, &c)| {
        !c && t.capital
            && t.norm.chars().count() > 1
            && t.norm.chars().any(char::is_alphabetic)
            && !is_minor(&t.norm)
    })
}

/// Words that end a title-like run after "like" (lists and clauses go on with them).
const STOPS: &[&str] = &["and", "or", "nor", "but"];

/// Capitalised words after "like" that do not start a title.
const PRONOUNS: &[&str] = &[
    "i", "you", "he", "she", "it", "we", "they", "this", "that", "these", "those",
];

/// Years: a year 1880–2030 must be the year of the item or of a history item (or a number in
/// one of their titles); a decade ("1990s", "the 90s", "'90s") must contain one.
fn years(allowed: &Allowed, text: &str, toks: &[Token], covered: &[bool], flags: &mut Vec<String>) {
    for (k, t) in toks.iter().enumerate() {
        if covered[k] || !t.norm.is_ascii() {
            continue;
        }
        let n = &t.norm;
        let plural = toks.get(k + 1).is_some_and(|s| {
            s.norm == "s"
                && text[t.end..s.start]
                    .chars()
                    .all(|c| c == '\'' || c == '\u{2019}')
        });
        if n.len() == 4 && n.ends_with('0') && plural && n.chars().all(|c| c.is_ascii_digit()) {
            // "the 1990's": a decade.
            let d: i32 = n.parse().expect("four digits");
            if (1880..=2030).contains(&d) && !allowed.years.iter().any(|y| (d..d + 10).contains(y))
            {
                flags.push(format!(
                    "contradiction: decade {d}s contains no year of the item or of a history item"
                ));
            }
            continue;
        }
        if n.len() == 4 && n.chars().all(|c| c.is_ascii_digit()) {
            let y: i32 = n.parse().expect("four digits");
            if (1880..=2030).contains(&y) && !allowed.years.contains(&y) {
                flags.push(format!(
                    "contradiction: year {y} is not the year of the item or of a history item"
                ));
            }
            continue;
        }
        let decade =
            if n.len() == 5 && n.ends_with("0s") && n[..4].chars().all(|c| c.is_ascii_digit()) {
                n[..4]
                    .parse::<i32>()
                    .ok()
                    .filter(|d| (1880..=2030).contains(d))
            } else if n.len() == 3 && n.ends_with("0s") && n.as_bytes()[0].is_ascii_digit() {
                let apostrophe = text[..t.start]
                    .chars()
                    .next_back()
                    .is_some_and(|c| matches!(c, '\'' | '\u{2019}' | '\u{2018}'));
                let after_the = k > 0 && toks[k - 1].norm == "the";
                match n.as_bytes()[0] - b'0' {
                    d @ 3..=9 if apostrophe || after_the => Some(1900 + 10 * d as i32),
                    0 if apostrophe || after_the => Some(2000),
                    _ => None,
                }
            } else {
                None
            };
        if let Some(d) = decade {
            if !allowed.years.iter().any(|y| (d..d + 10).contains(y)) {
                flags.push(format!(
                    "contradiction: decade {d}s contains no year of the item or of a history item"
                ));
            }
        }
    }
}

/// Genres: a genre word of [`GENRES`] whose genre the catalogue has, but neither the item nor a
/// history item, is a contradiction.
fn genres(
    cat: &Catalogue,
    allowed: &Allowed,
    toks: &[Token],
    covered: &[bool],
    flags: &mut Vec<String>,
) {
    let mut reported = HashSet::new();
    for i in 0..toks.len() {
        for (g, k) in genre_at(toks, covered, i) {
            let (name, keys, _) = &GENRES[g];
            if !keys.iter().any(|key| cat.genres.contains(*key)) {
                continue;
            }
            if keys.iter().any(|key| allowed.genres.contains(*key)) {
                continue;
            }
            let said: Vec<&str> = toks[i..i + k].iter().map(|t| t.norm.as_str()).collect();
            if reported.insert(g) {
                flags.push(format!(
                    "contradiction: genre \"{}\" ({name}) is not a genre of the item or of a history item",
                    said.join(" ")
                ));
            }
        }
    }
}
