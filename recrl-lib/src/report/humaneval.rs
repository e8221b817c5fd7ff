//! Human evaluation (the seed's promise; `recrl humaneval`): blind pairwise rating sheets of an
//! arm's audit explanations against another's (base by default), and the win rate and
//! inter-rater agreement of the filled sheets.
//!
//! **Export.** The audit's panel replies (`explanations.jsonl`, step 6; the chosen replies
//! `explanations.selected.jsonl` for best-of-N), greedy and sampled, of the two tags are paired by
//! (user, recommended item, greedy or sample number): the same sampling seed on both sides; a seeded draw picks the pairs, shuffles their order and
//! puts each side at A or B at random. Three files: `sheet.csv` (what raters fill: a `choice`
//! of A, B or tie per pair, and their name), `form.html` (the same as a self-contained form
//! that downloads the filled sheet), and `key.csv` (which tag is A and which B; keep it from
//! the raters).
//!
//! **Import.** Each filled sheet is one rater. A judgement scores 1 for the arm, 0 for the
//! other tag and ½ for a tie; a pair's score is its raters' mean, and the win rate is the mean
//! over pairs with a 95 % Student-t interval over pairs (the pairs are the independent units).
//! Agreement is Krippendorff's α for nominal data over the choices (arm, other, tie), which
//! allows any number of raters and missing judgements.

use super::seeds;
use crate::audit::explanations::{Explained, Mode};
use crate::data::Dataset;
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One blind pair: the same request explained by two tags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    /// Its number on the sheet (1-based, in sheet order).
    pub pair: usize,
    /// The user.
    pub user: usize,
    /// Titles of the history items the prompt showed.
    pub history: Vec<String>,
    /// Title of the recommended item.
    pub item: String,
    /// Explanation shown as A.
    pub a: String,
    /// Explanation shown as B.
    pub b: String,
    /// The tag whose explanation is A (in the key only).
    pub a_is: String,
    /// The tag whose explanation is B (in the key only).
    pub b_is: String,
}

/// Pairs the panel replies (greedy and sampled) of `arm` and `other` (each `(tag, rows)`) by
/// (user, item, reply: greedy or sample number): up to `n` pairs drawn with `seed`, in shuffled
/// order, each side at A or B by a coin flip.
pub fn make_pairs(
    ds: &Dataset,
    arm: (&str, &[Explained]),
    other: (&str, &[Explained]),
    n: usize,
    seed: u64,
) -> Result<Vec<Pair>> {
    type Key = (usize, u32, Option<usize>);
    let greedy = |rows: &[Explained]| -> BTreeMap<Key, Explained> {
        rows.iter()
            .filter(|r| matches!(r.mode, Mode::Greedy | Mode::Sampled) && r.candidate == 0)
            .map(|r| {
                let reply = (r.mode == Mode::Sampled).then_some(r.sample);
                ((r.user, r.recommended, reply), r.clone())
            })
            .collect()
    };
    let (mine, theirs) = (greedy(arm.1), greedy(other.1));
    let mut common: Vec<Key> = mine
        .keys()
        .filter(|k| theirs.contains_key(k))
        .copied()
        .collect();
    if common.is_empty() {
        bail!(
            "{} and {} explained no request in common (panel replies of the same user, item and sample); audit both with the same --users, --samples and seed",
            arm.0,
            other.0
        );
    }
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut common);
    common.truncate(n);
    let title = |i: u32| {
        ds.items
            .get(i as usize)
            .map_or_else(|| format!("item {i}"), |m| m.title.clone())
    };
    Ok(common
        .into_iter()
        .enumerate()
        .map(|(k, key)| {
            let (x, y) = (&mine[&key], &theirs[&key]);
            let swap = rng.below(2) == 1;
            let ((a, a_is), (b, b_is)) = if swap {
                ((y, other.0), (x, arm.0))
            } else {
                ((x, arm.0), (y, other.0))
            };
            Pair {
                pair: k + 1,
                user: key.0,
                history: x.history.iter().map(|&i| title(i)).collect(),
                item: title(key.1),
                a: a.explanation.clone(),
                b: b.explanation.clone(),
                a_is: a_is.to_string(),
                b_is: b_is.to_string(),
            }
        })
        .collect())
}

