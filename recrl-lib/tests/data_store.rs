//! Step 1's files: the Parquet round trip gives back the same dataset, checksums decide when
//! processing is skipped, and a failed run leaves no half-written dataset.

use recrl_lib::data::store::{self, Settings};
use recrl_lib::data::{prepare, DatasetName};
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
        assert!(store::proc_dir(r, ML100K).join(f).is_file(), "{f}");
    }
    assert!(store::checksum_path(r, ML100K).is_file());
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
    let stats_file = store::proc_dir(r, ML100K).join("stats.json");
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
    let before = std::fs::read(store::proc_dir(r, ML100K).join("interactions.parquet")).unwrap();

    // break the raw data: a line with a missing field, beyond a tolerance of 1000
    let raw = r.join("data/raw/ml-100k/ml-100k.inter");
    let mut text = std::fs::read_to_string(&raw).unwrap();
    text.push_str(&"1\t2\n".repeat(1001));
    std::fs::write(&raw, text).unwrap();
    let err = prepare(r, ML100K, DEFAULT, true, |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("ml-100k.inter:"), "{err:#}");

    // the previous dataset is intact, and nothing else is in data/proc
    let after = std::fs::read(store::proc_dir(r, ML100K).join("interactions.parquet")).unwrap();
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
