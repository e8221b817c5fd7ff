//! Benchmark of step 5's RL step (`cargo bench --bench rl_step`, issue 29): whole `recrl ppo`
//! runs of the project's binary on ml-100k (SmolLM2-135M Q4_1, the step-4 checkpoint), timed
//! step by step from their `metrics.jsonl` (wall seconds and the sample / reward / update
//! phases; step 1 warms up, steps 2..N are timed).
//!
//! * **seeded**: the budget of `experiments/seeded_runs.sh` (16 rollouts a step, G 4, 32 new
//!   tokens, 1 epoch of micro-batches of 4, `grad_accum` 2), `before` (every row computes its
//!   prompt, a scoring pass for the old log-probs: `--set shared_prompts=false --set
//!   old_logprobs=score`) against `after` (the defaults), under the records' conditions (two
//!   runs of one variant side by side, `OMP_NUM_THREADS=1` each) and alone on 2 threads.
//! * **peer**: TRL's `GRPOTrainer` (`scripts/bench/trl_grpo_bench.py` in the scratch venv of
//!   `scripts/bench/trl-venv.sh`) against recrl on the same work, 8 completions × 32 tokens a
//!   round, 4 passes, micro-batches of 4, LoRA r 16 on q,k,v,o, 2 threads: G 2 (4 prompts) and
//!   G 4 (2 prompts), recrl and TRL alternating.
//!
//! Options: `--steps N` (default 4), `--rounds R` (default 1: each comparison R times, in
//! alternation), `--no-seeded`, `--no-peer`. Writes `target/bench/rl_step.json` (every
//! step's times, medians and ranges, peak RSS of each run, versions). Needs the main job's
//! products (`data/proc/ml-100k`, the ranker, basis and `lora_init` checkpoints); runs under
//! the tags `bench_*` and removes their logs and checkpoints afterwards.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// `experiments/seeded_runs.sh`'s budget (replies stopped by the token cap or EOS only, as
/// in the records and in the peer: `max_sentences=0`).
const SEEDED: [&str; 16] = [
    "--micro_batch_size",
    "4",
    "--set",
    "ppo_batch=16",
    "--set",
    "sim_batch=8",
    "--set",
    "max_new_tokens=32",
    "--set",
    "epochs=1",
    "--set",
    "grad_accum=2",
    "--set",
    "lr=3e-4",
    "--set",
    "max_sentences=0",
];

/// The update before issue 29.
const BEFORE: [&str; 4] = [
    "--set",
    "shared_prompts=false",
    "--set",
    "old_logprobs=score",
];

/// The peer's work on recrl's side (`../shared/bench/trl-grpo/README.md`), less the group;
/// TRL stops a completion at EOS or its length only, so recrl does too (`max_sentences=0`).
const PEER: [&str; 14] = [
    "--set",
    "ppo_batch=8",
    "--set",
    "epochs=4",
    "--micro_batch_size",
    "4",
    "--grad_accum",
    "1",
    "--set",
    "max_new_tokens=32",
    "--set",
    "lr=3e-4",
    "--set",
    "max_sentences=0",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// Median and range of `v`.
fn summary(v: &[f64]) -> Value {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => Value::Null,
        n => json!({"median": s[n / 2], "min": s[0], "max": s[n - 1], "n": n}),
    }
}

/// Removes a bench tag's log folder and checkpoint.
fn clean(tag: &str) {
    let r = root();
    let _ = std::fs::remove_dir_all(r.join("logs/ml-100k").join(tag));
    let _ = std::fs::remove_dir_all(r.join(format!("checkpoints/ppo_ml-100k_{tag}")));
}

/// Starts `recrl ppo` under `tag` with `args`, `threads` OpenMP threads, its peak RSS written
/// to `target/bench/<tag>.rss` by `/usr/bin/time`.
fn start(tag: &str, args: &[&str], steps: usize, threads: usize) -> Child {
    clean(tag);
    let r = root();
    let bench = r.join("target/bench");
    std::fs::create_dir_all(&bench).unwrap();
    let steps = steps.to_string();
    let log = std::fs::File::create(bench.join(format!("{tag}.log"))).unwrap();
    Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(bench.join(format!("{tag}.rss")))
        .arg(env!("CARGO_BIN_EXE_recrl"))
        .args([
            "ppo",
            "--dataset",
            "ml-100k",
            "--tag",
            tag,
            "--max_steps",
            &steps,
        ])
        .args(["--eval_every", "1000", "--checkpoint_every", "1000"])
        .args(args)
        .env("OMP_NUM_THREADS", threads.to_string())
        .current_dir(&r)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("/usr/bin/time and the recrl binary")
}

