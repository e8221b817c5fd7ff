//! From raw interactions to sequences, with polars: implicit threshold, iterative k-core, per-user
//! chronological order (stable: file order breaks ties, and is the order itself where there
//! are no timestamps), leave-one-out split and 1-based ids (0 = padding).

use super::raw::RawData;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// Users, items and interactions at one stage of processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Distinct users.
    pub users: usize,
    /// Distinct items.
    pub items: usize,
    /// Interactions.
    pub interactions: usize,
}

/// Interactions after processing, in per-user chronological order, with 1-based ids.
#[derive(Debug, Clone)]
pub struct Sequences {
    /// `seqs[u - 1]`: item ids (1-based) of user `u`, oldest first.
    pub seqs: Vec<Vec<u32>>,
    /// Timestamps parallel to `seqs` (row numbers where the data has none).
    pub times: Vec<Vec<i64>>,
    /// Indices into `RawData::interactions`, parallel to `seqs`.
    pub rows: Vec<Vec<usize>>,
    /// Interned raw user id of each new user id (`user_of[u - 1]`).
    pub user_of: Vec<u32>,
    /// Interned raw item id of each new item id (`item_of[i - 1]`).
    pub item_of: Vec<u32>,
    /// Counts as loaded, after the threshold, after the k-core.
    pub counts: [(&'static str, Counts); 3],
    /// Passes the k-core needed to reach its fixed point.
    pub k_core_passes: usize,
}

/// Applies the threshold and the k-core, orders each user's events and remaps ids.
/// Raw user/item order decides the new ids: ids are assigned in the natural order of the raw
/// ids (numeric when they are numbers), so `1` stays before `2` and `10`.
///
/// The filtering and ordering run on a polars [`DataFrame`] (`row, user, item, rating,
/// timestamp`; `row` is the file order and breaks timestamp ties).
pub fn sequences(raw: &RawData, rating_threshold: f64, k_core: usize) -> Sequences {
    sequences_frame(raw, rating_threshold, k_core).expect("the interaction frame is well-typed")
}

fn sequences_frame(raw: &RawData, rating_threshold: f64, k_core: usize) -> PolarsResult<Sequences> {
    let df = frame(raw, None)?;
    let loaded = count(&df)?;
    let df = df.filter(&series(&df, "rating")?.gt_eq(rating_threshold)?)?;
    let thresholded = count(&df)?;
    let (df, passes) = k_core_frame(df, k_core, raw)?;
    let cored = count(&df)?;

    let mut user_of: Vec<u32> = distinct(ids(&df, "user")?.into_iter());
    let mut item_of: Vec<u32> = distinct(ids(&df, "item")?.into_iter());
    user_of.sort_by(|&a, &b| natural(raw.users.name(a), raw.users.name(b)));
    item_of.sort_by(|&a, &b| natural(raw.items.name(a), raw.items.name(b)));
    let new_user = inverse(&user_of, raw.users.len());
    let new_item = inverse(&item_of, raw.items.len());

    // sort by (new user id, time, file row): equal timestamps keep file order
    let remapped: Vec<u32> = ids(&df, "user")?
        .iter()
        .map(|&u| new_user[u as usize])
        .collect();
    let mut df = df;
    df.with_column(Column::new("new_user".into(), remapped))?;
    let df = df.sort(
        ["new_user", "timestamp", "row"],
        SortMultipleOptions::default(),
    )?;
    let mut seqs = vec![Vec::new(); user_of.len()];
    let mut times = vec![Vec::new(); user_of.len()];
    let mut rows = vec![Vec::new(); user_of.len()];
    let users = ids(&df, "new_user")?;
    let items = ids(&df, "item")?;
    let stamps = series(&df, "timestamp")?;
    let raw_rows = series(&df, "row")?;
    for (((u, i), t), r) in users
        .iter()
        .zip(&items)
        .zip(stamps.i64()?.into_no_null_iter())
        .zip(raw_rows.u64()?.into_no_null_iter())
    {
        let u = *u as usize - 1;
        seqs[u].push(new_item[*i as usize]);
        times[u].push(t);
        rows[u].push(r as usize);
    }
    Ok(Sequences {
        seqs,
        times,
        rows,
        user_of,
        item_of,
        counts: [
            ("loaded", loaded),
            ("threshold", thresholded),
            ("k_core", cored),
        ],
        k_core_passes: passes,
    })
}

/// The interactions (all, or the rows `only`) as a frame `row, user, item, rating, timestamp`.
fn frame(raw: &RawData, only: Option<&[usize]>) -> PolarsResult<DataFrame> {
    let all: Vec<usize>;
    let rows = match only {
        Some(r) => r,
        None => {
            all = (0..raw.interactions.len()).collect();
            &all
        }
    };
    let col = |f: &dyn Fn(&super::raw::RawInteraction) -> u32| -> Vec<u32> {
        rows.iter().map(|&r| f(&raw.interactions[r])).collect()
    };
    df!(
        "row" => rows.iter().map(|&r| r as u64).collect::<Vec<_>>(),
        "user" => col(&|r| r.user),
        "item" => col(&|r| r.item),
        "rating" => rows.iter().map(|&r| raw.interactions[r].rating).collect::<Vec<_>>(),
        "timestamp" => rows.iter().map(|&r| raw.interactions[r].timestamp).collect::<Vec<_>>(),
    )
}

fn series<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<&'a Series> {
    Ok(df.column(name)?.as_materialized_series())
}

fn ids(df: &DataFrame, name: &str) -> PolarsResult<Vec<u32>> {
    Ok(series(df, name)?.u32()?.into_no_null_iter().collect())
}

/// Removes interactions of users and items with fewer than `k` interactions, repeatedly,
/// until every remaining user and item has at least `k`. Returns the kept indices (ascending)
/// and the number of passes.
pub fn k_core_filter(raw: &RawData, kept: Vec<usize>, k: usize) -> (Vec<usize>, usize) {
    let run = || -> PolarsResult<(Vec<usize>, usize)> {
        let (df, passes) = k_core_frame(frame(raw, Some(&kept))?, k, raw)?;
        let rows = series(&df, "row")?.u64()?.into_no_null_iter();
        Ok((rows.map(|r| r as usize).collect(), passes))
    };
    run().expect("the interaction frame is well-typed")
}

/// The k-core on a frame: per pass, polars counts each user's and item's rows (group-by) and
/// the rows whose user or item falls below `k` are filtered out, until a pass removes nothing.
fn k_core_frame(mut df: DataFrame, k: usize, raw: &RawData) -> PolarsResult<(DataFrame, usize)> {
    let mut passes = 0;
    loop {
        passes += 1;
        let before = df.height();
        let users = frequent(&df, "user", k, raw.users.len())?;
        let items = frequent(&df, "item", k, raw.items.len())?;
        let keep: BooleanChunked = ids(&df, "user")?
            .iter()
            .zip(ids(&df, "item")?)
            .map(|(&u, i)| users[u as usize] && items[i as usize])
            .collect();
        df = df.filter(&keep)?;
        if df.height() == before {
            return Ok((df, passes));
        }
    }
}

/// `flag[id]`: whether `id` occurs at least `k` times in column `key` (ids below `n_ids`).
fn frequent(df: &DataFrame, key: &str, k: usize, n_ids: usize) -> PolarsResult<Vec<bool>> {
    let counts = df.group_by([key])?.select([key]).count()?;
    let keys = counts.columns()[0].as_materialized_series().u32()?.clone();
    let n = counts.columns()[1]
        .as_materialized_series()
        .cast(&DataType::UInt64)?;
    let mut flag = vec![false; n_ids];
    for (id, c) in keys.into_no_null_iter().zip(n.u64()?.into_no_null_iter()) {
        flag[id as usize] = c as usize >= k;
    }
    Ok(flag)
}

fn count(df: &DataFrame) -> PolarsResult<Counts> {
    Ok(Counts {
        users: series(df, "user")?.n_unique()?,
        items: series(df, "item")?.n_unique()?,
        interactions: df.height(),
    })
}

fn distinct(ids: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = ids.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `inv[raw] = new 1-based id` (0 where absent).
fn inverse(order: &[u32], n: usize) -> Vec<u32> {
    let mut inv = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        inv[old as usize] = new as u32 + 1;
    }
    inv
}

/// Numbers in numeric order before other strings, other strings lexicographically.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// Leave-one-out: last item is test, second-to-last valid, the rest train. Users with fewer
/// than 3 events cannot be split and get `None`.
pub fn leave_one_out(seq: &[u32]) -> Option<(&[u32], u32, u32)> {
    match seq {
        [train @ .., valid, test] if !train.is_empty() => Some((train, *valid, *test)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::raw::RawInteraction;

    fn raw_from(rows: &[(&str, &str, f32, i64)]) -> RawData {
        let mut raw = RawData::default();
        for &(u, i, rating, timestamp) in rows {
            raw.push(u, i, rating, timestamp);
        }
        raw
    }

    /// A tiny deterministic generator (no dependency needed for tests).
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn k_core_reaches_the_brute_force_fixed_point() {
        for seed in 0..20u64 {
            let mut s = seed + 1;
            let rows: Vec<(String, String)> = (0..200)
                .map(|_| {
                    let u = lcg(&mut s) % 20;
                    let i = (lcg(&mut s) % 30).min(lcg(&mut s) % 30); // skewed items
                    (u.to_string(), i.to_string())
                })
                .collect();
            let owned: Vec<(&str, &str, f32, i64)> = rows
                .iter()
                .map(|(u, i)| (u.as_str(), i.as_str(), 1.0, 0))
                .collect();
            let raw = raw_from(&owned);
            for k in [2, 3, 5] {
                let (kept, _) = k_core_filter(&raw, (0..raw.interactions.len()).collect(), k);
                // brute force: the largest subset where all degrees ≥ k is reached by
                // repeatedly dropping any single violating interaction group
                let mut brute: Vec<usize> = (0..raw.interactions.len()).collect();
                loop {
                    let deg = |f: &dyn Fn(&RawInteraction) -> u32, x: u32, set: &[usize]| {
                        set.iter()
                            .filter(|&&j| f(&raw.interactions[j]) == x)
                            .count()
                    };
                    let bad = brute.iter().position(|&j| {
                        let r = &raw.interactions[j];
                        deg(&|r| r.user, r.user, &brute) < k || deg(&|r| r.item, r.item, &brute) < k
                    });
                    match bad {
                        Some(p) => {
                            brute.remove(p);
                        }
                        None => break,
                    }
                }
                assert_eq!(kept, brute, "seed {seed}, k {k}");
            }
        }
    }

    #[test]
    fn order_is_chronological_with_file_order_ties_and_ids_are_natural() {
        let raw = raw_from(&[
            ("10", "b", 5.0, 30),
            ("2", "a", 4.0, 20),
            ("10", "a", 3.0, 10),
            ("10", "c", 1.0, 30), // same time as "b": file order keeps b first
            ("2", "c", 2.0, 5),
            ("2", "b", 5.0, 7),
        ]);
        let s = sequences(&raw, 0.0, 1);
        // users: "2" < "10" numerically; items a, b, c
        assert_eq!(
            s.user_of
                .iter()
                .map(|&u| raw.users.name(u))
                .collect::<Vec<_>>(),
            ["2", "10"]
        );
        assert_eq!(s.seqs, vec![vec![3, 2, 1], vec![1, 2, 3]]);
        assert_eq!(s.times, vec![vec![5, 7, 20], vec![10, 30, 30]]);
        // the threshold drops ratings below it before the k-core
        let s = sequences(&raw, 3.0, 1);
        assert_eq!(
            s.counts[1].1,
            Counts {
                users: 2,
                items: 2,
                interactions: 4
            }
        );
        assert_eq!(s.seqs, vec![vec![2, 1], vec![1, 2]]);
    }

    #[test]
    fn leave_one_out_takes_the_latest_two() {
        assert_eq!(leave_one_out(&[5, 6, 7, 8]), Some((&[5, 6][..], 7, 8)));
        assert_eq!(leave_one_out(&[5, 6, 7]), Some((&[5][..], 6, 7)));
        assert_eq!(leave_one_out(&[5, 6]), None);
    }
}
