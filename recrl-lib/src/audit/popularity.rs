//! Popularity bias of recommendation lists (docs/design.md §8): average recommendation popularity,
//! the Gini coefficient of exposure, catalogue coverage and the long-tail share.

use super::privacy::TitleIndex;
use super::{put, AuditSet, Metrics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Training interactions per item: `counts[i]` for item `i` (`counts[0]` = 0).
pub fn item_counts(train: &[Vec<u32>], n_items: usize) -> Vec<f64> {
    let mut c = vec![0.0; n_items + 1];
    for &i in train.iter().flatten() {
        c[i as usize] += 1.0;
    }
    c
}

/// Gini coefficient of non-negative values: 0 when all are equal, `1 − 1/n` when one value
/// holds everything. `Σ_k (2k − n − 1) x_(k) / (n Σ x)` over ascending `x_(1..n)`.
pub fn gini(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let total: f64 = values.iter().sum();
    if values.is_empty() || total <= 0.0 {
        return 0.0;
    }
    let mut x = values.to_vec();
    x.sort_by(f64::total_cmp);
    let weighted: f64 = x
        .iter()
        .enumerate()
        .map(|(k, v)| (2.0 * (k as f64 + 1.0) - n - 1.0) * v)
        .sum();
    weighted / (n * total)
}

/// The most popular `head_share` of items (by training count; ties by id): `head[i]`.
pub fn head_items(counts: &[f64], head_share: f64) -> Vec<bool> {
    let mut ids: Vec<usize> = (1..counts.len()).collect();
    ids.sort_by(|&a, &b| counts[b].total_cmp(&counts[a]).then(a.cmp(&b)));
    let n_head = ((ids.len() as f64) * head_share).round() as usize;
    let mut head = vec![false; counts.len()];
    for &i in &ids[..n_head.min(ids.len())] {
        head[i] = true;
    }
    head
}

/// Popularity statistics of a set of recommendation lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Popularity {
    /// ARP: mean over lists of the mean training count of the listed items.
    pub arp: f64,
    /// Gini of exposure (times each catalogue item is listed, unlisted items included).
    pub gini: f64,
    /// Share of the catalogue listed at least once.
    pub coverage: f64,
    /// Share of list slots holding a long-tail item (outside the top 20% by training count).
    pub tail_share: f64,
}

/// Share of items in the head (the rest is the long tail).
pub const HEAD_SHARE: f64 = 0.2;

/// Statistics of `lists` (item ids) given training `counts` (see [`item_counts`]).
pub fn popularity(lists: &[Vec<u32>], counts: &[f64]) -> Popularity {
    let n_items = counts.len() - 1;
    let head = head_items(counts, HEAD_SHARE);
    let mut exposure = vec![0.0; n_items];
    let (mut arp, mut n_lists, mut slots, mut tail) = (0.0, 0usize, 0usize, 0usize);
    for list in lists.iter().filter(|l| !l.is_empty()) {
        let mean: f64 = list.iter().map(|&i| counts[i as usize]).sum::<f64>() / list.len() as f64;
        arp += mean;
        n_lists += 1;
        for &i in list {
            exposure[i as usize - 1] += 1.0;
            slots += 1;
            tail += usize::from(!head[i as usize]);
        }
    }
    Popularity {
        arp: arp / n_lists.max(1) as f64,
        gini: gini(&exposure),
        coverage: exposure.iter().filter(|&&e| e > 0.0).count() as f64 / n_items.max(1) as f64,
        tail_share: tail as f64 / slots.max(1) as f64,
    }
}

/// Popularity of the top-10 lists (`before` and `after` RL), of the explained (top-1) items and
/// of the titles the greedy explanations name (found by `index`), and the shifts RL made.
pub fn popularity_metrics(
    set: &AuditSet,
    before: &[Vec<u32>],
    after: &[Vec<u32>],
    index: &TitleIndex,
) -> (Metrics, BTreeMap<String, Popularity>) {
    let ds = set.ds;
    let counts = item_counts(&ds.train, ds.n_items());
    let top1 = |l: &[Vec<u32>]| -> Vec<Vec<u32>> {
        l.iter().map(|x| x[..1.min(x.len())].to_vec()).collect()
    };
    let mut pop = BTreeMap::new();
    pop.insert("top10_before".to_string(), popularity(before, &counts));
    pop.insert("top10_after".to_string(), popularity(after, &counts));
    pop.insert(
        "explained_before".to_string(),
        popularity(&top1(before), &counts),
    );
    pop.insert(
        "explained_after".to_string(),
        popularity(&top1(after), &counts),
    );
    let named: Vec<Vec<u32>> = set
        .greedy
        .iter()
        .map(|r| {
            index
                .mentions(&r.explanation)
                .into_iter()
                .flatten()
                .collect()
        })
        .collect();
    pop.insert(
        "named_in_explanations".to_string(),
        popularity(&named, &counts),
    );
    let mut metrics = Metrics::new();
    let d_gini = pop["top10_after"].gini - pop["top10_before"].gini;
    put(&mut metrics, "delta_gini", Some(d_gini.abs()), "|Gini of top-10 exposure over audit users, after RL - before RL| (full ranking, seen items excluded)");
    put(
        &mut metrics,
        "delta_arp",
        Some(pop["top10_after"].arp - pop["top10_before"].arp),
        "ARP of top-10 lists after RL - before (mean training count of listed items)",
    );
    put(
        &mut metrics,
        "delta_tail_share",
        Some(pop["top10_after"].tail_share - pop["top10_before"].tail_share),
        "long-tail share of top-10 slots after RL - before (tail = outside the top 20% items)",
    );
    (metrics, pop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_of_equal_and_one_hot_exposure() {
        assert_eq!(gini(&[3.0; 5]), 0.0);
        assert!((gini(&[0.0, 0.0, 0.0, 7.0]) - 0.75).abs() < 1e-12);
        // Hand-computed: x = 1, 2, 3 → (−2·1 + 0·2 + 2·3) / (3·6) = 4/18.
        assert!((gini(&[3.0, 1.0, 2.0]) - 4.0 / 18.0).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
    }

    #[test]
    fn list_statistics_by_hand() {
        // Items 1..=5 with counts 10, 5, 1, 1, 0: head (top 20% = 1 item) is item 1.
        let counts = vec![0.0, 10.0, 5.0, 1.0, 1.0, 0.0];
        let lists = vec![vec![1, 2], vec![1, 3]];
        let p = popularity(&lists, &counts);
        assert!((p.arp - (7.5 + 5.5) / 2.0).abs() < 1e-12);
        assert!((p.coverage - 3.0 / 5.0).abs() < 1e-12);
        assert!((p.tail_share - 0.5).abs() < 1e-12);
        // Exposure 2, 1, 1, 0, 0 → ascending 0,0,1,1,2: (−4·0 −2·0 + 0·1 + 2·1 + 4·2)/(5·4).
        assert!((p.gini - 10.0 / 20.0).abs() < 1e-12);
        assert_eq!(
            item_counts(&[vec![1, 2], vec![2]], 3),
            vec![0.0, 1.0, 2.0, 0.0]
        );
    }
}