/// The timed steps (2..) of a finished run: wall seconds and phases, and its peak RSS (MiB).
fn finish(tag: &str, mut child: Child) -> Value {
    let status = child.wait().unwrap();
    let r = root();
    assert!(
        status.success(),
        "recrl ppo --tag {tag} failed: see target/bench/{tag}.log"
    );
    let text = std::fs::read_to_string(r.join("logs/ml-100k").join(tag).join("metrics.jsonl"))
        .expect("the run's metrics.jsonl");
    let steps: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["step"].as_u64().unwrap_or(0) >= 2)
        .map(|m| {
            json!({"step": m["step"], "seconds": m["seconds"], "sample": m["phases"]["sample"],
                   "reward": m["phases"]["reward"], "update": m["phases"]["update"]})
        })
        .collect();
    let first = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["step"] == 1)
        .unwrap_or(Value::Null);
    let samples: Vec<Value> =
        std::fs::read_to_string(r.join("logs/ml-100k").join(tag).join("samples.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
    let rss_kib: f64 = std::fs::read_to_string(r.join(format!("target/bench/{tag}.rss")))
        .ok()
        .and_then(|s| s.lines().last()?.trim().parse().ok())
        .unwrap_or(f64::NAN);
    clean(tag);
    json!({"tag": tag, "steps": steps, "peak_rss_mib": rss_kib / 1024.0, "first_step": first,
           "samples": samples})
}

/// Medians and ranges of the timed steps of `runs`, per phase.
fn phases(runs: &[Value]) -> Value {
    let steps: Vec<Value> = runs
        .iter()
        .flat_map(|r| r["steps"].as_array().cloned().unwrap_or_default())
        .collect();
    let of = |k: &str| {
        summary(
            &steps
                .iter()
                .filter_map(|s| s[k].as_f64())
                .collect::<Vec<_>>(),
        )
    };
    let rss: Vec<f64> = runs
        .iter()
        .filter_map(|r| r["peak_rss_mib"].as_f64())
        .collect();
    json!({"seconds": of("seconds"), "sample": of("sample"), "reward": of("reward"),
           "update": of("update"), "peak_rss_mib": summary(&rss)})
}

/// The seeded-runs step, before and after, side by side and alone, `rounds` times.
fn seeded(steps: usize, rounds: usize) -> Value {
    let mut out = json!({});
    for round in 0..rounds {
        for (variant, extra) in [("before", &BEFORE[..]), ("after", &[][..])] {
            let args = [&["--arm", "shielded_grpo_g4"][..], &SEEDED, extra].concat();
            eprintln!("seeded {variant}, round {round}: two runs side by side, 1 thread each");
            let (a, b) = (format!("bench_{variant}_a"), format!("bench_{variant}_b"));
            let (ca, cb) = (start(&a, &args, steps, 1), start(&b, &args, steps, 1));
            let pair = [finish(&a, ca), finish(&b, cb)];
            eprintln!("seeded {variant}, round {round}: alone, 2 threads");
            let alone = format!("bench_{variant}_alone");
            let one = finish(&alone, start(&alone, &args, steps, 2));
            for (cond, runs) in [
                ("side_by_side_1_thread", pair.to_vec()),
                ("alone_2_threads", vec![one]),
            ] {
                let slot = &mut out[variant][cond]["runs"];
                if slot.is_null() {
                    *slot = json!([]);
                }
                slot.as_array_mut().unwrap().extend(runs);
            }
        }
    }
    out["same_first_step"] = same_first_step(&out);
    for variant in ["before", "after"] {
        for cond in ["side_by_side_1_thread", "alone_2_threads"] {
            let runs = out[variant][cond]["runs"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            out[variant][cond]["summary"] = phases(&runs);
        }
    }
    out
}

/// The first step of the first `before` and `after` runs alone (same seed, same options but
/// the path): its statistics side by side with their relative differences, and the first
/// step whose logged sample texts differ (sampling diverges once a float does).
fn same_first_step(out: &Value) -> Value {
    let run = |v: &str| out[v]["alone_2_threads"]["runs"][0].clone();
    let (b, a) = (run("before"), run("after"));
    let mut stats = json!({});
    for k in [
        "reward",
        "kl",
        "entropy",
        "policy_loss",
        "approx_kl",
        "clip_frac",
        "quality",
    ] {
        let (x, y) = (b["first_step"][k].as_f64(), a["first_step"][k].as_f64());
        if let (Some(x), Some(y)) = (x, y) {
            let rel = (x - y).abs() / x.abs().max(y.abs()).max(f64::MIN_POSITIVE);
            stats[k] = json!({"before": x, "after": y, "relative_difference": rel});
        }
    }
    let texts = |r: &Value| -> Vec<(u64, String)> {
        r["samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s["step"].as_u64().unwrap_or(0),
                    s["explanation"].to_string(),
                )
            })
            .collect()
    };
    let first_divergent = texts(&b)
        .iter()
        .zip(texts(&a))
        .find(|(x, y)| **x != *y)
        .map(|(x, _)| x.0);
    json!({"first_step": stats, "first_step_with_other_samples": first_divergent})
}

