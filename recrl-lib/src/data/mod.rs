//! Step 1: raw public datasets → user sequences with a leave-one-out split.
//!
//! * [`load_raw`] reads a dataset's real raw files (one loader per format, see [`DatasetName`]).
//! * [`Dataset::from_raw`] applies the implicit threshold, the iterative k-core, per-user
//!   chronological order and the leave-one-out split, and remaps ids to 1..=n (0 = padding).

mod movielens;
mod others;
pub mod process;
mod pyliteral;
pub mod raw;
pub mod reviews;
pub mod source;
pub mod split;
pub mod store;

pub use movielens::{readable_title, split_title_year};
pub use process::{leave_one_out, Counts};
pub use raw::{ItemMeta, RawData, UserMeta};
pub use reviews::{ReviewKind, Reviews};
pub use split::UserSplit;

use anyhow::{bail, Result};
use std::path::Path;

/// The datasets the loaders read, each in its real raw format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// MovieLens-100K as RecBole atomic files (`ml-100k.inter/.item/.user`), from the `recbole` wheel.
    Ml100k,
    /// MovieLens-1M: `ratings.dat`, `movies.dat`, `users.dat` (`::`, Latin-1).
    Ml1m,
    /// MovieLens-25M: `ratings.csv`, `movies.csv`, optional `tags.csv`.
    Ml25m,
    /// Amazon Books (McAuley): `reviews_Books_5.json.gz` (2014) or `Books_5.json.gz` (2018), `meta_Books.json.gz`.
    Books,
    /// Book-Crossing: `BX-Book-Ratings.csv`, `BX-Books.csv`, `BX-Users.csv` (`;`, Latin-1). No timestamps.
    Bookcrossing,
    /// Steam-200K: `steam-200k.csv`, header-less; purchases. No timestamps.
    Steam,
}

impl DatasetName {
    /// Every dataset, in documentation order.
    pub const ALL: [DatasetName; 6] = [
        DatasetName::Ml100k,
        DatasetName::Ml1m,
        DatasetName::Ml25m,
        DatasetName::Books,
        DatasetName::Bookcrossing,
        DatasetName::Steam,
    ];

    /// The name used on the command line, in the configuration and in paths.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Ml100k => "ml-100k",
            DatasetName::Ml1m => "ml-1m",
            DatasetName::Ml25m => "ml-25m",
            DatasetName::Books => "books",
            DatasetName::Bookcrossing => "bookcrossing",
            DatasetName::Steam => "steam",
        }
    }
}

