//! MovieLens in its three raw shapes: RecBole atomic files (ml-100k as shipped in the
//! `recbole` wheel), GroupLens `.dat` files (ml-1m) and GroupLens CSV files (ml-25m).

use super::raw::{ItemMeta, RawData, UserMeta};
use super::source::{column, csv_rows, excerpt, tolerate, At, Encoding, Lines};
use anyhow::{anyhow, Result};
use rustc_hash::FxHashMap;
use std::path::Path;

/// ml-100k: `ml-100k.inter`, `.item`, `.user` (tab-separated, typed headers `name:type`).
pub fn load_ml100k(dir: &Path, max_malformed: usize) -> Result<RawData> {
    let mut raw = RawData {
        has_timestamps: true,
        ..RawData::default()
    };
    let inter = dir.join("ml-100k.inter");
    atomic_rows(
        &inter,
        &["user_id", "item_id", "rating", "timestamp"],
        max_malformed,
        &mut raw,
        |raw, f, at| rating_row(raw, f, ("rating", "timestamp"), at),
    )?;
    let item = dir.join("ml-100k.item");
    atomic_rows(
        &item,
        &["item_id", "movie_title", "release_year", "class"],
        max_malformed,
        &mut raw,
        |raw, f, _| {
            if let Some(id) = raw.items.get(f[0]) {
                let meta = ItemMeta {
                    title: readable_title(f[1]),
                    year: f[2].trim().parse().ok(),
                    genres: f[3].split_whitespace().map(str::to_string).collect(),
                    ..ItemMeta::default()
                };
                raw.item_meta.insert(id, meta);
            }
            Ok(())
        },
    )?;
    let user = dir.join("ml-100k.user");
    atomic_rows(
        &user,
        &["user_id", "age", "gender", "occupation", "zip_code"],
        max_malformed,
        &mut raw,
        |raw, f, _| {
            raw.set_user_meta(
                f[0],
                UserMeta {
                    age: f[1].trim().parse().ok(),
                    gender: Some(f[2].to_string()),
                    occupation: Some(f[3].to_string()),
                    location: Some(f[4].to_string()),
                },
            );
            Ok(())
        },
    )?;
    Ok(raw)
}

/// Reads a RecBole atomic file, handing `row` the fields of `columns` in that order.
fn atomic_rows(
    path: &Path,
    columns: &[&str],
    max_malformed: usize,
    raw: &mut RawData,
    mut row: impl FnMut(&mut RawData, &[&str], &At) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::open(path, Encoding::Utf8)?;
    let (_, header) = lines
        .next_line()?
        .ok_or_else(|| anyhow!("{}: empty file, expected a header", path.display()))?;
    // typed header: `user_id:token`
    let names: Vec<String> = header
        .split('\t')
        .map(|h| h.split(':').next().unwrap_or("").to_string())
        .collect();
    let idx = columns
        .iter()
        .map(|c| column(&names, c, &At(path, 1)))
        .collect::<Result<Vec<_>>>()?;
    let fields = Fields {
        separator: "\t",
        count: names.len(),
        mismatch: &|n| format!("{n} fields, the header has {}", names.len()),
    };
    split_rows(&mut lines, &fields, max_malformed, raw, |raw, all, at| {
        let picked: Vec<&str> = idx.iter().map(|&i| all[i]).collect();
        row(raw, &picked, at)
    })
}

/// How a line splits into fields: the separator, the number of fields a line must have, and
/// the reason a line with another number counts as malformed.
struct Fields<'a> {
    separator: &'a str,
    count: usize,
    mismatch: &'a dyn Fn(usize) -> String,
}

