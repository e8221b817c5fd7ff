//! Benchmark of step 4 (`cargo bench --bench explainer`): generation throughput of SmolLM2-135M
//! (f32, CPU, KV cache, greedy, 64 new tokens) at batch 1 and batch 8, recrl against Hugging
//! Face transformers' `generate` on the same GGUF, prompts and machine, in one run.
//! Tokens/s = batch × new tokens / median wall time of all timed runs (`--repeats` per round,
//! after a warm-up run). The two sides alternate for `--rounds` rounds (default 2), so that
//! this VM's drift in speed (±15% over minutes) hits both alike.
//! Writes `target/bench/explainer.json`. Options: `--no-peer`, `--repeats N`, `--rounds N`,
//! `--peer-thp` (also time the peer with `THP_MEM_ALLOC_ENABLE=1`, libtorch's switch for
//! transparent huge pages, which recrl's weight arena uses).
//! The peer runs in the scratch venv of `scripts/bench/hf-venv.sh`.

use recrl_lib::explainer::{generate, Explainer, GenerationConfig, LoadOptions, PromptBatch};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const NEW: usize = 64;
const QUESTIONS: [&str; 8] = [
    "Why might I enjoy Star Wars (1977)?",
    "Recommend a comedy for a rainy evening.",
    "I liked Heat (1995) and Casino (1995). What should I watch next, and why?",
    "Explain in two sentences why Toy Story (1995) is a classic.",
    "What makes a good thriller?",
    "Name a film like Fargo (1996).",
    "I watched Babe (1995), Jumanji (1995) and Balto (1995); suggest a family movie.",
    "Why do people love The Godfather (1972)?",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// Batch size → prompts (token ids).
type Batches = Vec<(usize, Vec<Vec<u32>>)>;
/// Batch size → wall seconds of the timed runs.
type Times = BTreeMap<usize, Vec<f64>>;

/// `repeats` timed runs per batch after one warm-up run.
fn time_recrl(
    ex: &Explainer,
    batches: &Batches,
    repeats: usize,
    times: &mut Times,
) -> anyhow::Result<()> {
    let cfg = GenerationConfig::greedy(NEW);
    for (bsz, rows) in batches {
        let batch = PromptBatch::new(rows, &[], ex.tokenizer.pad, tch::Device::Cpu);
        for k in 0..=repeats {
            let t = Instant::now();
            let g = generate(&ex.model, &ex.tokenizer, &batch, None, &cfg)?;
            assert!(g.iter().all(|g| g.tokens.len() == NEW));
            if k > 0 {
                times
                    .entry(*bsz)
                    .or_default()
                    .push(t.elapsed().as_secs_f64());
            }
        }
    }
    Ok(())
}

/// One run of `scripts/bench/hf_generate.py` (its own warm-up, then `repeats` timed runs).
fn time_peer(
    repo: &Path,
    python: &str,
    ids: &Path,
    repeats: usize,
    thp: bool,
    times: &mut Times,
) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(python);
    cmd.arg(repo.join("scripts/bench/hf_generate.py")).args([
        ids.display().to_string(),
        NEW.to_string(),
        repeats.to_string(),
    ]);
    if thp {
        cmd.env("THP_MEM_ALLOC_ENABLE", "1");
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    for (bsz, b) in peer["batches"].as_object().expect("batches") {
        let secs = b["seconds"]
            .as_array()
            .expect("seconds")
            .iter()
            .filter_map(|x| x.as_f64());
        times.entry(bsz.parse()?).or_default().extend(secs);
    }
    Ok(peer)
}

/// Tokens/s of every batch from the pooled run times.
fn summary(times: &Times) -> serde_json::Value {
    times
        .iter()
        .map(|(bsz, secs)| {
            let tps = (*bsz * NEW) as f64 / median(secs.clone());
            (
                bsz.to_string(),
                serde_json::json!({"seconds": secs, "tokens_per_s": tps}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let no_peer = args.iter().any(|a| a == "--no-peer");
    let peer_thp = args.iter().any(|a| a == "--peer-thp");
    let repeats: usize = flag(&args, "--repeats", 3);
    let rounds: usize = flag(&args, "--rounds", 2);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let out_dir = repo.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let gguf =
        repo.join("checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let t0 = Instant::now();
    let mut ex = Explainer::load(&gguf, tch::Device::Cpu, LoadOptions::default())?;
    let load_s = t0.elapsed().as_secs_f64();
    ex.tokenizer.eos.clear(); // exactly NEW tokens, as min_new_tokens does for the peer
    let prompts: Vec<Vec<u32>> = QUESTIONS
        .iter()
        .map(|q| {
            ex.tokenizer.encode(&ex.tokenizer.template.render(
                "You are a helpful assistant.",
                q,
                "",
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let batches: Batches = vec![(1, prompts[..1].to_vec()), (8, prompts.clone())];
    let ids_path = out_dir.join("explainer_prompts.json");
    let ids: serde_json::Value = batches
        .iter()
        .map(|(b, rows)| (b.to_string(), serde_json::json!(rows)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    std::fs::write(&ids_path, ids.to_string())?;
    let python = if no_peer {
        String::new()
    } else {
        let out = Command::new("bash")
            .arg(repo.join("scripts/bench/hf-venv.sh"))
            .output()?;
        String::from_utf8(out.stdout)?.trim().to_string()
    };
    let (mut ours, mut peer, mut peer_huge) = (Times::new(), Times::new(), Times::new());
    let mut peer_meta = serde_json::Value::Null;
    for round in 1..=rounds {
        time_recrl(&ex, &batches, repeats, &mut ours)?;
        eprintln!("round {round}: recrl {:?}", ours);
        if !no_peer {
            peer_meta = time_peer(&repo, &python, &ids_path, repeats, false, &mut peer)?;
            eprintln!("round {round}: transformers {:?}", peer);
            if peer_thp {
                time_peer(&repo, &python, &ids_path, repeats, true, &mut peer_huge)?;
                eprintln!("round {round}: transformers, THP {:?}", peer_huge);
            }
        }
    }
    let mut result = serde_json::json!({
        "benchmark": "explainer generation, SmolLM2-135M-Instruct Q4_1 GGUF dequantised to f32, CPU, greedy, KV cache",
        "new_tokens": NEW, "repeats": repeats, "rounds": rounds, "threads": tch::get_num_threads(),
        "load_seconds": load_s, "recrl": summary(&ours),
    });
    for (bsz, _) in &batches {
        let tps = |v: &serde_json::Value| v[bsz.to_string()]["tokens_per_s"].as_f64();
        let a = tps(&result["recrl"]).unwrap_or(f64::NAN);
        eprint!("batch {bsz}: recrl {a:8.1} tokens/s");
        if !no_peer {
            let b = tps(&summary(&peer)).unwrap_or(f64::NAN);
            eprint!(
                "  transformers {b:8.1} -> recrl / transformers = {:.2}x",
                a / b
            );
            result[format!("ratio_batch_{bsz}")] = serde_json::json!(a / b);
            if peer_thp {
                let c = tps(&summary(&peer_huge)).unwrap_or(f64::NAN);
                eprint!("  (transformers with THP {c:8.1}: {:.2}x)", a / c);
                result[format!("ratio_batch_{bsz}_vs_peer_thp")] = serde_json::json!(a / c);
            }
        }
        eprintln!();
    }
    if !no_peer {
        result["transformers"] = summary(&peer);
        result["transformers"]["torch"] = peer_meta["torch"].clone();
        result["transformers"]["threads"] = peer_meta["threads"].clone();
        if peer_thp {
            result["transformers_thp"] = summary(&peer_huge);
        }
    }
    let path = out_dir.join("explainer.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
