//! Every loader against small files written in the exact real format (awkward cases
//! included), processing invariants, and the real ml-100k counts against an independent
//! Python computation (scripts/reference_ml100k_counts.py).

use recrl_lib::data::{load_raw, Dataset, DatasetName, MAX_MALFORMED};
use std::io::Write;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The error of a load that must fail, with its whole context chain.
fn load_err(name: DatasetName, dir: &Path, max_malformed: usize) -> String {
    format!("{:#}", load_raw(name, dir, max_malformed).unwrap_err())
}

fn title_of(raw: &recrl_lib::data::RawData, item: &str) -> String {
    let id = raw
        .items
        .get(item)
        .unwrap_or_else(|| panic!("item {item} not loaded"));
    raw.item_meta[&id].title.clone()
}

#[test]
fn ml100k_atomic_files_with_typed_headers() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ml-100k.inter", b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
    write(d.path(), "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n".as_bytes());
    write(d.path(), "ml-100k.user", b"user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n196\t49\tM\twriter\t55105\n");
    let raw = load_raw(DatasetName::Ml100k, d.path(), 0).unwrap();
    assert_eq!(raw.interactions.len(), 2);
    assert_eq!(raw.interactions[0].timestamp, 881250949);
    let meta = &raw.item_meta[&raw.items.get("302").unwrap()];
    assert_eq!(meta.genres, ["Crime", "Film-Noir", "Mystery", "Thriller"]);
    assert_eq!(meta.year, Some(1997));
    let user = &raw.user_meta[&raw.users.get("196").unwrap()];
    assert_eq!((user.age, user.gender.as_deref()), (Some(49), Some("M")));
}

#[test]
fn missing_column_and_malformed_lines_name_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "ml-100k.inter",
        b"user_id:token\titem_id:token\trating:float\n1\t2\t3\n",
    );
    let err = load_err(DatasetName::Ml100k, d.path(), 0);
    assert!(
        err.contains("ml-100k.inter:1") && err.contains("missing column `timestamp`"),
        "{err}"
    );

    write(d.path(), "ml-100k.inter", b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t4\n1\t2\n5\t6\t7\t8\n");
    let err = load_err(DatasetName::Ml100k, d.path(), 0);
    assert!(
        err.contains("ml-100k.inter:3") && err.contains("2 fields"),
        "{err}"
    );

    write(
        d.path(),
        "ml-100k.inter",
        b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\tfive\t4\n",
    );
    let err = load_err(DatasetName::Ml100k, d.path(), 0);
    assert!(
        err.contains("ml-100k.inter:2") && err.contains("`rating` is `five`"),
        "{err}"
    );
}

#[test]
fn non_finite_ratings_absurd_timestamps_and_long_fields_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let head = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n";
    for (row, says) in [
        (
            "1\t2\tNaN\t4",
            "ml-100k.inter:2: field `rating` is NaN, not a finite rating",
        ),
        ("1\t2\tinf\t4", "field `rating` is inf, not a finite rating"),
        (
            "1\t2\t3\t-5",
            "field `timestamp` is -5, not a time between 1970 and 2100",
        ),
        (
            "1\t2\t3\t881250949000",
            "field `timestamp` is 881250949000, not a time",
        ),
        ("1\t2\t3\tnan", "field `timestamp` is NaN"),
    ] {
        write(
            d.path(),
            "ml-100k.inter",
            format!("{head}{row}\n").as_bytes(),
        );
        let err = load_err(DatasetName::Ml100k, d.path(), 0);
        assert!(err.contains(says), "{row:?}: {err}");
    }
    // a 10 MB field is shown by its start and length, not echoed whole
    let huge = "x".repeat(10 << 20);
    write(
        d.path(),
        "ml-100k.inter",
        format!("{head}1\t2\t{huge}\t4\n").as_bytes(),
    );
    let err = load_err(DatasetName::Ml100k, d.path(), 0);
    assert!(err.len() < 1000, "{} bytes of error", err.len());
    assert!(
        err.contains("`rating` is `xxxx") && err.contains("… (10485760 bytes in all)"),
        "{err}"
    );
    // a folder where the file should be
    std::fs::remove_file(d.path().join("ml-100k.inter")).unwrap();
    std::fs::create_dir(d.path().join("ml-100k.inter")).unwrap();
    let err = load_err(DatasetName::Ml100k, d.path(), 0);
    assert!(
        err.contains("ml-100k.inter is a folder") && !err.contains("gzip"),
        "{err}"
    );
}