/// `recrl humaneval export`: pairs `arm`'s panel replies with `other`'s (both in
/// `runs_dir/<ds>/<tag>/explanations.jsonl`, or `explanations.selected.jsonl` where the audit
/// chose among candidates) and writes the sheets into `out`.
pub fn export(
    runs_dir: &Path,
    ds: &Dataset,
    (arm, other): (&str, &str),
    n: usize,
    seed: u64,
    out: &Path,
) -> Result<(Vec<Pair>, SheetFiles)> {
    let read = |tag: &str| {
        let dir = runs_dir.join(ds.name.as_str()).join(tag);
        let selected = dir.join(crate::paths::files::SELECTED);
        if selected.is_file() {
            // one chosen reply per panel reply: whichever candidate won counts as the reply
            let mut rows = crate::audit::explanations::read_explanations(&selected)?;
            rows.iter_mut().for_each(|r| r.candidate = 0);
            return Ok(rows);
        }
        let path = dir.join(crate::paths::files::EXPLANATIONS);
        anyhow::ensure!(
            path.is_file(),
            "{}: no audit explanations of {tag}; run `recrl audit --dataset {} --tag {tag}` first",
            path.display(),
            ds.name
        );
        crate::audit::explanations::read_explanations(&path)
    };
    let (mine, theirs) = (read(arm)?, read(other)?);
    let pairs = make_pairs(ds, (arm, &mine), (other, &theirs), n, seed)?;
    let files = write_sheets(out, &pairs)?;
    Ok((pairs, files))
}

/// `recrl humaneval import`: the key, every filled sheet (one rater each), and the summary for
/// `arm` (default: the key's tag that is not `base`, else its first A).
pub fn import(key_path: &Path, sheets: &[PathBuf], arm: Option<&str>) -> Result<Summary> {
    let key = read_key(key_path)?;
    let mut judgements = Vec::new();
    for s in sheets {
        judgements.extend(read_sheet(s)?);
    }
    let tags: std::collections::BTreeSet<&str> = key
        .values()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let arm = match arm {
        Some(a) => a.to_string(),
        None => tags
            .iter()
            .find(|t| **t != crate::paths::BASE_TAG)
            .or(tags.iter().next())
            .map(|t| t.to_string())
            .with_context(|| format!("{}: an empty key", key_path.display()))?,
    };
    summarise(&key, &judgements, &arm)
}

/// The files [`write_sheets`] wrote.
#[derive(Debug, Clone)]
pub struct SheetFiles {
    /// The rating sheet (CSV) for raters.
    pub sheet: PathBuf,
    /// The same as a self-contained HTML form.
    pub form: PathBuf,
    /// Which tag is A and which B, per pair: keep it from the raters.
    pub key: PathBuf,
}

/// Columns of `sheet.csv`; raters fill `choice` (A, B or tie) and `rater`.
pub const SHEET_COLUMNS: [&str; 7] = [
    "pair",
    "history",
    "recommended",
    "explanation_a",
    "explanation_b",
    "choice",
    "rater",
];

/// Writes `sheet.csv`, `form.html` and `key.csv` for `pairs` into `dir`.
pub fn write_sheets(dir: &Path, pairs: &[Pair]) -> Result<SheetFiles> {
    let files = SheetFiles {
        sheet: dir.join("sheet.csv"),
        form: dir.join("form.html"),
        key: dir.join("key.csv"),
    };
    let mut sheet = csv::Writer::from_writer(Vec::new());
    sheet.write_record(SHEET_COLUMNS)?;
    let mut key = csv::Writer::from_writer(Vec::new());
    key.write_record(["pair", "a", "b", "user"])?;
    for p in pairs {
        let n = p.pair.to_string();
        let history = p.history.join("; ");
        sheet.write_record([&n, &history, &p.item, &p.a, &p.b, "", ""])?;
        key.write_record([&n, &p.a_is, &p.b_is, &p.user.to_string()])?;
    }
    crate::io::write_atomic(&files.sheet, &sheet.into_inner()?)?;
    crate::io::write_atomic(&files.form, form_html(pairs)?.as_bytes())?;
    crate::io::write_atomic(&files.key, &key.into_inner()?)?;
    Ok(files)
}

/// A self-contained page: one card per pair with A / B / tie buttons, the rater's name, and a
/// button that downloads the filled sheet in `sheet.csv`'s columns. No network access.
fn form_html(pairs: &[Pair]) -> Result<String> {
    #[derive(Serialize)]
    struct Shown<'a> {
        pair: usize,
        history: String,
        recommended: &'a str,
        a: &'a str,
        b: &'a str,
    }
    let shown: Vec<Shown> = pairs
        .iter()
        .map(|p| Shown {
            pair: p.pair,
            history: p.history.join("; "),
            recommended: &p.item,
            a: &p.a,
            b: &p.b,
        })
        .collect();
    // `</` inside the JSON must not close the script element.
    let data = serde_json::to_string(&shown)?.replace("</", "<\\/");
    Ok(FORM.replace("__PAIRS__", &data))
}

const FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>recrl: which explanation is better?</title>
<style>
body{font-family:sans-serif;max-width:52em;margin:2em auto;line-height:1.4}
.card{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
.exp{display:grid;grid-template-columns:1fr 1fr;gap:1em}.exp div{background:#f6f6f6;padding:.6em}
.small{color:#555;font-size:.9em}
</style></head><body>
<h1>Which explanation is better?</h1>
<p>For each recommendation, read the two explanations and choose the one you would rather
receive (clearer, more relevant to the history, more convincing), or <em>tie</em>. Then enter
your name and download the filled sheet.</p>
<p><label>Your name: <input id="rater"></label></p>
<div id="pairs"></div>
<p><button id="save">Download the filled sheet (CSV)</button> <span id="left" class="small"></span></p>
<script>
const PAIRS = __PAIRS__;
const root = document.getElementById("pairs");
for (const p of PAIRS) {
  const d = document.createElement("div"); d.className = "card";
  const h = document.createElement("p"); h.className = "small";
  h.textContent = "Pair " + p.pair + ". History: " + p.history + ". Recommended: " + p.recommended;
  const e = document.createElement("div"); e.className = "exp";
  for (const [label, text] of [["A", p.a], ["B", p.b]]) {
    const x = document.createElement("div"); x.textContent = label + ": " + text; e.appendChild(x);
  }
  const c = document.createElement("p");
  for (const v of ["A", "B", "tie"]) {
    const l = document.createElement("label"); const r = document.createElement("input");
    r.type = "radio"; r.name = "pair" + p.pair; r.value = v;
    l.appendChild(r); l.append(" " + v + "  "); c.appendChild(l);
  }
  d.append(h, e, c); root.appendChild(d);
}
const q = s => '"' + String(s).replace(/"/g, '""') + '"';
document.getElementById("save").onclick = () => {
  const rater = document.getElementById("rater").value;
  const rows = [["pair","history","recommended","explanation_a","explanation_b","choice","rater"].join(",")];
  let left = 0;
  for (const p of PAIRS) {
    const c = document.querySelector('input[name="pair' + p.pair + '"]:checked');
    if (!c) left++;
    rows.push([p.pair, q(p.history), q(p.recommended), q(p.a), q(p.b), c ? c.value : "", q(rater)].join(","));
  }
  document.getElementById("left").textContent = left ? left + " pair(s) left empty" : "";
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([rows.join("\n") + "\n"], {type: "text/csv"}));
  a.download = "sheet_" + (rater || "rater") + ".csv"; a.click();
};
</script></body></html>
"#;

/// A rater's choice on a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Choice {
    /// Explanation A.
    A,
    /// Explanation B.
    B,
    /// Neither.
    Tie,
}

/// One filled cell of a sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The rater (the sheet's `rater` column, else its file name).
    pub rater: String,
    /// The pair.
    pub pair: usize,
    /// The choice.
    pub choice: Choice,
}

/// Reads `key.csv`: pair → (tag of A, tag of B).
pub fn read_key(path: &Path) -> Result<BTreeMap<usize, (String, String)>> {
    let mut out = BTreeMap::new();
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    for (n, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}:{}", path.display(), n + 2))?;
        let pair = rec.get(0).and_then(|p| p.parse().ok());
        match (pair, rec.get(1), rec.get(2)) {
            (Some(p), Some(a), Some(b)) => out.insert(p, (a.to_string(), b.to_string())),
            _ => bail!("{}:{}: expected pair,a,b", path.display(), n + 2),
        };
    }
    Ok(out)
}

/// Reads a filled `sheet.csv`; empty choices are skipped, anything but A, B or tie (any case)
/// is an error naming the file and line.
pub fn read_sheet(path: &Path) -> Result<Vec<Judgement>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = r.headers()?.clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no `{name}` column (a sheet from `recrl humaneval export`?)",
                path.display()
            )
        })
    };
    let (pair_col, choice_col, rater_col) = (col("pair")?, col("choice")?, col("rater")?);
    let fallback = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let at = format!("{}:{}", path.display(), n + 2);
        let rec = rec.with_context(|| at.clone())?;
        let choice = match rec
            .get(choice_col)
            .unwrap_or("")
            .trim()
            .to_lowercase()
            .as_str()
        {
            "" => continue,
            "a" => Choice::A,
            "b" => Choice::B,
            "tie" | "=" => Choice::Tie,
            other => bail!("{at}: choice {other:?}; expected A, B or tie"),
        };
        let pair = rec
            .get(pair_col)
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("{at}: no pair number"))?;
        let rater = rec.get(rater_col).unwrap_or("").trim();
        out.push(Judgement {
            rater: if rater.is_empty() {
                fallback.clone()
            } else {
                rater.to_string()
            },
            pair,
            choice,
        });
    }
    Ok(out)
}

