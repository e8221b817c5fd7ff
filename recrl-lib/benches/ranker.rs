//! Benchmark of step 2 (`cargo bench --bench ranker`): recrl's SASRec against RecBole 1.2.1's
//! SASRec on the same ml-100k leave-one-out split and model size, in one run on one machine.
//!
//! Both train to early-stopping convergence (patience 20 on validation NDCG@10, full ranking).
//! Reported: wall-clock time to convergence, converged test metrics (full ranking and, for
//! recrl, sampled-100), training throughput in supervised target positions per second, and the
//! time recrl needs to reach RecBole's best validation NDCG@10. Writes `target/bench/ranker.json`.
//!
//! Options (after `--`): `--no-peer` (recrl only), `--epochs N` (cap both, for a smoke run),
//! `--peer-from FILE` (compare with a RecBole result written earlier by
//! `scripts/bench/recbole_sasrec.py`, complete or partial, instead of running it).
//! The peer runs in a scratch venv made by `scripts/bench/recbole-venv.sh`.

use recrl_lib::config::Config;
use recrl_lib::data::{self, store::Settings, Dataset, DatasetName};
use recrl_lib::ranker::{self, eval, EvalSet, Split, TrainEvent, TrainOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Writes `<dir>/<name>/<name>.inter`: every user's whole sequence with timestamp = position,
/// so RecBole's ordered leave-one-out gives exactly recrl's split.
fn export_atomic_inter(ds: &Dataset, dir: &Path, name: &str) -> anyhow::Result<()> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder)?;
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(folder.join(format!("{name}.inter")))?);
    writeln!(w, "user_id:token\titem_id:token\ttimestamp:float")?;
    for u in 1..=ds.n_users() {
        for (t, i) in ds.sequence(u).iter().enumerate() {
            writeln!(w, "{u}\t{i}\t{t}")?;
        }
    }
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let no_peer = args.iter().any(|a| a == "--no-peer");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let bench = repo.join("target/bench");
    let name = DatasetName::Ml100k;
    let mut cfg = Config::load_default(name.as_str())?;
    if let Some(e) = arg::<usize>(&args, "--epochs") {
        cfg.ranker.epochs = e;
    }
    let settings = Settings {
        k_core: cfg.data.k_core,
        rating_threshold: cfg.data.rating_threshold,
    };
    let (ds, _, _) = data::prepare(&repo, name, settings, false, |l| eprintln!("{l}"))?;
    let threads = tch::get_num_threads();

    // --- recrl ---
    let opts = TrainOptions {
        config: cfg.ranker.clone(),
        seed: cfg.seed,
        device: tch::Device::Cpu,
        bf16: false,
        log_path: None,
    };
    let t0 = Instant::now();
    let mut curve = Vec::new();
    let (model, report) = ranker::train(&ds, &opts, |ev| {
        if let TrainEvent::Epoch(e) = ev {
            eprintln!("recrl {}", e.line());
            curve.push(serde_json::json!({
                "epoch": e.epoch, "seconds": t0.elapsed().as_secs_f64(), "valid_ndcg10": e.valid.ndcg10,
            }));
        }
    })?;
    let train_s: f64 = report.epochs.iter().map(|e| e.train_seconds).sum();
    let positions: usize = report.epochs.iter().map(|e| e.positions).sum();
    let test_set = EvalSet::new(&ds, Split::Test, cfg.seed)?;
    let te = Instant::now();
    let reps = 10;
    for _ in 0..reps {
        eval::ranks(&model.net, &test_set, tch::Device::Cpu, 1024)?;
    }
    let eval_s = te.elapsed().as_secs_f64() / reps as f64;
    let ours = serde_json::json!({
        "epochs_run": report.epochs.len(), "best_epoch": report.best_epoch,
        "seconds_total": report.seconds,
        "seconds_to_best": curve.get(report.best_epoch.max(1) - 1).map(|c| c["seconds"].clone()),
        "train_seconds": train_s, "targets_per_s": positions as f64 / train_s,
        "eval_all_users_seconds": eval_s,
        "valid": report.valid, "test": report.test, "curve": curve,
    });

    // --- RecBole ---
    let mut peer = serde_json::Value::Null;
    if let Some(file) = arg::<String>(&args, "--peer-from") {
        peer = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    } else if !no_peer {
        let python = String::from_utf8(
            Command::new(repo.join("scripts/bench/recbole-venv.sh"))
                .output()?
                .stdout,
        )?;
        let dir = bench.join("recbole");
        export_atomic_inter(&ds, &dir, "recrl-ml-100k")?;
        let out = dir.join("result.json");
        let mut cmd = Command::new(python.trim());
        cmd.arg(repo.join("scripts/bench/recbole_sasrec.py"))
            .args([dir.as_os_str(), "recrl-ml-100k".as_ref(), out.as_os_str()])
            .args(["--seed", &cfg.seed.to_string()])
            .args(["--epochs", &cfg.ranker.epochs.to_string()])
            .args(["--patience", &cfg.ranker.patience.to_string()]);
        eprintln!("running the peer: {cmd:?}");
        let status = cmd.status()?;
        anyhow::ensure!(status.success(), "the RecBole run failed ({status})");
        peer = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    }

    // --- comparison ---
    let mut cmp = serde_json::Value::Null;
    if let Some(target) = peer["best_valid_ndcg10"].as_f64() {
        let ours_curve = ours["curve"].as_array().unwrap();
        let reach = ours_curve
            .iter()
            .find(|c| c["valid_ndcg10"].as_f64().unwrap() >= target)
            .map(|c| c["seconds"].as_f64().unwrap());
        let peer_best_epoch = peer["curve"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["valid_ndcg10"].as_f64().unwrap() >= target)
            .map(|c| c["seconds"].as_f64().unwrap());
        let peer_total = peer["seconds_total"]
            .as_f64()
            .or_else(|| peer["curve"].as_array()?.last()?["seconds"].as_f64())
            .unwrap_or(f64::NAN);
        // a partial result: RecBole has one target per training prefix, i.e. as many per epoch
        // as recrl supervises positions per epoch
        let peer_tps = peer["targets_per_s"].as_f64().or_else(|| {
            let last = peer["curve"].as_array()?.last()?;
            let per_epoch = report.epochs.first()?.positions as f64;
            Some(per_epoch * last["epoch"].as_f64()? / last["train_seconds"].as_f64()?)
        });
        cmp = serde_json::json!({
            "peer_finished": peer["finished"].as_bool().unwrap_or(false),
            "peer_epochs": peer["curve"].as_array().map_or(0, Vec::len),
            "peer_best_valid_ndcg10": target,
            "ours_seconds_to_peer_best": reach,
            "peer_seconds_to_best": peer_best_epoch,
            "ratio_time_to_peer_best_vs_peer_time_to_best": reach.zip(peer_best_epoch).map(|(a, b)| a / b),
            "ratio_time_to_peer_best_vs_peer_time_to_stop": reach.map(|a| a / peer_total),
            "ratio_converged_time": ours["seconds_total"].as_f64().unwrap() / peer_total,
            "test_ndcg10_full": [report.test[0].ndcg10, peer["test"]["ndcg@10"].as_f64()],
            "test_hr10_full": [report.test[0].hr10, peer["test"]["hit@10"].as_f64()],
            "ratio_test_ndcg10_full": peer["test"]["ndcg@10"].as_f64().map(|p| report.test[0].ndcg10 / p),
            "peer_targets_per_s": peer_tps,
            "ratio_targets_per_s": peer_tps.map(|p| ours["targets_per_s"].as_f64().unwrap() / p),
        });
    }
    let out = serde_json::json!({
        "benchmark": "step 2: SASRec on ml-100k (5-core, leave-one-out), recrl vs RecBole 1.2.1, cargo bench --bench ranker",
        "machine": format!("{} cores, {threads} torch threads, CPU", std::thread::available_parallelism().map_or(1, |n| n.get())),
        "date": String::from_utf8(Command::new("date").arg("-u").arg("+%F").output()?.stdout)?.trim(),
        "model": cfg.ranker, "users": ds.n_users(), "items": ds.n_items(),
        "protocol": "full ranking over all items minus history (headline); sampled-100 for recrl only",
        "recrl": ours, "recbole": peer, "comparison": cmp,
    });
    std::fs::create_dir_all(&bench)?;
    std::fs::write(
        bench.join("ranker.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&out["comparison"])?);
    Ok(())
}