#[test]
fn ml1m_dat_files_are_latin1() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "ratings.dat",
        b"1::1193::5::978300760\n1::661::3::978302109\n",
    );
    // 0xE9 = é in Latin-1 (invalid as UTF-8)
    write(d.path(), "movies.dat", b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Cit\xe9 des enfants perdus, La (1995)::Adventure|Sci-Fi\n");
    write(d.path(), "users.dat", b"1::F::1::10::48067\n");
    let raw = load_raw(DatasetName::Ml1m, d.path(), 0).unwrap();
    assert_eq!(title_of(&raw, "661"), "La Cité des enfants perdus");
    let meta = &raw.item_meta[&raw.items.get("661").unwrap()];
    assert_eq!(
        (meta.year, meta.genres.clone()),
        (
            Some(1995),
            vec!["Adventure".to_string(), "Sci-Fi".to_string()]
        )
    );
    assert_eq!(
        raw.user_meta[&raw.users.get("1").unwrap()]
            .gender
            .as_deref(),
        Some("F")
    );
}

#[test]
fn ml25m_csv_with_quoted_titles_and_tags() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n1,11,4.0,1147880044\n1,1,3.5,1147868817\n",
    );
    write(d.path(), "movies.csv", b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n11,\"American President, The (1995)\",Comedy|Drama|Romance\n");
    write(
        d.path(),
        "tags.csv",
        b"userId,movieId,tag,timestamp\n3,1,pixar,1\n4,1,Pixar,2\n4,1,fun,3\n",
    );
    let raw = load_raw(DatasetName::Ml25m, d.path(), 0).unwrap();
    assert_eq!(title_of(&raw, "11"), "The American President");
    let toy = &raw.item_meta[&raw.items.get("1").unwrap()];
    assert_eq!(toy.tags, ["pixar", "fun"]);
    assert_eq!(raw.interactions[1].rating, 3.5);

    write(
        d.path(),
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n1,1,4.0,1\n2,\xff1,4.0,2\n",
    );
    let err = load_err(DatasetName::Ml25m, d.path(), 0);
    assert!(
        err.contains("ratings.csv:3") && err.contains("UTF-8"),
        "{err}"
    );
}

const REVIEWS_2014: &str = r#"{"reviewerID": "A1", "asin": "000100039X", "reviewerName": "x", "helpful": [0, 0], "reviewText": "A timeless classic.", "overall": 5.0, "summary": "Classic", "unixReviewTime": 1353369600, "reviewTime": "11 20, 2012"}
{"reviewerID": "A2", "asin": "000100039X", "helpful": [1, 1], "reviewText": "Good", "overall": 4.0, "summary": "ok", "unixReviewTime": 1353369601, "reviewTime": "11 20, 2012"}
"#;
const META_2014: &str = r#"{'asin': '000100039X', 'title': 'The Prophet &amp; Other Poems', 'salesRank': {'Books': 9}, 'categories': [['Books', 'Literature & Fiction', 'Poetry']]}
"#;
const REVIEWS_2018: &str = r#"{"overall": 4.0, "verified": true, "reviewTime": "03 30, 2005", "reviewerID": "B1", "asin": "0001713353", "style": {"Format:": " Paperback"}, "reviewerName": "y", "reviewText": "Nice.", "summary": "s", "unixReviewTime": 1112140800}
"#;
const META_2018: &str = r#"{"category": ["Books", "Children's Books"], "title": "The King, the Mice and the Cheese", "brand": "Nancy Gurney", "date": "January 1, 1965", "asin": "0001713353"}
"#;

