//! Ranking metrics from the 0-based rank of each user's held-out item.
//!
//! With `r` the number of candidates ranked above the target (ties count against it):
//! `HR@k = [r < k]`, `NDCG@k = [r < k] / log2(r + 2)` (one relevant item, so IDCG = 1) and
//! `MRR = 1 / (r + 1)` (no cut-off). Each is averaged over users.

use serde::{Deserialize, Serialize};

/// Which candidates the held-out item is ranked against. Every metric carries its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// All items except the user's history (the headline protocol).
    Full,
    /// The held-out item and 100 unseen items drawn uniformly (Kang & McAuley 2018).
    #[serde(rename = "sampled-100")]
    Sampled100,
}

impl Protocol {
    /// Both protocols, headline first.
    pub const ALL: [Protocol; 2] = [Protocol::Full, Protocol::Sampled100];

    /// Negatives per user in the sampled protocol.
    pub const SAMPLED_NEGATIVES: usize = 100;

    /// `full` or `sampled-100`, as printed next to every number.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Full => "full",
            Protocol::Sampled100 => "sampled-100",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Averages of the ranking metrics over `users`, labelled with their protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankMetrics {
    /// Candidate set the ranks were computed in.
    pub protocol: Protocol,
    /// Users evaluated.
    pub users: usize,
    /// Hit rate at 10.
    pub hr10: f64,
    /// NDCG at 10.
    pub ndcg10: f64,
    /// Hit rate at 20.
    pub hr20: f64,
    /// NDCG at 20.
    pub ndcg20: f64,
    /// Mean reciprocal rank (no cut-off).
    pub mrr: f64,
}

/// NDCG@k of one user whose target has 0-based rank `r`.
pub fn ndcg_at(r: usize, k: usize) -> f64 {
    if r < k {
        1.0 / ((r + 2) as f64).log2()
    } else {
        0.0
    }
}

impl RankMetrics {
    /// Metrics of the given 0-based ranks. Empty input gives zeros.
    pub fn from_ranks(protocol: Protocol, ranks: &[usize]) -> RankMetrics {
        let n = ranks.len().max(1) as f64;
        let mean = |f: &dyn Fn(usize) -> f64| ranks.iter().map(|&r| f(r)).sum::<f64>() / n;
        RankMetrics {
            protocol,
            users: ranks.len(),
            hr10: mean(&|r| (r < 10) as u8 as f64),
            ndcg10: mean(&|r| ndcg_at(r, 10)),
            hr20: mean(&|r| (r < 20) as u8 as f64),
            ndcg20: mean(&|r| ndcg_at(r, 20)),
            mrr: mean(&|r| 1.0 / (r + 1) as f64),
        }
    }

    /// Column names of [`RankMetrics::row`].
    pub const COLUMNS: [&'static str; 7] = [
        "protocol", "users", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR",
    ];

    /// One table row: protocol, users and the five metrics with 4 decimals.
    pub fn row(&self) -> Vec<String> {
        let mut row = vec![self.protocol.to_string(), self.users.to_string()];
        row.extend(
            [self.hr10, self.ndcg10, self.hr20, self.ndcg20, self.mrr].map(|v| format!("{v:.4}")),
        );
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ranks() {
        // ranks 0, 1, 9, 10, 25 (0-based)
        let m = RankMetrics::from_ranks(Protocol::Full, &[0, 1, 9, 10, 25]);
        let l2 = |x: f64| x.log2();
        assert_eq!(m.users, 5);
        assert!((m.hr10 - 3.0 / 5.0).abs() < 1e-12);
        assert!((m.hr20 - 4.0 / 5.0).abs() < 1e-12);
        let ndcg10 = (1.0 + 1.0 / l2(3.0) + 1.0 / l2(11.0)) / 5.0;
        assert!((m.ndcg10 - ndcg10).abs() < 1e-12);
        let ndcg20 = ndcg10 + 1.0 / l2(12.0) / 5.0;
        assert!((m.ndcg20 - ndcg20).abs() < 1e-12);
        let mrr = (1.0 + 0.5 + 0.1 + 1.0 / 11.0 + 1.0 / 26.0) / 5.0;
        assert!((m.mrr - mrr).abs() < 1e-12);
    }

    #[test]
    fn perfect_and_empty() {
        let m = RankMetrics::from_ranks(Protocol::Sampled100, &[0; 7]);
        assert_eq!((m.hr10, m.ndcg10, m.mrr), (1.0, 1.0, 1.0));
        let e = RankMetrics::from_ranks(Protocol::Full, &[]);
        assert_eq!((e.users, e.hr10), (0, 0.0));
        assert_eq!(m.row()[0], "sampled-100");
    }
}