/// What the filled sheets say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The arm (the tag the win rate is of).
    pub arm: String,
    /// The tag it was compared with.
    pub other: String,
    /// Pairs with at least one judgement.
    pub pairs: usize,
    /// Raters.
    pub raters: usize,
    /// Judgements preferring the arm, the other tag, or neither.
    pub wins: usize,
    /// See `wins`.
    pub losses: usize,
    /// See `wins`.
    pub ties: usize,
    /// Mean over pairs of the raters' mean score (arm 1, tie ½, other 0).
    pub win_rate: f64,
    /// Half-width of its 95 % Student-t interval over pairs (`None` for one pair).
    pub ci95: Option<f64>,
    /// Krippendorff's α (nominal) of the choices; `None` when no pair has two raters or all
    /// judgements are the same.
    pub alpha: Option<f64>,
}

/// The win rate of `arm` and the raters' agreement, from the key and every judgement.
pub fn summarise(
    key: &BTreeMap<usize, (String, String)>,
    judgements: &[Judgement],
    arm: &str,
) -> Result<Summary> {
    let mut by_pair: BTreeMap<usize, Vec<usize>> = BTreeMap::new(); // 0 arm, 1 other, 2 tie
    let mut counts = [0usize; 3]; // arm, other, tie
    let mut other = None;
    for j in judgements {
        let (a, b) = key
            .get(&j.pair)
            .with_context(|| format!("pair {} (rater {}) is not in the key", j.pair, j.rater))?;
        let (mine, theirs) = match (a == arm, b == arm) {
            (true, false) => (Choice::A, b),
            (false, true) => (Choice::B, a),
            _ => bail!("pair {}: the key has {a} and {b}, not {arm} once", j.pair),
        };
        other.get_or_insert_with(|| theirs.clone());
        let value = match j.choice {
            Choice::Tie => 2,
            c if c == mine => 0,
            _ => 1,
        };
        counts[value] += 1;
        by_pair.entry(j.pair).or_default().push(value);
    }
    let scores: Vec<f64> = by_pair
        .values()
        .map(|v| v.iter().map(|&x| [1.0, 0.0, 0.5][x]).sum::<f64>() / v.len() as f64)
        .collect();
    let Some((win_rate, ci95)) = seeds::interval(&scores) else {
        bail!("no judgements: every choice is empty");
    };
    let raters: std::collections::BTreeSet<&str> =
        judgements.iter().map(|j| j.rater.as_str()).collect();
    let units: Vec<Vec<usize>> = by_pair.into_values().collect();
    Ok(Summary {
        arm: arm.to_string(),
        other: other.unwrap_or_default(),
        pairs: scores.len(),
        raters: raters.len(),
        wins: counts[0],
        losses: counts[1],
        ties: counts[2],
        win_rate,
        ci95,
        alpha: krippendorff_alpha_nominal(&units),
    })
}