#[test]
fn amazon_books_2014_python_literal_meta_and_2018_json_meta() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "reviews_Books_5.json.gz",
        &gzip(REVIEWS_2014.as_bytes()),
    );
    write(d.path(), "meta_Books.json.gz", &gzip(META_2014.as_bytes()));
    let raw = load_raw(DatasetName::Books, d.path(), 0).unwrap();
    assert_eq!(raw.interactions.len(), 2);
    assert_eq!(title_of(&raw, "000100039X"), "The Prophet & Other Poems");
    let meta = &raw.item_meta[&raw.items.get("000100039X").unwrap()];
    assert_eq!(meta.genres, ["Literature & Fiction", "Poetry"]);
    assert_eq!(raw.reviews[&0], "A timeless classic.");

    let d = tempfile::tempdir().unwrap();
    write(d.path(), "Books_5.json.gz", &gzip(REVIEWS_2018.as_bytes()));
    write(d.path(), "meta_Books.json.gz", &gzip(META_2018.as_bytes()));
    let raw = load_raw(DatasetName::Books, d.path(), 0).unwrap();
    let meta = &raw.item_meta[&raw.items.get("0001713353").unwrap()];
    assert_eq!(meta.author.as_deref(), Some("Nancy Gurney"));
    assert_eq!(
        (meta.year, meta.genres.clone()),
        (Some(1965), vec!["Children's Books".to_string()])
    );
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let many: String = REVIEWS_2014.repeat(200);
    let gz = gzip(many.as_bytes());
    write(d.path(), "reviews_Books_5.json.gz", &gz[..gz.len() / 2]);
    let err = load_err(DatasetName::Books, d.path(), 0);
    assert!(
        err.contains("reviews_Books_5.json.gz:") && err.contains("truncated or corrupt gzip"),
        "{err}"
    );
}

#[test]
fn bookcrossing_semicolons_quotes_latin1_and_malformed_lines() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "BX-Book-Ratings.csv", b"\"User-ID\";\"ISBN\";\"Book-Rating\"\r\n\"276725\";\"034545104X\";\"0\"\r\n\"276726\";\"0155061224\";\"5\"\r\n\"276727\";\"0446520802\";\"0\"\r\n");
    // a title with a quoted `;`, a Latin-1 byte, an &amp; entity and one malformed line
    write(d.path(), "BX-Books.csv", b"\"ISBN\";\"Book-Title\";\"Book-Author\";\"Year-Of-Publication\";\"Publisher\";\"Image-URL-S\";\"Image-URL-M\";\"Image-URL-L\"\r\n\"034545104X\";\"Flesh Tones; A Novel\";\"M. J. Rose\";\"2002\";\"Ballantine Books\";\"s\";\"m\";\"l\"\r\n\"0155061224\";\"Rites of Passage &amp; Caf\xe9\";\"Judith Rae\";\"2001\";\"Heinle\";\"s\";\"m\";\"l\"\r\n\"0446520802\";\"broken\";\"line\r\n");
    write(d.path(), "BX-Users.csv", b"\"User-ID\";\"Location\";\"Age\"\r\n\"276725\";\"tyler, texas, usa\";NULL\r\n\"276726\";\"seattle, washington, usa\";\"23\"\r\n");
    let raw = load_raw(DatasetName::Bookcrossing, d.path(), 5).unwrap();
    assert_eq!(raw.interactions.len(), 3);
    assert!(!raw.has_timestamps);
    assert_eq!(
        raw.interactions
            .iter()
            .map(|r| r.timestamp)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(title_of(&raw, "034545104X"), "Flesh Tones; A Novel");
    assert_eq!(title_of(&raw, "0155061224"), "Rites of Passage & Café");
    assert_eq!(raw.malformed.count, 1);
    assert_eq!(
        raw.user_meta[&raw.users.get("276726").unwrap()].age,
        Some(23)
    );
    assert_eq!(raw.user_meta[&raw.users.get("276725").unwrap()].age, None);
    // over the budget: an error naming the file and the line
    let err = load_err(DatasetName::Bookcrossing, d.path(), 0);
    assert!(
        err.contains("BX-Books.csv:4") && err.contains("malformed"),
        "{err}"
    );
}