impl std::str::FromStr for DatasetName {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match DatasetName::ALL.iter().find(|d| d.as_str() == s) {
            Some(d) => Ok(*d),
            None => {
                let known: Vec<_> = DatasetName::ALL.iter().map(|d| d.as_str()).collect();
                bail!("unknown dataset `{s}` (known: {})", known.join(", "))
            }
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default budget of malformed lines a load tolerates (counted and reported) before failing.
pub const MAX_MALFORMED: usize = 1000;

/// Reads `name`'s raw files from `dir` (e.g. `data/raw/ml-100k`).
pub fn load_raw(name: DatasetName, dir: &Path, max_malformed: usize) -> Result<RawData> {
    if !dir.is_dir() {
        bail!(
            "{}: no such folder (raw files of {name} go here)",
            dir.display()
        );
    }
    match name {
        DatasetName::Ml100k => movielens::load_ml100k(dir, max_malformed),
        DatasetName::Ml1m => movielens::load_ml1m(dir, max_malformed),
        DatasetName::Ml25m => movielens::load_ml25m(dir, max_malformed),
        DatasetName::Books => others::load_books(dir, max_malformed),
        DatasetName::Bookcrossing => others::load_bookcrossing(dir, max_malformed),
        DatasetName::Steam => others::load_steam(dir, max_malformed),
    }
}

/// A processed dataset: per-user sequences split leave-one-out, with metadata for prompts.
/// Users are `1..=n_users()`, items `1..=n_items()`; id 0 is padding everywhere.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Which dataset.
    pub name: DatasetName,
    /// `train[u - 1]`: user `u`'s training items, oldest first.
    pub train: Vec<Vec<u32>>,
    /// `valid[u - 1]`: the second-to-last item.
    pub valid: Vec<u32>,
    /// `test[u - 1]`: the last item.
    pub test: Vec<u32>,
    /// `times[u - 1]`: timestamps of user `u`'s whole sequence (row numbers without timestamps).
    pub times: Vec<Vec<i64>>,
    /// `items[i]`: metadata of item `i` (`items[0]` is the padding placeholder).
    pub items: Vec<ItemMeta>,
    /// `users[u]`: attributes of user `u` (`users[0]` is a placeholder).
    pub users: Vec<UserMeta>,
    /// `item_ids[i]`: the raw id of item `i` (`""` at 0).
    pub item_ids: Vec<String>,
    /// `user_ids[u]`: the raw id of user `u` (`""` at 0).
    pub user_ids: Vec<String>,
    /// False when sequence order is file order (no timestamps in the raw data).
    pub has_timestamps: bool,
    /// Counts as loaded, after the threshold, after the k-core, after the split.
    pub counts: Vec<(String, Counts)>,
    /// Passes the k-core needed.
    pub k_core_passes: usize,
    /// Malformed raw lines that were skipped.
    pub malformed: raw::Malformed,
    /// Review texts kept as reference explanations (Amazon Books; empty elsewhere).
    pub reviews: Reviews,
}

impl Dataset {
    /// No users and no items yet: only the padding rows (id 0) of the id maps and metadata.
    fn empty(name: DatasetName) -> Dataset {
        Dataset {
            name,
            train: Vec::new(),
            valid: Vec::new(),
            test: Vec::new(),
            times: Vec::new(),
            items: vec![ItemMeta::default()],
            users: vec![UserMeta::default()],
            item_ids: vec![String::new()],
            user_ids: vec![String::new()],
            has_timestamps: false,
            counts: Vec::new(),
            k_core_passes: 0,
            malformed: raw::Malformed::default(),
            reviews: Reviews::default(),
        }
    }

    /// Processes raw data: threshold, k-core, chronological order, leave-one-out, id remap.
    /// Users with fewer than 3 events after the k-core (possible only for k < 3) are dropped.
    pub fn from_raw(
        name: DatasetName,
        raw: &RawData,
        rating_threshold: f64,
        k_core: usize,
    ) -> Dataset {
        let s = process::sequences(raw, rating_threshold, k_core);
        let mut ds = Dataset {
            has_timestamps: raw.has_timestamps,
            counts: s.counts.iter().map(|(k, c)| (k.to_string(), *c)).collect(),
            k_core_passes: s.k_core_passes,
            malformed: raw.malformed.clone(),
            ..Dataset::empty(name)
        };
        for &item in &s.item_of {
            let mut meta = raw.item_meta.get(&item).cloned().unwrap_or_default();
            if meta.title.is_empty() {
                meta.title = raw.items.name(item).to_string();
            }
            ds.items.push(meta);
            ds.item_ids.push(raw.items.name(item).to_string());
        }
        let mut reviews = reviews::ReviewPicker::default();
        for (u, seq) in s.seqs.iter().enumerate() {
            let Some((train, valid, test)) = leave_one_out(seq) else {
                continue;
            };
            let user = ds.train.len() as u32 + 1;
            reviews.add_user(raw, user, seq, &s.rows[u], &s.times[u]);
            let raw_user = s.user_of[u];
            ds.train.push(train.to_vec());
            ds.valid.push(valid);
            ds.test.push(test);
            ds.times.push(s.times[u].clone());
            ds.users
                .push(raw.user_meta.get(&raw_user).cloned().unwrap_or_default());
            ds.user_ids.push(raw.users.name(raw_user).to_string());
        }
        let split = Counts {
            users: ds.n_users(),
            items: ds.n_items(),
            interactions: ds.train.iter().map(|t| t.len() + 2).sum(),
        };
        ds.counts.push(("split".to_string(), split));
        ds.reviews = reviews.finish();
        ds
    }