/// Hands `row` the fields of each non-empty line of `lines`; a line with the wrong number of
/// fields counts as malformed (up to `max_malformed` of them).
fn split_rows(
    lines: &mut Lines,
    fields: &Fields,
    max_malformed: usize,
    raw: &mut RawData,
    mut row: impl FnMut(&mut RawData, &[&str], &At) -> Result<()>,
) -> Result<()> {
    while let Some((_, text)) = lines.next_line()? {
        if text.is_empty() {
            continue;
        }
        let all: Vec<&str> = text.split(fields.separator).collect();
        if all.len() != fields.count {
            let reason = (fields.mismatch)(all.len());
            tolerate(&mut raw.malformed, max_malformed, &lines.at(), &reason)?;
            continue;
        }
        row(raw, &all, &lines.at())?;
    }
    Ok(())
}

/// A movie's row `(id, title, genres)`: its metadata, for a movie that has interactions.
fn movie_row(raw: &mut RawData, f: &[&str], _: &At) -> Result<()> {
    if let Some(id) = raw.items.get(f[0]) {
        raw.item_meta.insert(id, movie_meta(f[1], f[2]));
    }
    Ok(())
}

/// ml-1m: `ratings.dat`, `movies.dat`, `users.dat` (`::`-separated, Latin-1).
pub fn load_ml1m(dir: &Path, max_malformed: usize) -> Result<RawData> {
    let mut raw = RawData {
        has_timestamps: true,
        ..RawData::default()
    };
    dat_rows(
        &dir.join("ratings.dat"),
        4,
        max_malformed,
        &mut raw,
        |raw, f, at| rating_row(raw, f, ("Rating", "Timestamp"), at),
    )?;
    dat_rows(
        &dir.join("movies.dat"),
        3,
        max_malformed,
        &mut raw,
        movie_row,
    )?;
    let users = dir.join("users.dat");
    if users.is_file() {
        dat_rows(&users, 5, max_malformed, &mut raw, |raw, f, _| {
            raw.set_user_meta(
                f[0],
                UserMeta {
                    gender: Some(f[1].to_string()),
                    age: f[2].parse().ok(),
                    occupation: Some(f[3].to_string()),
                    location: Some(f[4].to_string()),
                },
            );
            Ok(())
        })?;
    }
    Ok(raw)
}

fn dat_rows(
    path: &Path,
    n_fields: usize,
    max_malformed: usize,
    raw: &mut RawData,
    row: impl FnMut(&mut RawData, &[&str], &At) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::open(path, Encoding::Latin1)?;
    let fields = Fields {
        separator: "::",
        count: n_fields,
        mismatch: &|n| format!("{n} `::`-separated fields, expected {n_fields}"),
    };
    split_rows(&mut lines, &fields, max_malformed, raw, row)
}

/// ml-25m: `ratings.csv`, `movies.csv` and, when present, `tags.csv` (UTF-8, quoted CSV).
pub fn load_ml25m(dir: &Path, max_malformed: usize) -> Result<RawData> {
    let mut raw = RawData {
        has_timestamps: true,
        ..RawData::default()
    };
    csv_rows(
        b',',
        Encoding::Utf8,
        &dir.join("ratings.csv"),
        &["userId", "movieId", "rating", "timestamp"],
        max_malformed,
        &mut raw,
        |raw, f, at| rating_row(raw, f, ("rating", "timestamp"), at),
    )?;
    csv_rows(
        b',',
        Encoding::Utf8,
        &dir.join("movies.csv"),
        &["movieId", "title", "genres"],
        max_malformed,
        &mut raw,
        movie_row,
    )?;
    let tags = dir.join("tags.csv");
    if tags.is_file() {
        let mut counts: FxHashMap<u32, FxHashMap<String, u32>> = FxHashMap::default();
        csv_rows(
            b',',
            Encoding::Utf8,
            &tags,
            &["movieId", "tag"],
            max_malformed,
            &mut raw,
            |raw, f, _| {
                if let Some(id) = raw.items.get(f[0]) {
                    let tag = f[1].trim().to_lowercase();
                    if !tag.is_empty() {
                        *counts.entry(id).or_default().entry(tag).or_default() += 1;
                    }
                }
                Ok(())
            },
        )?;
        for (id, tag_counts) in counts {
            let mut ranked: Vec<(String, u32)> = tag_counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let meta = raw.item_meta.entry(id).or_default();
            meta.tags = ranked.into_iter().take(10).map(|(t, _)| t).collect();
        }
    }
    Ok(raw)
}