/// Krippendorff's α for nominal values: each unit lists the values its raters gave (any
/// number; units with fewer than two are not pairable and left out). α = 1 − D_o / D_e with the
/// coincidence matrix o_ck = Σ_u (number of c–k pairs of different raters in u) / (m_u − 1):
/// α = 1 − (n − 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k. `None` when nothing is pairable or every
/// value is the same (D_e = 0).
pub fn krippendorff_alpha_nominal(units: &[Vec<usize>]) -> Option<f64> {
    let mut o: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for u in units.iter().filter(|u| u.len() >= 2) {
        let w = 1.0 / (u.len() - 1) as f64;
        for (i, &c) in u.iter().enumerate() {
            for (j, &k) in u.iter().enumerate() {
                if i != j {
                    *o.entry((c, k)).or_default() += w;
                }
            }
        }
    }
    let mut n_c: BTreeMap<usize, f64> = BTreeMap::new();
    for (&(c, _), &v) in &o {
        *n_c.entry(c).or_default() += v;
    }
    let n: f64 = n_c.values().sum();
    let disagree: f64 = o.iter().filter(|((c, k), _)| c != k).map(|(_, v)| v).sum();
    let expected: f64 = n_c
        .iter()
        .flat_map(|(c, a)| {
            n_c.iter()
                .filter(move |(k, _)| *k != c)
                .map(move |(_, b)| a * b)
        })
        .sum();
    (n > 1.0 && expected > 0.0).then(|| 1.0 - (n - 1.0) * disagree / expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_by_hand_and_against_the_reference_package() {
        // By hand: units {a,a}, {a,b}, {b,b}, {b,b}: o_aa 2, o_ab = o_ba 1, o_bb 4; n_a 3,
        // n_b 5, n 8: α = 1 − 7 · 2 / (2 · 3 · 5) = 16/30.
        let two = [vec![0, 0], vec![0, 1], vec![1, 1], vec![1, 1]];
        assert!((krippendorff_alpha_nominal(&two).unwrap() - 16.0 / 30.0).abs() < 1e-12);
        // Krippendorff (2011)'s example: 4 coders, 12 units, missing values; the PyPI package
        // `krippendorff` 0.9.0 (numpy 2.4.6) gives 0.743421052631579 for nominal data.
        let coders: [[Option<usize>; 12]; 4] = {
            let (n, s) = (None, Some);
            [
                [
                    s(1),
                    s(2),
                    s(3),
                    s(3),
                    s(2),
                    s(1),
                    s(4),
                    s(1),
                    s(2),
                    n,
                    n,
                    n,
                ],
                [
                    s(1),
                    s(2),
                    s(3),
                    s(3),
                    s(2),
                    s(2),
                    s(4),
                    s(1),
                    s(2),
                    s(5),
                    n,
                    s(3),
                ],
                [
                    n,
                    s(3),
                    s(3),
                    s(3),
                    s(2),
                    s(3),
                    s(4),
                    s(2),
                    s(2),
                    s(5),
                    s(1),
                    n,
                ],
                [
                    s(1),
                    s(2),
                    s(3),
                    s(3),
                    s(2),
                    s(4),
                    s(4),
                    s(1),
                    s(2),
                    s(5),
                    s(1),
                    n,
                ],
            ]
        };
        let units: Vec<Vec<usize>> = (0..12)
            .map(|u| coders.iter().filter_map(|c| c[u]).collect())
            .collect();
        let alpha = krippendorff_alpha_nominal(&units).unwrap();
        assert!((alpha - 0.743421052631579).abs() < 1e-12, "{alpha}");
        assert_eq!(krippendorff_alpha_nominal(&[vec![0, 0], vec![0, 0]]), None);
        assert_eq!(krippendorff_alpha_nominal(&[vec![0], vec![1]]), None);
    }

    #[test]
    fn win_rate_by_hand() {
        // pair 1: A = arm; pair 2: A = base; pair 3: A = arm.
        let key: BTreeMap<usize, (String, String)> = [
            (1, ("arm", "base")),
            (2, ("base", "arm")),
            (3, ("arm", "base")),
        ]
        .into_iter()
        .map(|(p, (a, b))| (p, (a.to_string(), b.to_string())))
        .collect();
        let j = |rater: &str, pair, choice| Judgement {
            rater: rater.into(),
            pair,
            choice,
        };
        let judgements = [
            j("r1", 1, Choice::A),   // arm
            j("r1", 2, Choice::A),   // base
            j("r1", 3, Choice::Tie), // tie
            j("r2", 1, Choice::A),   // arm
            j("r2", 2, Choice::B),   // arm
            j("r2", 3, Choice::B),   // base
        ];
        let s = summarise(&key, &judgements, "arm").unwrap();
        // pair scores 1, (0 + 1)/2, (½ + 0)/2 → mean 1.75/3; sd² = 0.291667/2; t95(2) = 4.303
        assert_eq!(
            (s.wins, s.losses, s.ties, s.pairs, s.raters),
            (3, 2, 1, 3, 2)
        );
        assert!((s.win_rate - 1.75 / 3.0).abs() < 1e-12);
        let sd = ((1.0f64 - 1.75 / 3.0).powi(2)
            + (0.5f64 - 1.75 / 3.0).powi(2)
            + (0.25f64 - 1.75 / 3.0).powi(2))
            / 2.0;
        assert!((s.ci95.unwrap() - 4.303 * (sd / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.other, "base");
        // units (arm 0, base 1, tie 2) {0,0}, {1,0}, {2,1}: o_00 2, o_01 = o_10 = o_12 = o_21 1;
        // n_0 3, n_1 2, n_2 1, n 6: α = 1 − 5 · 4 / (2 · (6 + 3 + 2)) = 1 − 20/22
        assert!((s.alpha.unwrap() - (1.0 - 20.0 / 22.0)).abs() < 1e-12);
        let err = summarise(&key, &[j("r1", 9, Choice::A)], "arm").unwrap_err();
        assert!(err
            .to_string()
            .contains("pair 9 (rater r1) is not in the key"));
    }
}