    /// A dataset from ready-made sequences (items in `1..=n_items`, oldest first, at least 3
    /// each): leave-one-out split, sequences as users `1..`, placeholder titles (`item <i>`).
    /// For tests and for data that does not come through a loader.
    pub fn from_sequences(name: DatasetName, seqs: &[Vec<u32>], n_items: usize) -> Result<Dataset> {
        let mut ds = Dataset::empty(name);
        for i in 1..=n_items {
            ds.items.push(ItemMeta {
                title: format!("item {i}"),
                ..Default::default()
            });
            ds.item_ids.push(i.to_string());
        }
        for (u, seq) in seqs.iter().enumerate() {
            if let Some(&bad) = seq.iter().find(|&&i| i == 0 || i as usize > n_items) {
                bail!("sequence {}: item {bad} outside 1..={n_items}", u + 1);
            }
            let Some((train, valid, test)) = leave_one_out(seq) else {
                bail!("sequence {}: {} items, at least 3 needed", u + 1, seq.len());
            };
            ds.train.push(train.to_vec());
            ds.valid.push(valid);
            ds.test.push(test);
            ds.times.push((0..seq.len() as i64).collect());
            ds.users.push(UserMeta::default());
            ds.user_ids.push((u + 1).to_string());
        }
        Ok(ds)
    }

    /// Number of users (ids `1..=n_users`).
    pub fn n_users(&self) -> usize {
        self.train.len()
    }

    /// Number of items (ids `1..=n_items`).
    pub fn n_items(&self) -> usize {
        self.items.len() - 1
    }

    /// User `u`'s whole sequence (train, valid, test), oldest first.
    pub fn sequence(&self, u: usize) -> Vec<u32> {
        let mut s = self.train[u - 1].clone();
        s.extend([self.valid[u - 1], self.test[u - 1]]);
        s
    }

    /// Title of item `i`.
    pub fn title(&self, i: u32) -> &str {
        &self.items[i as usize].title
    }

    /// The reference explanation of `item`: a sentence made from its metadata, e.g. "Toy Story is
    /// an Animation, Children's and Comedy film from 1995." or "Dune is a book by Frank Herbert
    /// from 1965.".
    pub fn reference_sentence(&self, item: u32) -> String {
        let m = &self.items[item as usize];
        let year = m.year.map(|y| format!(" from {y}")).unwrap_or_default();
        if let Some(author) = &m.author {
            return format!("{} is a book by {author}{year}.", m.title);
        }
        let mut kinds = m.genres.clone();
        kinds.extend(m.tags.iter().take(3).cloned());
        let listed = match kinds.len() {
            0 => return format!("{} is a film{year}.", m.title),
            1 => kinds[0].clone(),
            n => format!("{} and {}", kinds[..n - 1].join(", "), kinds[n - 1]),
        };
        let article = if listed.starts_with(['A', 'E', 'I', 'O', 'U']) {
            "an"
        } else {
            "a"
        };
        format!("{} is {article} {listed} film{year}.", m.title)
    }

    /// Events per user (whole sequences), indexed `u - 1`.
    pub fn user_counts(&self) -> Vec<usize> {
        self.train.iter().map(|t| t.len() + 2).collect()
    }

    /// Events per item (whole sequences), indexed `i - 1`.
    pub fn item_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.n_items()];
        for u in 1..=self.n_users() {
            for i in self.sequence(u) {
                c[i as usize - 1] += 1;
            }
        }
        c
    }

    /// Interactions / (users × items) of the processed data.
    pub fn density(&self) -> f64 {
        let n: usize = self.train.iter().map(|t| t.len() + 2).sum();
        n as f64 / (self.n_users() as f64 * self.n_items() as f64)
    }
}

/// Loads the raw files on a scoped thread while this one reports a text progress bar
/// (`[#####...............]  25%  170/680 MB`) through `progress` at every 10% of the bytes.
fn load_with_progress(
    name: DatasetName,
    raw_dir: &Path,
    progress: &mut impl FnMut(&str),
) -> Result<RawData> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let total: u64 = store::raw_files(raw_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let counter = std::sync::Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        let c = counter.clone();
        let loader = scope.spawn(move || {
            source::count_bytes_into(c);
            load_raw(name, raw_dir, MAX_MALFORMED)
        });
        let mut shown = 0;
        while !loader.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let done = counter.load(Ordering::Relaxed).min(total);
            let pct = (done * 100).checked_div(total).unwrap_or(0) as usize;
            if pct >= shown + 10 && pct < 100 {
                shown = pct / 10 * 10;
                progress(&progress_bar(name.as_str(), pct, done, total));
            }
        }
        let raw = loader.join().expect("the loader thread does not panic")?;
        progress(&progress_bar(name.as_str(), 100, total, total));
        Ok(raw)
    })
}