#[test]
fn steam_keeps_purchases_in_file_order() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "steam-200k.csv", b"151603712,\"The Elder Scrolls V Skyrim\",purchase,1.0,0\n151603712,\"The Elder Scrolls V Skyrim\",play,273.0,0\n151603712,\"Fallout 4\",purchase,1.0,0\n59945701,\"Spore, Galactic Edition\",purchase,1.0,0\n");
    let raw = load_raw(DatasetName::Steam, d.path(), 0).unwrap();
    assert_eq!(raw.interactions.len(), 3);
    assert_eq!(
        title_of(&raw, "Spore, Galactic Edition"),
        "Spore, Galactic Edition"
    );
    assert_eq!(
        raw.interactions
            .iter()
            .map(|r| r.timestamp)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );

    write(
        d.path(),
        "steam-200k.csv",
        b"1,\"X\",purchase,1.0,0\n1,\"X\",rent,1.0,0\n",
    );
    let err = load_err(DatasetName::Steam, d.path(), 0);
    assert!(
        err.contains("steam-200k.csv:2") && err.contains("rent"),
        "{err}"
    );
}

#[test]
fn unknown_dataset_lists_known_ones() {
    let err = "ml-10m".parse::<DatasetName>().unwrap_err().to_string();
    assert!(
        err.contains("ml-100k") && err.contains("bookcrossing") && err.contains("steam"),
        "{err}"
    );
    for d in DatasetName::ALL {
        assert_eq!(d.as_str().parse::<DatasetName>().unwrap(), d);
    }
}

#[test]
fn real_ml100k_matches_the_python_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let raw = load_raw(
        DatasetName::Ml100k,
        &root.join("data/raw/ml-100k"),
        MAX_MALFORMED,
    )
    .expect("ml-100k assets: run scripts/setup.sh assets");
    let ds = Dataset::from_raw(DatasetName::Ml100k, &raw, 0.0, 5);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("recrl-lib/tests/fixtures/data/ml100k_counts.json"))
            .unwrap(),
    )
    .unwrap();
    let n = |k: &str| reference[k].as_u64().unwrap() as usize;
    assert_eq!(raw.interactions.len(), n("loaded_interactions"));
    assert_eq!(ds.n_users(), n("users"));
    assert_eq!(ds.n_items(), n("items"));
    let total: usize = (1..=ds.n_users()).map(|u| ds.sequence(u).len()).sum();
    assert_eq!(total, n("interactions"));
    assert_eq!(ds.user_ids[1], "1");
    assert_eq!(
        ds.item_ids[ds.test[0] as usize],
        reference["user_1_test_raw_item"].to_string()
    );
    assert_eq!(
        ds.item_ids[ds.valid[0] as usize],
        reference["user_1_valid_raw_item"].to_string()
    );
    assert_eq!(ds.train[0].len(), n("user_1_train_len"));
    assert_eq!(
        (1..=ds.n_users())
            .map(|u| ds.sequence(u).len())
            .max()
            .unwrap(),
        n("max_seq_len")
    );
    assert_eq!(ds.items[1].title, "Toy Story");
    assert_eq!(ds.users[1].occupation.as_deref(), Some("technician"));
}

#[test]
fn split_invariants_and_id_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let raw = load_raw(
        DatasetName::Ml100k,
        &root.join("data/raw/ml-100k"),
        MAX_MALFORMED,
    )
    .unwrap();
    let ds = Dataset::from_raw(DatasetName::Ml100k, &raw, 0.0, 5);
    // every user: exactly one valid and one test item, the two latest events
    for u in 1..=ds.n_users() {
        let uid = raw.users.get(&ds.user_ids[u]).unwrap();
        let mut events: Vec<(i64, usize)> = raw
            .interactions
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.user == uid && ds.item_ids.iter().any(|x| x == raw.items.name(r.item))
            })
            .map(|(i, r)| (r.timestamp, i))
            .collect();
        events.sort();
        let last = raw
            .items
            .name(raw.interactions[events[events.len() - 1].1].item);
        let second = raw
            .items
            .name(raw.interactions[events[events.len() - 2].1].item);
        assert_eq!(ds.item_ids[ds.test[u - 1] as usize], last, "user {u}");
        assert_eq!(ds.item_ids[ds.valid[u - 1] as usize], second, "user {u}");
        if u > 40 {
            break; // the brute-force scan is quadratic; 40 users suffice
        }
    }
    // ids are 1-based and round-trip through the raw id maps
    assert!(ds
        .train
        .iter()
        .flatten()
        .all(|&i| i >= 1 && i as usize <= ds.n_items()));
    for i in 1..=ds.n_items() {
        let raw_id = raw.items.get(&ds.item_ids[i]).unwrap();
        assert_eq!(raw.items.name(raw_id), ds.item_ids[i]);
    }
}