/// Parses a number; the error names the place and the field (and shows at most the start of
/// a long text).
pub(super) fn parse<T: std::str::FromStr>(text: &str, field: &str, at: &At) -> Result<T> {
    text.trim()
        .parse()
        .map_err(|_| anyhow!("{at}: field `{field}` is `{}`, not a number", excerpt(text)))
}

/// Latest timestamp accepted: 2100-01-01T00:00:00Z in seconds since 1970.
pub(super) const MAX_TIMESTAMP: f64 = 4_102_444_800.0;

/// A rating: any finite number (NaN and infinities are errors naming the place).
pub(super) fn rating(value: f64, field: &str, at: &At) -> Result<f32> {
    anyhow::ensure!(
        value.is_finite() && value.abs() <= f32::MAX as f64,
        "{at}: field `{field}` is {value}, not a finite rating"
    );
    Ok(value as f32)
}

/// A timestamp in seconds since 1970, from 1970 up to 2100 (anything else is an error naming
/// the place: a date in milliseconds, a negative or a non-finite number).
pub(super) fn timestamp(value: f64, field: &str, at: &At) -> Result<i64> {
    anyhow::ensure!(
        (0.0..MAX_TIMESTAMP).contains(&value),
        "{at}: field `{field}` is {value}, not a time between 1970 and 2100 in seconds"
    );
    Ok(value as i64)
}

/// [`rating`] of a text field.
/// A `user, item, rating, timestamp` row of the MovieLens layouts (`fields`: the rating's and
/// the timestamp's column names, for errors) appended to `raw`.
fn rating_row(raw: &mut RawData, f: &[&str], fields: (&str, &str), at: &At) -> Result<()> {
    let rating = parse_rating(f[2], fields.0, at)?;
    let timestamp = parse_timestamp(f[3], fields.1, at)?;
    raw.push(f[0], f[1], rating, timestamp);
    Ok(())
}

pub(super) fn parse_rating(text: &str, field: &str, at: &At) -> Result<f32> {
    rating(parse(text, field, at)?, field, at)
}

/// [`timestamp`] of a text field.
pub(super) fn parse_timestamp(text: &str, field: &str, at: &At) -> Result<i64> {
    timestamp(parse(text, field, at)?, field, at)
}

/// A GroupLens movie row's metadata: `"Heat (1995)"` and `"Action|Crime"`.
fn movie_meta(title_with_year: &str, genres: &str) -> ItemMeta {
    let (title, year) = split_title_year(title_with_year);
    let genres = genres
        .split('|')
        .filter(|g| !g.is_empty() && *g != "(no genres listed)")
        .map(str::to_string)
        .collect();
    ItemMeta {
        title,
        year,
        genres,
        ..ItemMeta::default()
    }
}

/// `"American President, The (1995)"` → (`"The American President"`, `Some(1995)`).
pub fn split_title_year(full: &str) -> (String, Option<i32>) {
    let t = full.trim();
    if let Some(open) = t.rfind('(') {
        let inside = t[open + 1..].trim_end_matches(')').trim();
        if t.ends_with(')') && inside.len() == 4 {
            if let Ok(year) = inside.parse() {
                return (readable_title(&t[..open]), Some(year));
            }
        }
    }
    (readable_title(t), None)
}

/// Moves a trailing article to the front: `"Usual Suspects, The"` → `"The Usual Suspects"`.
pub fn readable_title(title: &str) -> String {
    let t = title.trim();
    for article in [
        "The", "A", "An", "Les", "La", "Le", "Il", "Das", "Der", "Die", "El",
    ] {
        if let Some(stem) = t.strip_suffix(&format!(", {article}")) {
            return format!("{article} {stem}");
        }
    }
    t.to_string()
}
