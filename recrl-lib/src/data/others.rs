//! Amazon Books (McAuley 2014 / 2018 JSON lines), Book-Crossing (BX CSVs) and Steam-200K.

use super::movielens::{self, parse_rating};
use super::pyliteral;
use super::raw::{ItemMeta, RawData, UserMeta};
use super::source::{
    csv_reader, csv_rows, decode, excerpt, next_record, tolerate, At, Encoding, Lines,
};
use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Characters of review text kept per interaction (reference explanations).
pub const REVIEW_CHARS: usize = 400;

/// Amazon Books: `reviews_Books_5.json.gz` (2014) or `Books_5.json.gz` (2018), plus
/// `meta_Books.json.gz` for titles (2014: Python-literal lines; 2018: JSON lines).
pub fn load_books(dir: &Path, max_malformed: usize) -> Result<RawData> {
    let reviews = first_existing(
        dir,
        &[
            "reviews_Books_5.json.gz",
            "Books_5.json.gz",
            "reviews_Books_5.json",
            "Books_5.json",
        ],
    )?;
    let mut raw = RawData {
        has_timestamps: true,
        ..RawData::default()
    };
    let mut lines = Lines::open(&reviews, Encoding::Utf8)?;
    while let Some((_, text)) = lines.next_line()? {
        if text.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
        let Some(v) = parsed_or_tolerated(parsed, "not JSON", &lines, &mut raw, max_malformed)?
        else {
            continue;
        };
        let at = lines.at();
        let field = |k: &str| v.get(k).ok_or_else(|| anyhow!("{at}: missing field `{k}`"));
        let user = field("reviewerID")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let item = field("asin")?.as_str().unwrap_or_default().to_string();
        let rating = field("overall")?
            .as_f64()
            .ok_or_else(|| anyhow!("{at}: `overall` is not a number"))?;
        let rating = movielens::rating(rating, "overall", &at)?;
        let timestamp = field("unixReviewTime")?
            .as_i64()
            .ok_or_else(|| anyhow!("{at}: `unixReviewTime` is not an integer"))?;
        let timestamp = movielens::timestamp(timestamp as f64, "unixReviewTime", &at)?;
        if let Some(text) = v.get("reviewText").and_then(Value::as_str) {
            raw.reviews.insert(
                raw.interactions.len(),
                text.chars().take(REVIEW_CHARS).collect(),
            );
        }
        raw.push(&user, &item, rating, timestamp);
    }
    let meta = first_existing(dir, &["meta_Books.json.gz", "meta_Books.json"]);
    if let Ok(meta) = meta {
        read_books_meta(&meta, max_malformed, &mut raw)?;
    }
    Ok(raw)
}

/// `parsed`'s value, or `None` after counting the current line of `lines` as malformed with
/// `what (the error)` as the reason (an error past `max_malformed` such lines).
fn parsed_or_tolerated(
    parsed: std::result::Result<Value, String>,
    what: &str,
    lines: &Lines,
    raw: &mut RawData,
    max_malformed: usize,
) -> Result<Option<Value>> {
    match parsed {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let reason = format!("{what} ({e})");
            tolerate(&mut raw.malformed, max_malformed, &lines.at(), &reason)?;
            Ok(None)
        }
    }
}

fn read_books_meta(path: &Path, max_malformed: usize, raw: &mut RawData) -> Result<()> {
    let mut lines = Lines::open(path, Encoding::Utf8)?;
    while let Some((_, text)) = lines.next_line()? {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        // 2018 lines are JSON, 2014 lines are Python literals
        let parsed = serde_json::from_str::<Value>(text)
            .map_err(|e| e.to_string())
            .or_else(|_| pyliteral::parse(text));
        let what = "not a JSON or Python literal";
        let Some(v) = parsed_or_tolerated(parsed, what, &lines, raw, max_malformed)? else {
            continue;
        };
        let Some(id) = v
            .get("asin")
            .and_then(Value::as_str)
            .and_then(|a| raw.items.get(a))
        else {
            continue;
        };
        let text_of = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(|s| html_unescape(s.trim()))
        };
        let genres: Vec<String> = match (v.get("categories"), v.get("category")) {
            (Some(Value::Array(paths)), _) => paths
                .iter()
                .flat_map(|p| p.as_array().cloned().unwrap_or_default())
                .filter_map(|c| c.as_str().map(str::to_string))
                .filter(|c| c != "Books")
                .collect(),
            (_, Some(Value::Array(cats))) => cats
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .filter(|c| c != "Books")
                .collect(),
            _ => Vec::new(),
        };
        let mut genres_dedup: Vec<String> = Vec::new();
        for g in genres {
            if !genres_dedup.contains(&g) {
                genres_dedup.push(g);
            }
        }
        let year = text_of("date").and_then(|d| find_year(&d));
        raw.item_meta.insert(
            id,
            ItemMeta {
                title: text_of("title").unwrap_or_default(),
                year,
                genres: genres_dedup,
                author: text_of("author")
                    .or_else(|| text_of("brand"))
                    .filter(|a| !a.is_empty()),
                tags: Vec::new(),
            },
        );
    }
    Ok(())
}

