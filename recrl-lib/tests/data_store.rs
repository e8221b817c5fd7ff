//! Step 1's files: the Parquet round trip gives back the same dataset, checksums decide when
//! processing is skipped, and a failed run leaves no half-written dataset.

use recrl_lib::data::store::{self, Settings};
use recrl_lib::data::{prepare, DatasetName, ReviewKind};
use recrl_lib::paths::Layout;
use std::path::Path;

const ML100K: DatasetName = DatasetName::Ml100k;
const DEFAULT: Settings = Settings {
    k_core: 5,
    rating_threshold: 0.0,
};

/// A scratch project root holding a copy of the real ml-100k raw files.
fn scratch_root() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().unwrap();
    let raw = root.path().join("data/raw/ml-100k");
    std::fs::create_dir_all(&raw).unwrap();
    for f in ["ml-100k.inter", "ml-100k.item", "ml-100k.user"] {
        std::fs::copy(repo.join("data/raw/ml-100k").join(f), raw.join(f))
            .expect("ml-100k assets: run scripts/setup.sh assets");
    }
    root
}

#[test]
fn parquet_round_trip_and_checksum_freshness() {
    let root = scratch_root();
    let r = root.path();
    let (ds, stats, skipped) = prepare(r, ML100K, DEFAULT, false, |_| {}).unwrap();
    assert!(!skipped);
    for f in [
        "interactions.parquet",
        "items.parquet",
        "users.parquet",
        "stats.json",
    ] {
        assert!(Layout::new(r).proc_dir("ml-100k").join(f).is_file(), "{f}");
    }
    assert!(Layout::new(r).checksum_file("ml-100k").is_file());
    assert_eq!(stats.counts.last().unwrap().1.users, ds.n_users());

    // second run: skipped, and what is read back equals what was written
    let (back, _, skipped) = prepare(r, ML100K, DEFAULT, false, |_| {}).unwrap();
    assert!(skipped);
    assert_eq!(back.train, ds.train);
    assert_eq!(
        (back.valid.clone(), back.test.clone()),
        (ds.valid.clone(), ds.test.clone())
    );
    assert_eq!(back.times, ds.times);
    assert_eq!(back.items, ds.items);
    assert_eq!(back.users, ds.users);
    assert_eq!(
        (back.item_ids.clone(), back.user_ids.clone()),
        (ds.item_ids.clone(), ds.user_ids.clone())
    );

    let raw_dir = r.join("data/raw/ml-100k");
    // other settings: stale
    assert!(!store::is_fresh(
        r,
        ML100K,
        &raw_dir,
        Settings {
            k_core: 10,
            ..DEFAULT
        }
    )
    .unwrap());
    // a changed processed file: stale
    let stats_file = Layout::new(r).proc_dir("ml-100k").join("stats.json");
    let original = std::fs::read(&stats_file).unwrap();
    std::fs::write(&stats_file, b"{}").unwrap();
    assert!(!store::is_fresh(r, ML100K, &raw_dir, DEFAULT).unwrap());
    std::fs::write(&stats_file, &original).unwrap();
    assert!(store::is_fresh(r, ML100K, &raw_dir, DEFAULT).unwrap());
    // a changed raw file: stale
    let mut inter = std::fs::read(raw_dir.join("ml-100k.inter")).unwrap();
    inter.extend_from_slice(b"1\t1\t5\t999999999\n");
    std::fs::write(raw_dir.join("ml-100k.inter"), inter).unwrap();
    assert!(!store::is_fresh(r, ML100K, &raw_dir, DEFAULT).unwrap());
}

