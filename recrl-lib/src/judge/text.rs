//! The words of a reply as the judge sees them, and the two measures that need nothing but the
//! text: completeness (does the reply end a sentence?) and readability (Flesch reading ease).

/// One word of a text: a maximal run of letters and digits, with apostrophes inside it dropped
/// ("don’t" → `dont`, "O'Brien" → `obrien`), except the possessive "'s", which is a word of
/// its own ("Schindler's" → `schindler`, `s`; "Dan Brown's" → `dan`, `brown`, `s`), so titles
/// and replies compare the same way and names are found in their possessive.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The word lower-cased, apostrophes dropped.
    pub norm: String,
    /// Byte offset of the first character in the text.
    pub start: usize,
    /// Byte offset just after the last character.
    pub end: usize,
    /// Written with a capital (or a digit) first, as title words are.
    pub capital: bool,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}')
}

/// Whether the apostrophe at `chars[k]` starts a possessive "'s" (an `s` and then no letter
/// or digit).
fn possessive(chars: &[(usize, char)], k: usize) -> bool {
    chars
        .get(k + 1)
        .is_some_and(|(_, c)| matches!(c, 's' | 'S'))
        && !chars.get(k + 2).is_some_and(|(_, c)| c.is_alphanumeric())
}

/// The words of `text` (see [`Token`]).
pub fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        let (start, c) = chars[k];
        if !c.is_alphanumeric() {
            k += 1;
            continue;
        }
        let mut norm = String::new();
        let mut end = start;
        while k < chars.len() {
            let (at, c) = chars[k];
            if c.is_alphanumeric() {
                norm.extend(c.to_lowercase());
                end = at + c.len_utf8();
                k += 1;
            } else if is_apostrophe(c)
                && chars.get(k + 1).is_some_and(|(_, n)| n.is_alphanumeric())
                && !possessive(&chars, k)
            {
                k += 1;
            } else {
                break;
            }
        }
        out.push(Token {
            norm,
            start,
            end,
            capital: c.is_uppercase() || c.is_numeric(),
        });
    }
    out
}

/// The lower-cased words of `text`.
pub fn words(text: &str) -> Vec<String> {
    tokens(text).into_iter().map(|t| t.norm).collect()
}

/// Articles, dropped from the front of title keys.
pub const ARTICLES: [&str; 3] = ["the", "a", "an"];

/// Words a title may write in lower case ("Gone with the Wind", "Harry Potter and the …").
pub fn is_minor(norm: &str) -> bool {
    matches!(
        norm,
        "a" | "an"
            | "s"
            | "the"
            | "and"
            | "or"
            | "nor"
            | "but"
            | "of"
            | "in"
            | "on"
            | "at"
            | "to"
            | "for"
            | "by"
            | "with"
            | "from"
            | "as"
            | "into"
            | "onto"
            | "upon"
            | "over"
            | "vs"
            | "via"
            | "de"
            | "la"
            | "le"
            | "el"
            | "du"
            | "des"
            | "der"
            | "die"
            | "das"
            | "von"
            | "van"
            | "et"
    )
}

/// Whether `toks` are written as a title is: the first word capitalised and every word that is
/// not a minor word (see [`is_minor`]) capitalised too.
pub fn title_cased(toks: &[Token]) -> bool {
    toks.first().is_some_and(|t| t.capital) && toks.iter().all(|t| t.capital || is_minor(&t.norm))
}

fn is_open_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\u{201C}' | '\u{2018}' | '\'' | '*' | '_' | '\u{00AB}'
    )
}

fn is_close_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\u{201D}' | '\u{2019}' | '\'' | '*' | '_' | '\u{00BB}'
    )
}

/// Whether the text between byte offsets `start` and `end` stands in quotes (or markdown
/// emphasis): an opening mark right before it and a closing mark right after it, the closing
/// one possibly after one of `. , ! ?` ("Heat," or "Heat.").
pub fn quoted(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let mut after = text[end..].chars();
    let mut next = after.next();
    if next.is_some_and(|c| matches!(c, '.' | ',' | '!' | '?')) {
        next = after.next();
    }
    before.is_some_and(is_open_quote) && next.is_some_and(is_close_quote)
}

