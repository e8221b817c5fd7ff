//! Benchmark of step 4 (`cargo bench --bench explainer`): generation throughput of SmolLM2-135M
//! (f32, CPU, KV cache, greedy, 64 new tokens) at batch 1 and batch 8, recrl against Hugging
//! Face transformers' `generate` on the same GGUF, prompts and machine, in one run.
//! Tokens/s = batch × new tokens / median wall time of 3 runs after a warm-up run.
//! Writes `target/bench/explainer.json`. Options: `--no-peer`, `--repeats N`.
//! The peer runs in the scratch venv of `scripts/bench/hf-venv.sh`.

use recrl_lib::explainer::{generate, Explainer, GenerationConfig, LoadOptions, PromptBatch};
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let no_peer = args.iter().any(|a| a == "--no-peer");
    let repeats: usize = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3);
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
    let batches = [(1usize, prompts[..1].to_vec()), (8, prompts.clone())];
    let cfg = GenerationConfig::greedy(NEW);
    let mut ours = serde_json::Map::new();
    for (bsz, rows) in &batches {
        let batch = PromptBatch::new(rows, &[], ex.tokenizer.pad, tch::Device::Cpu);
        let mut times = Vec::new();
        for k in 0..=repeats {
            let t = Instant::now();
            let g = generate(&ex.model, &ex.tokenizer, &batch, None, &cfg)?;
            assert!(g.iter().all(|g| g.tokens.len() == NEW));
            if k > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let tps = (*bsz * NEW) as f64 / median(times.clone());
        eprintln!("recrl        batch {bsz}: {tps:8.1} tokens/s  (runs {times:.3?} s)");
        ours.insert(
            bsz.to_string(),
            serde_json::json!({"seconds": times, "tokens_per_s": tps}),
        );
    }
    let mut result = serde_json::json!({
        "benchmark": "explainer generation, SmolLM2-135M-Instruct Q4_1 GGUF dequantised to f32, CPU, greedy, KV cache",
        "new_tokens": NEW, "repeats": repeats, "threads": tch::get_num_threads(), "load_seconds": load_s,
        "recrl": ours,
    });
    if !no_peer {
        let python = String::from_utf8(
            Command::new("bash")
                .arg(repo.join("scripts/bench/hf-venv.sh"))
                .output()?
                .stdout,
        )?;
        let ids: serde_json::Value = batches
            .iter()
            .map(|(b, rows)| (b.to_string(), serde_json::json!(rows)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let ids_path = out_dir.join("explainer_prompts.json");
        std::fs::write(&ids_path, ids.to_string())?;
        let out = Command::new(python.trim())
            .arg(repo.join("scripts/bench/hf_generate.py"))
            .args([
                ids_path.display().to_string(),
                NEW.to_string(),
                repeats.to_string(),
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let peer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        for (bsz, _) in &batches {
            let (a, b) = (
                result["recrl"][bsz.to_string()]["tokens_per_s"]
                    .as_f64()
                    .unwrap(),
                peer["batches"][bsz.to_string()]["tokens_per_s"]
                    .as_f64()
                    .unwrap(),
            );
            eprintln!(
                "transformers batch {bsz}: {b:8.1} tokens/s  -> recrl / transformers = {:.2}x",
                a / b
            );
            result[format!("ratio_batch_{bsz}")] = serde_json::json!(a / b);
        }
        result["transformers"] = peer;
    }
    let path = out_dir.join("explainer.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
