//! Artefacts: what a reply copies from the prompt's raw fields or from list templates instead
//! of writing prose, and runs of repeated digits or punctuation (docs/design.md §8.8).

use regex::Regex;
use std::ops::Range;
use std::sync::OnceLock;

/// The patterns, each with the reason it reports (`{}` is replaced by the matched text).
fn rules() -> &'static [(Regex, &'static str)] {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RULES.get_or_init(|| {
        let r = |p: &str| Regex::new(p).expect("artefact patterns compile");
        vec![
            // A year in brackets, as the prompt lists items: "Heat (1995)".
            (
                r(r"\(\s*(?:18[89]\d|19\d\d|20[0-3]\d)\s*\)"),
                "bracketed year {}",
            ),
            // A catalogue format or series note: "(Paperback)", "(Mass Market Paperback)".
            (
                r(r"(?i)\([^()\n]*\b(?:paperback|hardcover|hardback|mass market|audio ?cassette|audio ?cd|library binding|board book|turtleback)\b[^()\n]*\)?"),
                "format in brackets {}",
            ),
            // Brackets inside brackets, as Book-Crossing's series fields: "(X Mysteries (Paperback))".
            (r(r"\([^()\n]*\("), "nested brackets {}"),
            // ISBN-like: nine or more digits in a row, or nine digits and an X.
            (r(r"\b(?:\d{9,}|\d{9}[Xx])\b"), "ISBN-like digit run {}"),
            // A field label of the prompt's metadata.
            (
                r(r"(?i)\b(?:genres?|authors?|tags?|title|year|isbn|publisher|rating|categor(?:y|ies))\s*:"),
                "field label \"{}\"",
            ),
            // Fields separated by pipes: "Action|Crime".
            (r(r"[^\s|]\s*\|\s*[^\s|]"), "pipe-separated list \"{}\""),
            // List templates.
            (
                r(r"(?i)\byou (?:may|might|will|would|could) also (?:enjoy|like|love)\s*:"),
                "list template \"{}\"",
            ),
            (
                r(r"(?im)^[ \t]*you (?:may|might|will|would|could) (?:enjoy|like|love)\s*:"),
                "list template: a line starting \"{}\"",
            ),
            (
                r(r"(?m)^[ \t]*(?:[-*\u{2022}\u{00B7}\u{25AA}]|\d{1,2}[.)])[ \t]+\S"),
                "bullet or numbered list \"{}\"",
            ),
            // Digits repeated with dots: "3.3.3.3".
            (r(r"\b\d(?:\.\d){2,}\b"), "repeated digits {}"),
        ]
    })
}

/// Lines that open as "You may … :" (or might/will/would/could), for the two-or-more-lines rule.
fn template_lines(text: &str) -> usize {
    static LINE: OnceLock<Regex> = OnceLock::new();
    let line = LINE.get_or_init(|| {
        Regex::new(r"(?i)^\s*you (?:may|might|will|would|could)\b[^:]*:").expect("pattern compiles")
    });
    text.lines().filter(|l| line.is_match(l)).count()
}

/// A run of one digit repeated 4+ times as a whole number ("1111", not "10000"), or of one
/// punctuation character repeated 4+ times ("!!!!", "....": longer than an ellipsis); each
/// with its byte range.
fn repeated_runs(text: &str, out: &mut Vec<(Range<usize>, String)>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |k: usize| chars.get(k).map_or(text.len(), |(b, _)| *b);
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k].1;
        let mut j = k + 1;
        while j < chars.len() && chars[j].1 == c {
            j += 1;
        }
        let run = j - k;
        let range = at(k)..at(j);
        if run >= 4 && !c.is_alphanumeric() && !c.is_whitespace() {
            let s = text[range.clone()].to_string();
            out.push((range, format!("artefact: repeated punctuation {s}")));
        } else if run >= 4 && c.is_ascii_digit() {
            let whole_before = k == 0 || !chars[k - 1].1.is_alphanumeric();
            let whole_after = j == chars.len() || !chars[j].1.is_alphanumeric();
            if whole_before && whole_after {
                let s = text[range.clone()].to_string();
                out.push((range, format!("artefact: repeated digits {s}")));
            }
        }
        k = j;
    }
}

/// The artefacts of `text`, one reason each (`artefact: …`), without repeats.
pub fn artefacts(text: &str) -> Vec<String> {
    artefacts_except(text, &[])
}

/// The artefacts of `text` that do not lie inside one of the `exempt` byte ranges (where the
/// reply names the recommended item's or a history item's title verbatim: a title such as
/// "Wait Till Next Year: A Memoir" or "Once Upon A Time ...." is not a copied field).
pub fn artefacts_except(text: &str, exempt: &[Range<usize>]) -> Vec<String> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    for (re, reason) in rules() {
        for m in re.find_iter(text) {
            let shown = m.as_str().trim().replace('\n', " ");
            found.push((
                m.range(),
                format!("artefact: {}", reason.replace("{}", &shown)),
            ));
        }
    }
    repeated_runs(text, &mut found);
    let mut out: Vec<String> = found
        .into_iter()
        .filter(|(r, _)| !exempt.iter().any(|e| e.start <= r.start && r.end <= e.end))
        .map(|(_, f)| f)
        .collect();
    if template_lines(text) >= 2 {
        out.push("artefact: list template: two or more \"You may …:\" lines".to_string());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(f.clone()));
    out
}
