//! The common shape every loader produces: interactions in file order with interned ids, plus
//! item and user metadata. Nothing here is filtered yet; see `process`.

use rustc_hash::FxHashMap;

/// Dense ids for raw string ids, in order of first appearance.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The dense id of `name`, assigning the next one on first sight.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    /// The dense id of `name`, if seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The raw id behind a dense id.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Number of distinct ids.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One user-item event as read from the raw files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawInteraction {
    /// Interned user id.
    pub user: u32,
    /// Interned item id.
    pub item: u32,
    /// Explicit rating, or 1.0 for implicit events.
    pub rating: f32,
    /// Unix seconds; the row number when the dataset has no timestamps.
    pub timestamp: i64,
}

/// What a prompt can say about an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemMeta {
    /// Title without the year.
    pub title: String,
    /// Release or publication year.
    pub year: Option<i32>,
    /// Genres or categories.
    pub genres: Vec<String>,
    /// Author (books).
    pub author: Option<String>,
    /// Free-form tags (ML-25M tags).
    pub tags: Vec<String>,
}

/// User attributes where the dataset has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserMeta {
    /// Age in years, or an age band's lower bound (ML-1M).
    pub age: Option<u32>,
    /// `M` / `F`.
    pub gender: Option<String>,
    /// Occupation name or code.
    pub occupation: Option<String>,
    /// Location or zip code.
    pub location: Option<String>,
}

/// A dataset as loaded: interactions in file order and the metadata found for its ids.
#[derive(Debug, Clone, Default)]
pub struct RawData {
    /// Interactions in file order.
    pub interactions: Vec<RawInteraction>,
    /// Raw user ids.
    pub users: Interner,
    /// Raw item ids.
    pub items: Interner,
    /// Item metadata by interned item id (items without metadata are absent).
    pub item_meta: FxHashMap<u32, ItemMeta>,
    /// User metadata by interned user id.
    pub user_meta: FxHashMap<u32, UserMeta>,
    /// False when the format has no timestamps and `timestamp` is the row number.
    pub has_timestamps: bool,
    /// Review texts by interaction index (Amazon), used as reference explanations.
    pub reviews: FxHashMap<usize, String>,
    /// Lines skipped as malformed, with the first few as `file:line: reason`.
    pub malformed: Malformed,
}

impl RawData {
    /// Appends one event, interning its raw ids; returns the interned item id.
    pub fn push(&mut self, user: &str, item: &str, rating: f32, timestamp: i64) -> u32 {
        let (user, item) = (self.users.intern(user), self.items.intern(item));
        self.interactions.push(RawInteraction {
            user,
            item,
            rating,
            timestamp,
        });
        item
    }

    /// Keeps `meta` for the user whose raw id is `raw_id`, when that user has interactions
    /// (metadata of users without any is not kept).
    pub fn set_user_meta(&mut self, raw_id: &str, meta: UserMeta) {
        if let Some(id) = self.users.get(raw_id) {
            self.user_meta.insert(id, meta);
        }
    }
}

/// Malformed input lines that were tolerated.
#[derive(Debug, Clone, Default)]
pub struct Malformed {
    /// How many lines were skipped.
    pub count: usize,
    /// The first few, as `file:line: reason`.
    pub examples: Vec<String>,
}
