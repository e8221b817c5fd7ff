//! Benchmark of step 1 (`cargo bench --bench data_step`): the full data step on an
//! ML-25M-sized synthetic `ratings.csv` (25M rows, 160k users, 60k items, heavy-tailed), and on
//! the real datasets that are present (ml-100k; bookcrossing when fetched). Writes
//! `target/bench/data.json`. Options: `-- --rows N` for a smaller synthetic file.

use recrl_lib::data::{self, store::Settings, DatasetName};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const USERS: u64 = 160_000;
const ITEMS: u64 = 60_000;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `ratings.csv` and `movies.csv` in ML-25M's format: users in order, each user's rows
/// by time; user activity and item popularity heavy-tailed.
fn generate(dir: &Path, rows: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let weights: Vec<f64> = (0..USERS)
        .map(|u| 1.0 / (1.0 + u as f64).powf(0.6))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut w =
        std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(dir.join("ratings.csv"))?);
    writeln!(w, "userId,movieId,rating,timestamp")?;
    let mut written = 0u64;
    for (u, weight) in weights.iter().enumerate() {
        let left = rows - written;
        let n = if u as u64 == USERS - 1 {
            left
        } else {
            ((weight / total * rows as f64).round() as u64).clamp(1, left)
        };
        let mut t = 1_000_000_000 + rng.next() % 300_000_000;
        for _ in 0..n {
            let item = 1 + (ITEMS as f64 * rng.unit().powf(3.0)) as u64; // popularity ~ rank^-2/3
            let rating = 0.5 * (1 + rng.next() % 10) as f64;
            t += rng.next() % 5000;
            writeln!(w, "{},{item},{rating:.1},{t}", u + 1)?;
        }
        written += n;
    }
    w.flush()?;
    let mut m = std::io::BufWriter::new(std::fs::File::create(dir.join("movies.csv"))?);
    writeln!(m, "movieId,title,genres")?;
    for i in 1..=ITEMS {
        writeln!(m, "{i},\"Movie {i}, The ({})\",Drama|Comedy", 1950 + i % 70)?;
    }
    m.flush()
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().to_string())
            })
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn run(root: &Path, name: DatasetName) -> anyhow::Result<serde_json::Value> {
    let t = Instant::now();
    let (ds, stats, _) = data::prepare(
        root,
        name,
        Settings {
            k_core: 5,
            rating_threshold: 0.0,
        },
        true,
        |l| eprintln!("  {l}"),
    )?;
    let secs = t.elapsed().as_secs_f64();
    let loaded = stats.counts[0].1.interactions;
    Ok(serde_json::json!({
        "dataset": name.as_str(), "rows": loaded, "seconds": secs, "rows_per_second": loaded as f64 / secs,
        "users": ds.n_users(), "items": ds.n_items(), "peak_rss_mib": peak_rss_mib(),
    }))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(25_000_000);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bench = repo.join("target/bench");
    let mut results = Vec::new();

    // real datasets first (small), each in a scratch project root holding a link to its raw files
    for name in [DatasetName::Ml100k, DatasetName::Bookcrossing] {
        let raw = repo.join("data/raw").join(name.as_str());
        if !raw.is_dir() {
            eprintln!("{name}: raw files absent, skipped");
            continue;
        }
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("data/raw"))?;
        std::os::unix::fs::symlink(&raw, root.path().join("data/raw").join(name.as_str()))?;
        let r = run(root.path(), name)?;
        eprintln!("{r}");
        results.push(r);
    }

    // synthetic ML-25M: generated once into target/bench, processed into a scratch root
    let synth: PathBuf = bench.join(format!("ml-25m-synth-{rows}"));
    if !synth.join("movies.csv").is_file() {
        let t = Instant::now();
        generate(&synth, rows)?;
        eprintln!("generated {rows} rows in {:.1}s", t.elapsed().as_secs_f64());
    }
    let root = tempfile::tempdir_in(&bench)?;
    std::fs::create_dir_all(root.path().join("data/raw"))?;
    std::os::unix::fs::symlink(&synth, root.path().join("data/raw/ml-25m"))?;
    let mut r = run(root.path(), DatasetName::Ml25m)?;
    r["dataset"] = serde_json::json!(format!("ml-25m synthetic ({rows} rows)"));
    eprintln!("{r}");
    results.push(r);

    let report = serde_json::json!({
        "benchmark": "step 1 (load, threshold 0, 5-core, leave-one-out, Parquet + checksums), cargo bench --bench data_step",
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(1, |n| n.get())),
        "peak_rss_note": "VmHWM of the benchmark process; runs are sequential, so later rows include earlier peaks",
        "results": results,
    });
    std::fs::create_dir_all(&bench)?;
    std::fs::write(
        bench.join("data.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