/// Book-Crossing: `BX-Book-Ratings.csv`, `BX-Books.csv`, `BX-Users.csv` (`;`-separated,
/// quoted, Latin-1). No timestamps: the file order is the sequence order.
pub fn load_bookcrossing(dir: &Path, max_malformed: usize) -> Result<RawData> {
    let mut raw = RawData::default();
    csv_rows(
        b';',
        Encoding::Latin1,
        &dir.join("BX-Book-Ratings.csv"),
        &["User-ID", "ISBN", "Book-Rating"],
        max_malformed,
        &mut raw,
        |raw, f, at| {
            let rating = parse_rating(f[2], "Book-Rating", at)?;
            let row = raw.interactions.len() as i64; // no timestamps: file order
            raw.push(f[0], f[1].trim(), rating, row);
            Ok(())
        },
    )?;
    csv_rows(
        b';',
        Encoding::Latin1,
        &dir.join("BX-Books.csv"),
        &["ISBN", "Book-Title", "Book-Author", "Year-Of-Publication"],
        max_malformed,
        &mut raw,
        |raw, f, _| {
            if let Some(id) = raw.items.get(f[0].trim()) {
                raw.item_meta.insert(
                    id,
                    ItemMeta {
                        title: html_unescape(f[1].trim()),
                        author: Some(html_unescape(f[2].trim())).filter(|a| !a.is_empty()),
                        year: f[3].trim().parse().ok().filter(|y| *y > 0),
                        ..ItemMeta::default()
                    },
                );
            }
            Ok(())
        },
    )?;
    let users = dir.join("BX-Users.csv");
    if users.is_file() {
        csv_rows(
            b';',
            Encoding::Latin1,
            &users,
            &["User-ID", "Location", "Age"],
            max_malformed,
            &mut raw,
            |raw, f, _| {
                raw.set_user_meta(
                    f[0],
                    UserMeta {
                        age: f[2].trim().parse().ok(),
                        location: Some(f[1].to_string()),
                        ..UserMeta::default()
                    },
                );
                Ok(())
            },
        )?;
    }
    Ok(raw)
}

/// Steam-200K: header-less `user,game_title,behavior,value,0`; `purchase` rows are the
/// implicit signal (`play` rows are hours played and are skipped). No timestamps: the file
/// order is the sequence order.
pub fn load_steam(dir: &Path, max_malformed: usize) -> Result<RawData> {
    let path = dir.join("steam-200k.csv");
    let mut raw = RawData::default();
    let mut reader = csv_reader(&path, b',', false)?;
    let mut rec = csv::ByteRecord::new();
    while next_record(&mut reader, &mut rec, &path)? {
        let line = rec.position().map_or(0, |p| p.line());
        let at = At(&path, line as usize);
        if rec.len() < 4 {
            tolerate(
                &mut raw.malformed,
                max_malformed,
                &at,
                &format!("{} fields, expected 5", rec.len()),
            )?;
            continue;
        }
        let field = |i: usize| {
            decode(&rec[i], Encoding::Utf8).ok_or_else(|| anyhow!("{at}: not valid UTF-8"))
        };
        match field(2)?.as_str() {
            "purchase" => {}
            "play" => continue,
            other => bail!(
                "{at}: behavior `{}`, expected `purchase` or `play`",
                excerpt(other)
            ),
        }
        let title = field(1)?;
        let row = raw.interactions.len() as i64; // no timestamps: file order
        let item = raw.push(field(0)?.trim(), &title, 1.0, row);
        raw.item_meta.entry(item).or_insert_with(|| ItemMeta {
            title,
            ..ItemMeta::default()
        });
    }
    Ok(raw)
}

fn first_existing(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{}: none of {} found", dir.display(), names.join(", ")))
}

/// The first plausible 4-digit year in a text (`"January 1, 2003"` → 2003).
fn find_year(text: &str) -> Option<i32> {
    text.as_bytes()
        .windows(4)
        .enumerate()
        .filter(|(i, w)| {
            w.iter().all(u8::is_ascii_digit)
                && !text.as_bytes().get(i + 4).is_some_and(u8::is_ascii_digit)
                && (*i == 0 || !text.as_bytes()[i - 1].is_ascii_digit())
        })
        .filter_map(|(i, _)| text[i..i + 4].parse().ok())
        .find(|y| (1000..=2100).contains(y))
}

/// Decodes the HTML entities common in these files (`&amp;`, `&quot;`, `&#39;`, ...).
fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
