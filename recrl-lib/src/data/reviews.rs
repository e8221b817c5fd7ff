//! Review texts kept as reference explanations (Amazon Books): each user's own reviews of
//! their held-out items, and each item's earliest review in anyone's training part.

use super::raw::RawData;
use std::collections::BTreeMap;

/// Where a reference explanation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReviewKind {
    /// The user's own review of the explained item (it was one of their held-out items).
    Own,
    /// The item's earliest review in any user's training part.
    OfItem,
}

/// The review texts a processed dataset keeps (empty for datasets without reviews). A
/// recommended item is usually one the user never reviewed, so besides the user's own reviews
/// of their validation and test items, each item keeps one review by someone else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviews {
    /// `(user, item)` → the user's own review of a held-out (validation or test) item.
    pub own: BTreeMap<(u32, u32), String>,
    /// `item` → the item's earliest review in any user's training part (time, then file order).
    pub of_item: BTreeMap<u32, String>,
}

impl Reviews {
    /// True when no review is kept.
    pub fn is_empty(&self) -> bool {
        self.own.is_empty() && self.of_item.is_empty()
    }

    /// The reference review for explaining `item` to `user`: their own review, else the item's.
    pub fn reference(&self, user: u32, item: u32) -> Option<(&str, ReviewKind)> {
        if let Some(text) = self.own.get(&(user, item)) {
            return Some((text, ReviewKind::Own));
        }
        self.of_item
            .get(&item)
            .map(|text| (text.as_str(), ReviewKind::OfItem))
    }
}

/// Collects [`Reviews`] while the split is built, one user at a time.
#[derive(Debug, Default)]
pub(super) struct ReviewPicker {
    reviews: Reviews,
    /// `item` → (timestamp, raw row) of the review kept in `of_item`.
    earliest: BTreeMap<u32, (i64, usize)>,
}

impl ReviewPicker {
    /// Adds `user`'s events: `items`, the raw interaction `rows` and `times`, all oldest first;
    /// the last two are the held-out ones.
    pub fn add_user(
        &mut self,
        raw: &RawData,
        user: u32,
        items: &[u32],
        rows: &[usize],
        times: &[i64],
    ) {
        let held_out = items.len().saturating_sub(2);
        for (p, ((&item, &row), &t)) in items.iter().zip(rows).zip(times).enumerate() {
            let Some(text) = raw.reviews.get(&row) else {
                continue;
            };
            if p >= held_out {
                self.reviews.own.insert((user, item), text.clone());
            } else if self.earliest.get(&item).is_none_or(|&e| (t, row) < e) {
                self.earliest.insert(item, (t, row));
                self.reviews.of_item.insert(item, text.clone());
            }
        }
    }

    /// The reviews picked.
    pub fn finish(self) -> Reviews {
        self.reviews
    }
}
