//! Helpers shared by the integration tests.
#![allow(dead_code)]

use recrl_lib::data::{Dataset, DatasetName};
use recrl_lib::rng::Rng;

/// torch's random generator is process-wide: tests that seed it and draw from it (initialising,
/// training) take this lock so that parallel tests do not interleave their draws.
pub fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Each user walks the items in order from a random start (wrapping), 8 to 15 steps: the next
/// item is always the successor of the current one, so a sequence model can reach HR@10 ≈ 1.
pub fn successor_dataset(users: usize, n_items: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let seqs: Vec<Vec<u32>> = (0..users)
        .map(|_| {
            let start = rng.below(n_items);
            let len = 8 + rng.below(8);
            (0..len)
                .map(|t| ((start + t) % n_items) as u32 + 1)
                .collect()
        })
        .collect();
    Dataset::from_sequences(DatasetName::Ml100k, &seqs, n_items).unwrap()
}