/// `ml-25m: [##########..........]  50%  340/680 MB`
pub fn progress_bar(what: &str, pct: usize, done: u64, total: u64) -> String {
    format!(
        "{what}: {}  {:.0}/{:.0} MB",
        crate::display::bar(pct),
        done as f64 / 1e6,
        total as f64 / 1e6
    )
}

/// Step 1 for one dataset: reads `data/raw/<ds>/`, processes it and writes `data/proc/<ds>/`
/// and `data/_checksums/<ds>.json`, unless those exist and their checksums match the raw files
/// and settings (then the processed files are read back). `progress` receives one line per stage.
/// Returns the dataset, its statistics and whether processing was skipped.
pub fn prepare(
    root: &Path,
    name: DatasetName,
    settings: store::Settings,
    force: bool,
    mut progress: impl FnMut(&str),
) -> Result<(Dataset, store::Stats, bool)> {
    let raw_dir = crate::paths::Layout::new(root).raw_dir(name.as_str());
    let t0 = std::time::Instant::now();
    let secs = |t: std::time::Instant| format!("{:.1}s", t.elapsed().as_secs_f64());
    if !force && store::is_fresh(root, name, &raw_dir, settings)? {
        progress(&format!(
            "{name}: processed files are up to date (checksums match); reading them"
        ));
        let ds = store::load(root, name)?;
        let stats = store::Stats::of(&ds, settings);
        progress(&format!(
            "{name}: read {} users, {} items in {}",
            ds.n_users(),
            ds.n_items(),
            secs(t0)
        ));
        return Ok((ds, stats, true));
    }
    progress(&format!(
        "{name}: [1/3] reading raw files in {}",
        raw_dir.display()
    ));
    let raw = load_with_progress(name, &raw_dir, &mut progress)?;
    progress(&format!(
        "{name}: [1/3] {} interactions read in {}",
        raw.interactions.len(),
        secs(t0)
    ));
    let t1 = std::time::Instant::now();
    let ds = Dataset::from_raw(name, &raw, settings.rating_threshold, settings.k_core);
    drop(raw);
    progress(&format!(
        "{name}: [2/3] {}-core in {} passes, leave-one-out: {} users, {} items in {}",
        settings.k_core,
        ds.k_core_passes,
        ds.n_users(),
        ds.n_items(),
        secs(t1)
    ));
    let t2 = std::time::Instant::now();
    let stats = store::write(root, &ds, &raw_dir, settings)?;
    progress(&format!(
        "{name}: [3/3] wrote {} and checksums in {} (total {})",
        crate::paths::Layout::new(root)
            .proc_dir(name.as_str())
            .display(),
        secs(t2),
        secs(t0)
    ));
    Ok((ds, stats, false))
}

/// `(count, how many ids have that count)`, sorted by count: the degree distribution.
pub fn frequency_of(counts: &[usize]) -> Vec<(usize, usize)> {
    let mut m = std::collections::BTreeMap::new();
    for &c in counts {
        *m.entry(c).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_has_a_configuration_section_name_and_no_other() {
        let names: Vec<&str> = DatasetName::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names, crate::config::DATASET_SECTIONS);
    }

    #[test]
    fn progress_bar_fills_one_mark_per_five_percent() {
        assert_eq!(
            progress_bar("ml-25m", 50, 340_000_000, 680_000_000),
            "ml-25m: [##########..........]  50%  340/680 MB"
        );
        assert_eq!(
            progress_bar("x", 100, 5, 5),
            "x: [####################] 100%  0/0 MB"
        );
        assert_eq!(
            progress_bar("x", 0, 0, 0),
            "x: [....................]   0%  0/0 MB"
        );
    }

    #[test]
    fn frequency_of_counts_ids_per_count() {
        assert_eq!(frequency_of(&[3, 1, 3, 2, 3]), vec![(1, 1), (2, 1), (3, 3)]);
    }
}
