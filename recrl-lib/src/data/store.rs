//! Step 1's files: `data/proc/<ds>/{interactions,items,users}.parquet` + `stats.json`, and
//! `data/_checksums/<ds>.json` (sha256 of every raw and processed file and the settings).
//! Written into a temporary folder, then swapped in together with the checksum file as one
//! [`Commit`], so a failed or killed run leaves the old dataset or the new one, never half.

use super::{raw::Malformed, Counts, Dataset, DatasetName, ItemMeta, Reviews, UserMeta};
use crate::io::{sha256_file, write_atomic, Commit};
use crate::paths::Layout;
use anyhow::{anyhow, bail, Context, Result};
use polars::df;
use polars::prelude::{Column, DataFrame, ParquetReader, ParquetWriter, SerReader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings that change the processed output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Keep ratings ≥ this.
    pub rating_threshold: f64,
    /// Iterative k-core.
    pub k_core: usize,
}

/// `data/proc/<ds>/stats.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// Dataset name.
    pub dataset: String,
    /// Processing settings.
    pub settings: Settings,
    /// Users / items / interactions after each stage (`loaded`, `threshold`, `k_core`, `split`).
    pub counts: Vec<(String, Counts)>,
    /// Passes of the k-core.
    pub k_core_passes: usize,
    /// Interactions / (users × items) after processing.
    pub density: f64,
    /// Sequence length (all events of a user): min, p25, median, p75, p90, max.
    pub seq_len_quantiles: [usize; 6],
    /// Mean sequence length.
    pub seq_len_mean: f64,
    /// False when sequence order is file order.
    pub has_timestamps: bool,
    /// Malformed raw lines skipped.
    pub malformed_lines: usize,
    /// The first few malformed lines as `file:line: reason`.
    pub malformed_examples: Vec<String>,
}