/// recrl and TRL on the peer's work, G 2 and G 4, alternating, `rounds` times.
fn peer(steps: usize, rounds: usize) -> Value {
    let r = root();
    let python = Command::new("bash")
        .arg(r.join("scripts/bench/trl-venv.sh"))
        .output()
        .expect("scripts/bench/trl-venv.sh");
    assert!(python.status.success(), "scripts/bench/trl-venv.sh failed");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let mut out = json!({});
    for round in 0..rounds {
        for g in [2usize, 4] {
            eprintln!("peer G {g}, round {round}: recrl");
            let tag = format!("bench_peer_g{g}");
            let group = g.to_string();
            let args = [&PEER[..], &["--group_size", &group]].concat();
            let run = finish(&tag, start(&tag, &args, steps, 2));
            eprintln!("peer G {g}, round {round}: TRL GRPOTrainer");
            let json_out = r.join(format!("target/bench/trl_g{g}_{round}.json"));
            let status = Command::new(&python)
                .arg(r.join("scripts/bench/trl_grpo_bench.py"))
                .args([
                    "--ml100k",
                    "--rounds",
                    &steps.to_string(),
                    "--generations",
                    &group,
                ])
                .arg("--model")
                .arg(r.join("target/smollm2-135m-f32"))
                .arg("--out")
                .arg(&json_out)
                .env("RECRL_ROOT", &r)
                .env("PEER_DIR", r.join("target/bench"))
                .status()
                .expect("the TRL peer");
            assert!(status.success(), "the TRL peer failed");
            let trl: Value =
                serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
            let key = format!("g{g}");
            for (side, v) in [("recrl", run), ("trl", trl)] {
                let slot = &mut out[&key][side];
                if slot.is_null() {
                    *slot = json!([]);
                }
                slot.as_array_mut().unwrap().push(v);
            }
        }
    }
    for g in ["g2", "g4"] {
        let recrl = phases(out[g]["recrl"].as_array().unwrap());
        let trl_steps: Vec<f64> = out[g]["trl"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["timed_rounds"].as_array().cloned().unwrap_or_default())
            .filter_map(|x| x.as_f64())
            .collect();
        let trl = summary(&trl_steps);
        let ratio = trl["median"].as_f64().unwrap_or(f64::NAN)
            / recrl["seconds"]["median"].as_f64().unwrap_or(f64::NAN);
        out[g]["summary"] = json!({"recrl": recrl, "trl_round_seconds": trl,
                                   "trl_over_recrl": ratio,
                                   "trl_versions": out[g]["trl"][0]["versions"].clone()});
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = flag(&args, "--steps", 4);
    let rounds: usize = flag(&args, "--rounds", 1);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut out = json!({
        "bench": "rl_step", "commit": commit, "steps": steps, "rounds": rounds,
        "torch": std::fs::read_to_string(root().join(".libtorch/version.txt")).unwrap_or_default().trim(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    if !args.iter().any(|a| a == "--no-seeded") {
        out["seeded"] = seeded(steps, rounds);
    }
    if !args.iter().any(|a| a == "--no-peer") {
        out["peer"] = peer(steps, rounds);
    }
    let path = root().join("target/bench/rl_step.json");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let brief = |v: &Value| v["median"].as_f64().unwrap_or(f64::NAN);
    if let Some(s) = out.get("seeded") {
        for cond in ["side_by_side_1_thread", "alone_2_threads"] {
            let (b, a) = (&s["before"][cond]["summary"], &s["after"][cond]["summary"]);
            println!(
                "seeded step, {cond}: before {:.1} s (sample {:.1} / reward {:.1} / update {:.1}), \
                 after {:.1} s ({:.1} / {:.1} / {:.1}), ×{:.2}",
                brief(&b["seconds"]), brief(&b["sample"]), brief(&b["reward"]), brief(&b["update"]),
                brief(&a["seconds"]), brief(&a["sample"]), brief(&a["reward"]), brief(&a["update"]),
                brief(&b["seconds"]) / brief(&a["seconds"])
            );
        }
    }
    if let Some(p) = out.get("peer") {
        for g in ["g2", "g4"] {
            let s = &p[g]["summary"];
            println!(
                "peer {g}: recrl {:.1} s, TRL {:.1} s a round, TRL ÷ recrl ×{:.2}",
                brief(&s["recrl"]["seconds"]),
                brief(&s["trl_round_seconds"]),
                s["trl_over_recrl"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    println!("wrote {}", path.display());
}
