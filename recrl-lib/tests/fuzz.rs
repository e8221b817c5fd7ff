//! Random mutations of real inputs (byte flips, cuts, insertions, large integers written over
//! length fields, repeated and deleted spans): every loader answers with a value or an error,
//! never a panic or a hang. Covers the raw data formats (ml-100k atomic files, ml-1m `::`,
//! ml-25m CSV, Book-Crossing `;` Latin-1, Amazon Books JSON lines, Steam CSV), GGUF headers,
//! safetensors and the YAML configuration. Seeded (`RECRL_FUZZ_SEED`, default 1) and sized
//! (`RECRL_FUZZ_CASES` per input, default 60) so a failure replays.

use recrl_lib::config::{Config, Overrides, EMBEDDED_YAML};
use recrl_lib::data::{load_raw, DatasetName, MAX_MALFORMED};
use recrl_lib::explainer::gguf::Gguf;
use recrl_lib::rng::Rng;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest a loader may take on one mutated input.
const PATIENCE: Duration = Duration::from_secs(20);

fn cases() -> usize {
    std::env::var("RECRL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn seed() -> u64 {
    std::env::var("RECRL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One to three random mutations of `bytes`.
fn mutate(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    if !b.is_empty() {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                }
            }
            1 => b.truncate(at),
            2 => {
                let junk: Vec<u8> = (0..1 + rng.below(16))
                    .map(|_| rng.below(256) as u8)
                    .collect();
                b.splice(at..at, junk);
            }
            3 => {
                // a large integer over whatever is there (length and count fields)
                let big = [u64::MAX, u64::MAX / 2, 1 << 40, 0x7fff_ffff][rng.below(4)];
                let end = (at + 8).min(b.len());
                let n = end - at;
                b[at..end].copy_from_slice(&big.to_le_bytes()[..n]);
            }
            4 => {
                let end = (at + rng.below(64)).min(b.len());
                let span = b[at..end].to_vec();
                b.splice(
                    at..at,
                    span.iter()
                        .cycle()
                        .take(span.len() * (1 + rng.below(4)))
                        .copied(),
                );
            }
            _ => {
                let end = (at + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
        }
    }
    b
}

/// Runs `load` on its own thread: fails the test on a panic or when it runs past
/// [`PATIENCE`]; returns whether it gave a value (else an error, whose text must not be empty).
fn survives<T>(what: &str, load: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
            .map(|r| r.map(|_| ()).map_err(|e| format!("{e:#}")));
        let _ = tx.send(out);
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(Ok(Ok(()))) => true,
        Ok(Ok(Err(e))) => {
            assert!(!e.trim().is_empty(), "{what}: an empty error");
            false
        }
        Ok(Err(_)) => panic!("{what}: panicked (replay with RECRL_FUZZ_SEED={})", seed()),
        Err(_) => panic!("{what}: no answer within {PATIENCE:?} (a hang?)"),
    }
}

/// Mutates one file of a dataset folder at a time and loads the folder.
fn fuzz_dataset(name: DatasetName, files: &[(&str, Vec<u8>)]) {
    let mut rng = Rng::new(seed() ^ name.as_str().len() as u64);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..cases() {
        let dir = tempfile::tempdir().unwrap();
        let pick = rng.below(files.len());
        for (i, (file, bytes)) in files.iter().enumerate() {
            let body = if i == pick {
                mutate(&mut rng, bytes)
            } else {
                bytes.clone()
            };
            std::fs::write(dir.path().join(file), body).unwrap();
        }
        let path: PathBuf = dir.path().to_path_buf();
        let what = format!("{name} case {case} ({} mutated)", files[pick].0);
        if survives(&what, move || load_raw(name, &path, MAX_MALFORMED)) {
            ok += 1;
        } else {
            refused += 1;
        }
    }
    eprintln!("{name}: {ok} loaded, {refused} refused with an error");
    assert_eq!(ok + refused, cases());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The first `n` lines of a real raw file.
fn head(path: &Path, n: usize) -> Vec<u8> {
    let text = std::fs::read(path).expect("ml-100k assets: run scripts/setup.sh assets");
    let mut lines = 0;
    let end = text
        .iter()
        .position(|&b| {
            lines += (b == b'\n') as usize;
            lines == n
        })
        .map_or(text.len(), |i| i + 1);
    text[..end].to_vec()
}

#[test]
fn movielens_files_mutated_load_or_refuse() {
    let raw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/raw/ml-100k");
    let files: Vec<(&str, Vec<u8>)> = ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]
        .into_iter()
        .map(|f| (f, head(&raw.join(f), 200)))
        .collect();
    fuzz_dataset(DatasetName::Ml100k, &files);
    fuzz_dataset(
        DatasetName::Ml1m,
        &[
            ("ratings.dat", b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n".to_vec()),
            ("movies.dat", b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n".to_vec()),
            ("users.dat", b"1::F::1::10::48067\n2::M::56::16::70072\n".to_vec()),
        ],
    );
    fuzz_dataset(
        DatasetName::Ml25m,
        &[
            ("ratings.csv", b"userId,movieId,rating,timestamp\n1,11,4.0,1147880044\n1,1,3.5,1147868817\n".to_vec()),
            ("movies.csv", b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n11,\"American President, The (1995)\",Comedy|Drama\n".to_vec()),
            ("tags.csv", b"userId,movieId,tag,timestamp\n3,1,pixar,1\n4,1,fun,3\n".to_vec()),
        ],
    );
}

#[test]
fn book_and_game_files_mutated_load_or_refuse() {
    fuzz_dataset(
        DatasetName::Bookcrossing,
        &[
            ("BX-Book-Ratings.csv", b"\"User-ID\";\"ISBN\";\"Book-Rating\"\r\n\"276725\";\"034545104X\";\"0\"\r\n\"276726\";\"0155061224\";\"5\"\r\n".to_vec()),
            ("BX-Books.csv", b"\"ISBN\";\"Book-Title\";\"Book-Author\";\"Year-Of-Publication\";\"Publisher\";\"Image-URL-S\";\"Image-URL-M\";\"Image-URL-L\"\r\n\"034545104X\";\"Flesh Tones; A Novel\";\"M. J. Rose\";\"2002\";\"Ballantine Books\";\"s\";\"m\";\"l\"\r\n\"0155061224\";\"Rites of Passage &amp; Caf\xe9\";\"Judith Rae\";\"2001\";\"Heinle\";\"s\";\"m\";\"l\"\r\n".to_vec()),
            ("BX-Users.csv", b"\"User-ID\";\"Location\";\"Age\"\r\n\"276725\";\"tyler, texas, usa\";NULL\r\n\"276726\";\"seattle, washington, usa\";\"23\"\r\n".to_vec()),
        ],
    );
    fuzz_dataset(
        DatasetName::Steam,
        &[("steam-200k.csv", b"151603712,\"The Elder Scrolls V Skyrim\",purchase,1.0,0\n151603712,\"The Elder Scrolls V Skyrim\",play,273.0,0\n59945701,\"Spore, Galactic Edition\",purchase,1.0,0\n".to_vec())],
    );
    let reviews = r#"{"reviewerID": "A1", "asin": "000100039X", "reviewText": "A timeless classic.", "overall": 5.0, "unixReviewTime": 1353369600}
{"reviewerID": "A2", "asin": "000100039X", "reviewText": "Fine.", "overall": 4.0, "unixReviewTime": 1353369601}
"#;
    let meta = r#"{'asin': '000100039X', 'title': 'The Prophet &amp; Other Poems', 'salesRank': {'Books': 9}, 'categories': [['Books', 'Poetry']]}
"#;
    fuzz_dataset(
        DatasetName::Books,
        &[
            ("reviews_Books_5.json", reviews.as_bytes().to_vec()),
            ("meta_Books.json", meta.as_bytes().to_vec()),
        ],
    );
    // compressed: mutations of the gzip stream itself
    fuzz_dataset(
        DatasetName::Books,
        &[("reviews_Books_5.json.gz", gzip(reviews.as_bytes()))],
    );
}

/// A small valid GGUF (version 3): a string, a u32, an array of strings and a nested array in
/// the metadata, and one 2 × 4 F32 tensor.
fn tiny_gguf() -> Vec<u8> {
    fn string(b: &mut Vec<u8>, s: &str) {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    }
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes()); // tensors
    b.extend(4u64.to_le_bytes()); // metadata pairs
    string(&mut b, "general.name");
    b.extend(8u32.to_le_bytes());
    string(&mut b, "tiny");
    string(&mut b, "general.alignment");
    b.extend(4u32.to_le_bytes());
    b.extend(32u32.to_le_bytes());
    string(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend(3u64.to_le_bytes());
    for t in ["<s>", "a", "b"] {
        string(&mut b, t);
    }
    string(&mut b, "nested");
    b.extend(9u32.to_le_bytes());
    b.extend(9u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(4u32.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    b.extend(7u32.to_le_bytes());
    b.extend(9u32.to_le_bytes());
    string(&mut b, "w");
    b.extend(2u32.to_le_bytes());
    b.extend(4u64.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    b.extend(0u32.to_le_bytes()); // F32
    b.extend(0u64.to_le_bytes());
    b.resize(b.len().div_ceil(32) * 32, 0);
    for i in 0..8 {
        b.extend((i as f32).to_le_bytes());
    }
    b
}

#[test]
fn gguf_headers_mutated_parse_or_refuse() {
    let good = tiny_gguf();
    let g = Gguf::parse(good.clone(), Path::new("tiny.gguf")).unwrap();
    assert_eq!(
        g.dequantize("w").unwrap().0,
        (0..8).map(|i| i as f32).collect::<Vec<_>>()
    );
    let mut rng = Rng::new(seed());
    for case in 0..cases() * 5 {
        let bytes = mutate(&mut rng, &good);
        survives(&format!("gguf case {case}"), move || {
            let g = Gguf::parse(bytes, Path::new("fuzz.gguf"))?;
            for name in g.tensors.keys().cloned().collect::<Vec<_>>() {
                g.dequantize(&name)?;
            }
            Ok(())
        });
    }
}

#[test]
fn safetensors_mutated_read_or_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let good_path = dir.path().join("good.safetensors");
    let a = tch::Tensor::arange(12, (tch::Kind::Float, tch::Device::Cpu)).reshape([3, 4]);
    let b = tch::Tensor::from_slice(&[1i64, 2, 3]);
    tch::Tensor::write_safetensors(&[("a", &a), ("b", &b)], &good_path).unwrap();
    let good = std::fs::read(&good_path).unwrap();
    let mut rng = Rng::new(seed());
    for case in 0..cases() * 3 {
        let path = dir.path().join(format!("case{case}.safetensors"));
        std::fs::write(&path, mutate(&mut rng, &good)).unwrap();
        survives(&format!("safetensors case {case}"), move || {
            Ok(tch::Tensor::read_safetensors(&path)?)
        });
    }
}

#[test]
fn configuration_yaml_mutated_parses_or_refuses() {
    let mut rng = Rng::new(seed());
    for case in 0..cases() * 5 {
        let text =
            String::from_utf8_lossy(&mutate(&mut rng, EMBEDDED_YAML.as_bytes())).into_owned();
        survives(&format!("yaml case {case}"), move || {
            Config::from_yaml_str(&text, "fuzz.yaml", "ml-100k", &Overrides::default())
        });
    }
}