impl Stats {
    /// Statistics of a processed dataset.
    pub fn of(ds: &Dataset, settings: Settings) -> Stats {
        let mut lens: Vec<usize> = (1..=ds.n_users())
            .map(|u| ds.train[u - 1].len() + 2)
            .collect();
        lens.sort_unstable();
        let q = |p: f64| {
            lens.get(((lens.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        Stats {
            dataset: ds.name.to_string(),
            settings,
            counts: ds.counts.clone(),
            k_core_passes: ds.k_core_passes,
            density: ds.density(),
            seq_len_quantiles: [q(0.0), q(0.25), q(0.5), q(0.75), q(0.9), q(1.0)],
            seq_len_mean: lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64,
            has_timestamps: ds.has_timestamps,
            malformed_lines: ds.malformed.count,
            malformed_examples: ds.malformed.examples.clone(),
        }
    }
}

impl Stats {
    /// Users, items and interactions after each stage.
    pub fn counts_table(&self) -> crate::display::Table {
        let rows = self
            .counts
            .iter()
            .map(|(stage, c)| {
                vec![
                    stage.clone(),
                    c.users.to_string(),
                    c.items.to_string(),
                    c.interactions.to_string(),
                ]
            })
            .collect();
        crate::display::Table::new(&["stage", "users", "items", "interactions"], rows)
    }

    /// Settings, density and sequence lengths.
    pub fn summary_table(&self) -> crate::display::Table {
        let q = self.seq_len_quantiles;
        crate::display::Table::key_value(vec![
            ("dataset".into(), self.dataset.clone()),
            (
                "rating threshold".into(),
                self.settings.rating_threshold.to_string(),
            ),
            (
                "k-core (passes)".into(),
                format!("{} ({})", self.settings.k_core, self.k_core_passes),
            ),
            ("density".into(), format!("{:.5}", self.density)),
            (
                "sequence length mean".into(),
                format!("{:.1}", self.seq_len_mean),
            ),
            (
                "min / p25 / median / p75 / p90 / max".into(),
                format!(
                    "{} / {} / {} / {} / {} / {}",
                    q[0], q[1], q[2], q[3], q[4], q[5]
                ),
            ),
            (
                "order".into(),
                if self.has_timestamps {
                    "timestamps (ties: file order)"
                } else {
                    "file order (no timestamps)"
                }
                .into(),
            ),
            (
                "malformed lines skipped".into(),
                self.malformed_lines.to_string(),
            ),
        ])
    }
}

/// `data/_checksums/<ds>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checksums {
    /// Settings the processed files were made with.
    pub settings: Settings,
    /// sha256 of each raw file, by path relative to the project root.
    pub raw: BTreeMap<String, String>,
    /// sha256 of each processed file, by path relative to the project root.
    pub processed: BTreeMap<String, String>,
}

/// The raw files under `raw_dir`, sorted (licence files excluded).
pub fn raw_files(raw_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(raw_dir)
        .with_context(|| format!("listing {}", raw_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("LICENSE"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn hash_all(root: &Path, files: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    files
        .iter()
        .map(|f| Ok((rel(root, f), sha256_file(f)?)))
        .collect()
}

/// True when the processed files exist, match their recorded checksums and were made from
/// the current raw files with the same settings.
pub fn is_fresh(
    root: &Path,
    name: DatasetName,
    raw_dir: &Path,
    settings: Settings,
) -> Result<bool> {
    recover_data(root, name)?;
    let Ok(text) = std::fs::read_to_string(Layout::new(root).checksum_file(name.as_str())) else {
        return Ok(false);
    };
    let Ok(recorded) = serde_json::from_str::<Checksums>(&text) else {
        return Ok(false);
    };
    if recorded.settings != settings || recorded.raw != hash_all(root, &raw_files(raw_dir)?)? {
        return Ok(false);
    }
    for (path, sha) in &recorded.processed {
        let p = root.join(path);
        if !p.is_file() || &sha256_file(&p)? != sha {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the processed dataset and its checksums; the output folder is replaced as a whole.
pub fn write(root: &Path, ds: &Dataset, raw_dir: &Path, settings: Settings) -> Result<Stats> {
    let out = Layout::new(root).proc_dir(ds.name.as_str());
    let parent = out.parent().expect("data/proc/<ds> has a parent");
    recover_data(root, ds.name)?;
    let tmp = crate::io::temp_dir_in(parent, ds.name.as_str())?;
    write_parquet(
        &mut interactions_frame(ds)?,
        &tmp.path().join("interactions.parquet"),
    )?;
    write_parquet(
        &mut items_frame(&ds.items, &ds.item_ids)?,
        &tmp.path().join("items.parquet"),
    )?;
    write_parquet(
        &mut users_frame(&ds.users, &ds.user_ids)?,
        &tmp.path().join("users.parquet"),
    )?;
    if !ds.reviews.is_empty() {
        write_parquet(
            &mut reviews_frame(&ds.reviews)?,
            &tmp.path().join(REVIEWS_FILE),
        )?;
    }
    let stats = Stats::of(ds, settings);
    write_atomic(
        &tmp.path().join(crate::paths::files::DATA_STATS),
        serde_json::to_string_pretty(&stats)?.as_bytes(),
    )?;

    // the folder and its checksum file change together: a kill leaves the old pair or the new
    let processed: Vec<(PathBuf, PathBuf)> = [
        "interactions.parquet",
        "items.parquet",
        "users.parquet",
        crate::paths::files::DATA_STATS,
        REVIEWS_FILE,
    ]
    .iter()
    .map(|f| (tmp.path().join(f), out.join(f)))
    .filter(|(staged, _)| staged.is_file())
    .collect();
    let mut sums = Checksums {
        settings,
        raw: hash_all(root, &raw_files(raw_dir)?)?,
        processed: Default::default(),
    };
    for (staged, target) in &processed {
        sums.processed
            .insert(rel(root, target), sha256_file(staged)?);
    }
    let mut commit = Commit::new(parent);
    commit.dir(tmp, &out);
    commit.bytes(
        &Layout::new(root).checksum_file(ds.name.as_str()),
        serde_json::to_string_pretty(&sums)?.as_bytes(),
    )?;
    commit.apply()?;
    Ok(stats)
}

/// Finishes a `write` that a kill interrupted and removes killed runs' temporaries, in
/// `data/proc/` and `data/_checksums/`.
fn recover_data(root: &Path, name: DatasetName) -> Result<()> {
    let layout = Layout::new(root);
    for file in [
        layout.proc_dir(name.as_str()),
        layout.checksum_file(name.as_str()),
    ] {
        crate::io::recover(file.parent().expect("data/… has a parent"))?;
    }
    Ok(())
}

fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    ParquetWriter::new(file)
        .finish(df)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .with_context(|| format!("reading {}", path.display()))
}

/// One row per event: `user, item, position` (0-based within the user's sequence),
/// `timestamp`, `split` (`train` / `valid` / `test`).
fn interactions_frame(ds: &Dataset) -> Result<DataFrame> {
    let (mut user, mut item, mut pos, mut split) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for u in 1..=ds.n_users() {
        let seq = ds.sequence(u);
        let n = seq.len();
        for (p, &i) in seq.iter().enumerate() {
            user.push(u as u32);
            item.push(i);
            pos.push(p as u32);
            split.push(if p + 2 < n {
                "train"
            } else if p + 2 == n {
                "valid"
            } else {
                "test"
            });
        }
    }
    let time: Vec<i64> = (1..=ds.n_users())
        .flat_map(|u| ds.times[u - 1].iter().copied())
        .collect();
    Ok(
        df!("user" => user, "item" => item, "position" => pos, "timestamp" => time, "split" => split)?,
    )
}

fn items_frame(items: &[ItemMeta], ids: &[String]) -> Result<DataFrame> {
    let rows = 1..items.len();
    Ok(df!(
        "item" => rows.clone().map(|i| i as u32).collect::<Vec<_>>(),
        "raw_id" => rows.clone().map(|i| ids[i].clone()).collect::<Vec<_>>(),
        "title" => rows.clone().map(|i| items[i].title.clone()).collect::<Vec<_>>(),
        "year" => rows.clone().map(|i| items[i].year).collect::<Vec<_>>(),
        "genres" => rows.clone().map(|i| items[i].genres.join("|")).collect::<Vec<_>>(),
        "author" => rows.clone().map(|i| items[i].author.clone()).collect::<Vec<_>>(),
        "tags" => rows.map(|i| items[i].tags.join("|")).collect::<Vec<_>>(),
    )?)
}

/// Kept review texts, `user, item, text`: a user's own review of a held-out item, or with
/// user 0 the item's reference review (see [`Reviews`]).
pub const REVIEWS_FILE: &str = "reviews.parquet";

fn reviews_frame(reviews: &Reviews) -> Result<DataFrame> {
    let own = reviews.own.iter().map(|(&(u, i), t)| (u, i, t));
    let of_item = reviews.of_item.iter().map(|(&i, t)| (0, i, t));
    let rows: Vec<(u32, u32, &String)> = own.chain(of_item).collect();
    Ok(df!(
        "user" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "item" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "text" => rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
    )?)
}

/// Column `c` of `df`, read from `path`; a missing column is an error naming both.
fn column(df: &DataFrame, c: &str, path: &Path) -> Result<Column> {
    df.column(c)
        .cloned()
        .map_err(|e| anyhow!("{}: column `{c}`: {e}", path.display()))
}

fn read_reviews(path: &Path) -> Result<Reviews> {
    let df = read_parquet(path)?;
    let at = path.display();
    let (user, item, text) = (
        column(&df, "user", path)?,
        column(&df, "item", path)?,
        column(&df, "text", path)?,
    );
    let (user, item, text) = (user.u32()?, item.u32()?, text.str()?);
    let mut reviews = Reviews::default();
    for r in 0..df.height() {
        let (Some(u), Some(i), Some(t)) = (user.get(r), item.get(r), text.get(r)) else {
            bail!("{at}: row {r} has a null");
        };
        if u == 0 {
            reviews.of_item.insert(i, t.to_string());
        } else {
            reviews.own.insert((u, i), t.to_string());
        }
    }
    Ok(reviews)
}

fn users_frame(users: &[UserMeta], ids: &[String]) -> Result<DataFrame> {
    let rows = 1..users.len();
    Ok(df!(
        "user" => rows.clone().map(|u| u as u32).collect::<Vec<_>>(),
        "raw_id" => rows.clone().map(|u| ids[u].clone()).collect::<Vec<_>>(),
        "age" => rows.clone().map(|u| users[u].age).collect::<Vec<_>>(),
        "gender" => rows.clone().map(|u| users[u].gender.clone()).collect::<Vec<_>>(),
        "occupation" => rows.clone().map(|u| users[u].occupation.clone()).collect::<Vec<_>>(),
        "location" => rows.map(|u| users[u].location.clone()).collect::<Vec<_>>(),
    )?)
}

/// Reads a processed dataset back from `data/proc/<ds>/`.
pub fn load(root: &Path, name: DatasetName) -> Result<Dataset> {
    recover_data(root, name)?;
    let dir = Layout::new(root).proc_dir(name.as_str());
    if !dir.join(crate::paths::files::DATA_STATS).is_file() {
        bail!(
            "{}: no processed dataset; run step 1 (`recrl data --dataset {name}`)",
            dir.display()
        );
    }
    let stats: Stats = serde_json::from_str(&std::fs::read_to_string(
        dir.join(crate::paths::files::DATA_STATS),
    )?)
    .with_context(|| {
        format!(
            "reading {}",
            dir.join(crate::paths::files::DATA_STATS).display()
        )
    })?;
    let inter = read_parquet(&dir.join("interactions.parquet"))?;
    let items = read_parquet(&dir.join("items.parquet"))?;
    let users = read_parquet(&dir.join("users.parquet"))?;
    let n_users = users.height();
    let mut ds = Dataset {
        name,
        train: vec![Vec::new(); n_users],
        valid: vec![0; n_users],
        test: vec![0; n_users],
        times: vec![Vec::new(); n_users],
        items: vec![ItemMeta::default()],
        users: vec![UserMeta::default()],
        item_ids: vec![String::new()],
        user_ids: vec![String::new()],
        has_timestamps: stats.has_timestamps,
        counts: stats.counts.clone(),
        k_core_passes: stats.k_core_passes,
        malformed: Malformed {
            count: stats.malformed_lines,
            examples: stats.malformed_examples.clone(),
        },
        reviews: Reviews::default(),
    };
    read_interactions(&mut ds, &inter, &dir.join("interactions.parquet"))?;
    read_items(&mut ds, &items)?;
    read_users(&mut ds, &users)?;
    if dir.join(REVIEWS_FILE).is_file() {
        ds.reviews = read_reviews(&dir.join(REVIEWS_FILE))?;
    }
    Ok(ds)
}

/// The interactions frame into `ds`'s training sequences, held-out items and timestamps.
fn read_interactions(ds: &mut Dataset, inter: &DataFrame, path: &Path) -> Result<()> {
    let user = column(inter, "user", path)?;
    let item = column(inter, "item", path)?;
    let time = column(inter, "timestamp", path)?;
    let split = column(inter, "split", path)?;
    let (user, item, time, split) = (user.u32()?, item.u32()?, time.i64()?, split.str()?);
    for r in 0..inter.height() {
        let (Some(u), Some(i), Some(t), Some(s)) =
            (user.get(r), item.get(r), time.get(r), split.get(r))
        else {
            bail!("{}: row {r} has a null", path.display());
        };
        let u = u as usize - 1;
        ds.times[u].push(t);
        match s {
            "train" => ds.train[u].push(i),
            "valid" => ds.valid[u] = i,
            "test" => ds.test[u] = i,
            other => bail!("{}: row {r}: split `{other}`", path.display()),
        }
    }
    Ok(())
}

/// A string column of `df`, row by row.
fn strings(df: &DataFrame, c: &str) -> Result<Vec<Option<String>>> {
    let ca = df.column(c)?.str()?;
    Ok((0..ca.len())
        .map(|r| ca.get(r).map(str::to_string))
        .collect())
}

/// The items frame appended to `ds`'s item ids and metadata (lists are `|`-separated).
fn read_items(ds: &mut Dataset, items: &DataFrame) -> Result<()> {
    let (raw_ids, titles, genres, authors, tags) = (
        strings(items, "raw_id")?,
        strings(items, "title")?,
        strings(items, "genres")?,
        strings(items, "author")?,
        strings(items, "tags")?,
    );
    let years = items.column("year")?.i32()?;
    let years: Vec<Option<i32>> = (0..years.len()).map(|r| years.get(r)).collect();
    let split_list = |v: &Option<String>| -> Vec<String> {
        v.as_deref()
            .unwrap_or("")
            .split('|')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    for r in 0..items.height() {
        ds.item_ids.push(raw_ids[r].clone().unwrap_or_default());
        ds.items.push(ItemMeta {
            title: titles[r].clone().unwrap_or_default(),
            year: years[r],
            genres: split_list(&genres[r]),
            author: authors[r].clone(),
            tags: split_list(&tags[r]),
        });
    }
    Ok(())
}

/// The users frame appended to `ds`'s user ids and metadata.
fn read_users(ds: &mut Dataset, users: &DataFrame) -> Result<()> {
    let (uids, genders, occupations, locations) = (
        strings(users, "raw_id")?,
        strings(users, "gender")?,
        strings(users, "occupation")?,
        strings(users, "location")?,
    );
    let ages = users.column("age")?.u32()?;
    let ages: Vec<Option<u32>> = (0..ages.len()).map(|r| ages.get(r)).collect();
    for r in 0..users.height() {
        ds.user_ids.push(uids[r].clone().unwrap_or_default());
        ds.users.push(UserMeta {
            age: ages[r],
            gender: genders[r].clone(),
            occupation: occupations[r].clone(),
            location: locations[r].clone(),
        });
    }
    Ok(())
}
