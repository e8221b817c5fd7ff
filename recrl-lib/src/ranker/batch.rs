//! Turning item sequences into padded id tensors, and training sequences into windows.

use tch::{Device, Kind, Tensor};

/// `[B, L]` i64 tensor of the last `max_len` items of each sequence, left-padded with 0 to the
/// longest of them (`L ≤ max_len`; at least 1 column).
pub fn left_pad<S: AsRef<[u32]>>(seqs: &[S], max_len: usize, device: Device) -> Tensor {
    fn tail(s: &[u32], max_len: usize) -> &[u32] {
        &s[s.len().saturating_sub(max_len)..]
    }
    let l = seqs
        .iter()
        .map(|s| tail(s.as_ref(), max_len).len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = vec![0i64; seqs.len() * l];
    for (row, s) in ids.chunks_mut(l).zip(seqs) {
        let s = tail(s.as_ref(), max_len);
        for (dst, &i) in row[l - s.len()..].iter_mut().zip(s) {
            *dst = i as i64;
        }
    }
    Tensor::from_slice(&ids)
        .view([seqs.len() as i64, l as i64])
        .to_device(device)
}

/// `[B, n]` i64 tensor of equal-length rows.
pub fn rows_tensor(rows: &[Vec<u32>], device: Device) -> Tensor {
    let n = rows.first().map_or(0, Vec::len) as i64;
    let flat: Vec<i64> = rows.iter().flatten().map(|&i| i as i64).collect();
    Tensor::from_slice(&flat)
        .view([rows.len() as i64, n])
        .to_device(device)
        .to_kind(Kind::Int64)
}

/// A training window of one user's training sequence: inputs `seq[start..end-1]`, targets
/// `seq[start+1..end]` (every position supervised, next-item targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// User index (0-based, into `Dataset::train`).
    pub user: usize,
    /// First item of the window.
    pub start: usize,
    /// One past the last item.
    pub end: usize,
}

/// Windows covering every training target once: cut from the newest item backwards, each with
/// up to `max_len` inputs, so long histories are used whole rather than truncated.
pub fn training_windows(train: &[Vec<u32>], max_len: usize) -> Vec<Window> {
    let mut out = Vec::new();
    for (user, seq) in train.iter().enumerate() {
        let mut end = seq.len();
        while end > 1 {
            let start = end.saturating_sub(max_len + 1);
            out.push(Window { user, start, end });
            end = start + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_pad_keeps_the_newest_items() {
        let t = left_pad(&[vec![1, 2, 3, 4], vec![5]], 3, Device::Cpu);
        assert_eq!(t.size(), [2, 3]);
        let v: Vec<i64> = t.view([-1]).try_into().unwrap();
        assert_eq!(v, [2, 3, 4, 0, 0, 5]);
    }

    #[test]
    fn windows_cover_every_target_once() {
        let train = vec![(1..=12).collect::<Vec<u32>>(), vec![7], vec![3, 4]];
        let w = training_windows(&train, 4);
        let mut targets: Vec<(usize, usize)> = w
            .iter()
            .flat_map(|w| (w.start + 1..w.end).map(move |t| (w.user, t)))
            .collect();
        targets.sort();
        let expected: Vec<(usize, usize)> = (1..12).map(|t| (0, t)).chain([(2, 1)]).collect();
        assert_eq!(targets, expected);
        assert!(w.iter().all(|w| w.end - w.start <= 5));
        assert_eq!(
            w[0],
            Window {
                user: 0,
                start: 7,
                end: 12
            }
        );
    }
}