#[test]
fn a_failed_run_leaves_the_previous_output_and_no_temporary_folders() {
    let root = scratch_root();
    let r = root.path();
    prepare(r, ML100K, DEFAULT, false, |_| {}).unwrap();
    let before = std::fs::read(
        Layout::new(r)
            .proc_dir("ml-100k")
            .join("interactions.parquet"),
    )
    .unwrap();

    // break the raw data: a line with a missing field, beyond a tolerance of 1000
    let raw = r.join("data/raw/ml-100k/ml-100k.inter");
    let mut text = std::fs::read_to_string(&raw).unwrap();
    text.push_str(&"1\t2\n".repeat(1001));
    std::fs::write(&raw, text).unwrap();
    let err = prepare(r, ML100K, DEFAULT, true, |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("ml-100k.inter:"), "{err:#}");

    // the previous dataset is intact, and nothing else is in data/proc
    let after = std::fs::read(
        Layout::new(r)
            .proc_dir("ml-100k")
            .join("interactions.parquet"),
    )
    .unwrap();
    assert_eq!(before, after);
    let entries: Vec<_> = std::fs::read_dir(r.join("data/proc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["ml-100k"]);
}

#[test]
fn load_without_step_1_says_what_to_run() {
    let root = tempfile::tempdir().unwrap();
    let err = store::load(root.path(), DatasetName::Steam)
        .unwrap_err()
        .to_string();
    assert!(err.contains("recrl data --dataset steam"), "{err}");
}

/// Amazon-format reviews (uncompressed JSON lines): users A, B, C; items w, x, y, z.
/// A: x 1, y 2 | z 3, w 4 · B: y 0 | x 5, w 6 · C: z 7 | x 8 (no text), y 9 — each user's
/// last two events are held out.
const BOOK_REVIEWS: &[(&str, &str, i64, Option<&str>)] = &[
    ("A", "x", 1, Some("A on x")),
    ("A", "y", 2, Some("A on y")),
    ("A", "z", 3, Some("A on z")),
    ("A", "w", 4, Some("A on w")),
    ("B", "y", 0, Some("B on y")),
    ("B", "x", 5, Some("B on x")),
    ("B", "w", 6, Some("B on w")),
    ("C", "z", 7, Some("C on z")),
    ("C", "x", 8, None),
    ("C", "y", 9, Some("C on y")),
];

#[test]
fn amazon_review_texts_are_kept_as_references_and_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let raw = r.join("data/raw/books");
    std::fs::create_dir_all(&raw).unwrap();
    let lines: String = BOOK_REVIEWS
        .iter()
        .map(|(u, i, t, text)| {
            let text = text.map(|x| format!(r#", "reviewText": "{x}""#)).unwrap_or_default();
            format!(
                r#"{{"reviewerID": "{u}", "asin": "{i}", "overall": 5.0, "unixReviewTime": {t}{text}}}"#
            ) + "\n"
        })
        .collect();
    std::fs::write(raw.join("reviews_Books_5.json"), lines).unwrap();
    let settings = Settings {
        k_core: 1,
        rating_threshold: 0.0,
    };
    let (ds, _, _) = prepare(r, DatasetName::Books, settings, false, |_| {}).unwrap();
    let user = |raw: &str| ds.user_ids.iter().position(|x| x == raw).unwrap() as u32;
    let item = |raw: &str| ds.item_ids.iter().position(|x| x == raw).unwrap() as u32;
    let own = |u: &str, i: &str| ((user(u), item(i)), format!("{u} on {i}"));
    // own reviews of held-out items (C's review of x has no text)
    let expected_own = [
        own("A", "z"),
        own("A", "w"),
        own("B", "x"),
        own("B", "w"),
        own("C", "y"),
    ];
    assert_eq!(ds.reviews.own, expected_own.into_iter().collect());
    // each item's earliest training review: y by B (t 0) before A (t 2); z by C, since A's
    // review of z is held out; w has none
    let expected_items = [
        (item("x"), "A on x".to_string()),
        (item("y"), "B on y".to_string()),
        (item("z"), "C on z".to_string()),
    ];
    assert_eq!(ds.reviews.of_item, expected_items.into_iter().collect());
    assert_eq!(
        ds.reviews.reference(user("C"), item("x")),
        Some(("A on x", ReviewKind::OfItem))
    );
    assert_eq!(
        ds.reviews.reference(user("B"), item("x")),
        Some(("B on x", ReviewKind::Own))
    );
    assert_eq!(ds.reviews.reference(user("C"), item("w")), None);

    // written to data/proc/books/reviews.parquet, covered by the checksums, read back equal
    assert!(Layout::new(r)
        .proc_dir("books")
        .join(store::REVIEWS_FILE)
        .is_file());
    let back = store::load(r, DatasetName::Books).unwrap();
    assert_eq!(back.reviews, ds.reviews);
    let sums = std::fs::read_to_string(Layout::new(r).checksum_file("books")).unwrap();
    assert!(sums.contains(store::REVIEWS_FILE), "{sums}");
    // ml-100k has no reviews and no reviews file
    let ml = scratch_root();
    let (ds, _, _) = prepare(ml.path(), ML100K, DEFAULT, false, |_| {}).unwrap();
    assert!(ds.reviews.is_empty());
    assert!(!Layout::new(ml.path())
        .proc_dir("ml-100k")
        .join(store::REVIEWS_FILE)
        .exists());
}