/// Characters that may follow a sentence's end mark: closing quotes and brackets, markdown
/// emphasis, and emoji (with their joiners and variation selectors).
fn is_trailer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '\u{201D}' | '\u{2019}' | '\u{00BB}' | ')' | ']' | '}' | '*' | '_'
    ) || is_emoji(c)
}

fn is_emoji(c: char) -> bool {
    let u = c as u32;
    (0x1F000..=0x1FAFF).contains(&u)
        || (0x2600..=0x27BF).contains(&u)
        || (0x2B00..=0x2BFF).contains(&u)
        || u == 0xFE0F
        || u == 0x200D
}

/// Sentence end marks.
pub fn is_end_mark(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '\u{2026}')
}

/// Completeness: the reply's last character, after trailing whitespace, closing quotes,
/// closing brackets and emoji, is `.`, `!`, `?` or `…`.
pub fn ends_sentence(text: &str) -> bool {
    let rest = text.trim_end_matches(|c: char| c.is_whitespace() || is_trailer(c));
    rest.chars().next_back().is_some_and(is_end_mark)
}

/// Words after which a period abbreviates rather than ends a sentence.
pub const ABBREVIATIONS: [&str; 9] = ["mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "prof"];

/// Whether `text` ends with a period after an initial ("by J. K.") or an abbreviation
/// ([`ABBREVIATIONS`]): a reply cut there ends no sentence although it ends with a period.
/// Returns the byte offset of that period, for callers that exempt a title ending in a
/// capital ("Malcolm X.").
pub fn ends_with_abbreviation(text: &str) -> Option<usize> {
    let rest = text.trim_end_matches(|c: char| c.is_whitespace() || is_trailer(c));
    let body = rest.strip_suffix('.')?;
    let word: Vec<char> = body
        .chars()
        .rev()
        .take_while(|c| c.is_alphabetic())
        .collect();
    let lower: String = word.iter().rev().flat_map(|c| c.to_lowercase()).collect();
    let before = body[..body.len() - word.iter().map(|c| c.len_utf8()).sum::<usize>()]
        .chars()
        .next_back();
    let separate = before.is_none_or(|c| c.is_whitespace() || c == '.');
    let initial = word.len() == 1 && word[0].is_uppercase();
    (separate && (initial || ABBREVIATIONS.contains(&lower.as_str()))).then_some(body.len())
}

/// Syllables of one word: groups of consecutive vowels (`a e i o u y`), less one for a silent
/// final `e` ("make"; not "-le" after a consonant as in "table", nor "-ee"), at least 1.
pub fn syllables(word: &str) -> usize {
    let w: Vec<char> = word
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    if w.is_empty() {
        return 0;
    }
    let vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut groups = 0;
    let mut prev = false;
    for &c in &w {
        let v = vowel(c);
        if v && !prev {
            groups += 1;
        }
        prev = v;
    }
    let n = w.len();
    if groups > 1 && n >= 2 && w[n - 1] == 'e' {
        let before = w[n - 2];
        let le = before == 'l' && n >= 3 && !vowel(w[n - 3]);
        if !le && !vowel(before) {
            groups -= 1;
        }
    }
    groups.max(1)
}

/// Flesch reading ease of `text`, clamped to [0, 100]: 206.835 − 1.015·(words/sentences) −
/// 84.6·(syllables/words). Words are runs of letters, digits and apostrophes with a letter
/// ("Schindler's" is one word); sentences are runs of end
/// marks followed by whitespace, a closing mark or the end (at least 1); syllables as
/// [`syllables`]. NaN for a text without words.
pub fn flesch(text: &str) -> f64 {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c)))
        .filter(|w| w.chars().any(char::is_alphabetic))
        .collect();
    if words.is_empty() {
        return f64::NAN;
    }
    let syl: usize = words.iter().map(|w| syllables(w)).sum();
    let chars: Vec<char> = text.chars().collect();
    let mut sentences = 0usize;
    for k in 0..chars.len() {
        if !is_end_mark(chars[k]) {
            continue;
        }
        let next = chars.get(k + 1).copied();
        let ends = match next {
            None => true,
            Some(n) => n.is_whitespace() || is_trailer(n),
        };
        if ends {
            sentences += 1;
        }
    }
    let sentences = sentences.max(1) as f64;
    let n = words.len() as f64;
    let score = 206.835 - 1.015 * (n / sentences) - 84.6 * (syl as f64 / n);
    score.clamp(0.0, 100.0)
}
