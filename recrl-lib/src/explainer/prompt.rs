//! Explanation prompts (docs/design.md §6): the user's last few history titles, the recommended title
//! and its metadata, each item followed by a soft item token slot, in the model's chat template.

use super::tokenizer::TextTokenizer;
use crate::data::{Dataset, ItemMeta};
use anyhow::Result;

/// Marks a soft-token slot in rendered prompt text (never produced by a tokenizer).
pub const SOFT_MARK: char = '\u{E000}';
/// How a soft-token slot is shown to people.
pub const SOFT_SHOWN: &str = "⟨item⟩";

/// The system message of every explanation prompt.
pub const SYSTEM: &str =
    "You are a friendly recommender. In one or two sentences, tell the user why \
they may enjoy the recommended item, based on what they watched or read before.";

/// A reply as the simulated user reads it: cut after `max_chars` characters (the configuration's
/// `explanation_max_len`), the cut PPO's reward and the audit both apply.
pub fn cut_reply(text: &mut String, max_chars: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
    }
}

/// What one explanation is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainRequest {
    /// The user (1-based).
    pub user: usize,
    /// Last few history items, oldest first (dataset item ids).
    pub history: Vec<u32>,
    /// The recommended item.
    pub recommended: u32,
}

/// A tokenised prompt with its soft-token slots.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltPrompt {
    /// Token ids (the pad id at soft slots).
    pub ids: Vec<u32>,
    /// Positions in `ids` of the soft slots.
    pub soft_positions: Vec<usize>,
    /// The item of each slot (rows of `E`).
    pub soft_items: Vec<u32>,
    /// The prompt text, slots shown as [`SOFT_SHOWN`].
    pub text: String,
}

fn describe(meta: &ItemMeta) -> String {
    let mut s = meta.title.clone();
    if let Some(y) = meta.year {
        s.push_str(&format!(" ({y})"));
    }
    s
}

fn details(meta: &ItemMeta) -> String {
    let mut parts = Vec::new();
    if !meta.genres.is_empty() {
        parts.push(format!("genres: {}", meta.genres.join(", ")));
    }
    if let Some(a) = &meta.author {
        parts.push(format!("author: {a}"));
    }
    if !meta.tags.is_empty() {
        parts.push(format!(
            "tags: {}",
            meta.tags
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    parts.join("; ")
}

/// The user message of a request (soft slots as [`SOFT_MARK`]); `soft` adds the slots.
pub fn user_message(ds: &Dataset, req: &ExplainRequest, soft: bool) -> String {
    let slot = |s: String| if soft { format!("{s} {SOFT_MARK}") } else { s };
    let seen: Vec<String> = req
        .history
        .iter()
        .map(|&i| slot(describe(&ds.items[i as usize])))
        .collect();
    let rec = &ds.items[req.recommended as usize];
    let extra = details(rec);
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({extra})")
    };
    format!(
        "Recently I enjoyed: {}.\nRecommended for me: {}{extra}.\nWhy might I like it?",
        seen.join("; "),
        slot(describe(rec))
    )
}

/// Renders and tokenises a request; soft slots follow each item when `soft`.
pub fn build(
    ds: &Dataset,
    tok: &TextTokenizer,
    req: &ExplainRequest,
    soft: bool,
) -> Result<BuiltPrompt> {
    build_message(tok, &user_message(ds, req, soft), req)
}

/// Renders and tokenises a user message (e.g. an edited [`user_message`]) whose
/// [`SOFT_MARK`] slots hold `req`'s history items, then its recommended item.
pub fn build_message(
    tok: &TextTokenizer,
    message: &str,
    req: &ExplainRequest,
) -> Result<BuiltPrompt> {
    let text = tok.template.render(SYSTEM, message, &tok.eos_text());
    let mut ids: Vec<u32> = tok.bos.into_iter().collect();
    let mut soft_positions = Vec::new();
    let pieces: Vec<&str> = text.split(SOFT_MARK).collect();
    for (k, piece) in pieces.iter().enumerate() {
        if k > 0 {
            soft_positions.push(ids.len());
            ids.push(tok.pad);
        }
        ids.extend(tok.encode(piece)?);
    }
    let mut soft_items = req.history.clone();
    soft_items.push(req.recommended);
    soft_items.truncate(soft_positions.len());
    Ok(BuiltPrompt {
        ids,
        soft_positions,
        soft_items,
        text: text.replace(SOFT_MARK, SOFT_SHOWN),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cut_reply_counts_characters_not_bytes() {
        let mut t = "ébène café".to_string();
        super::cut_reply(&mut t, 7);
        assert_eq!(t, "ébène c");
        let mut short = "abc".to_string();
        super::cut_reply(&mut short, 3);
        assert_eq!(short, "abc");
    }
}
