//! How long `base`'s replies are when nothing cuts them, and how many a token budget and the
//! 160-character cut leave complete (issue 31, part 2). `base` is the step-4 explainer (the
//! configured model, LoRA B = 0, `W_p` from the ranker's `E`); the users are the first RL users
//! of the seeded split, explaining the ranker's top item as PPO's rollouts do, greedy and with
//! the rollouts' sampling settings.
//!
//! ```text
//! cargo run --release --example reply_lengths -- [ROOT] [USERS] [SAMPLES] [OUT.json]
//! ```
//! ROOT is a project root whose `checkpoints/` holds ml-100k's ranker (step 2) and step-4
//! checkpoint (default `.`); USERS defaults to 96, SAMPLES (sampled replies a user, besides the
//! greedy one) to 2. Prints the table of BENCHMARKS.md and writes the replies and their lengths
//! as JSON (default `target/bench/reply_lengths.json`).

use anyhow::Result;
use recrl_lib::config::Config;
use recrl_lib::data::{split::UserSplit, store, DatasetName};
use recrl_lib::explainer::{init, prompt, GenerationConfig, StopReason};
use recrl_lib::judge::text::ends_sentence;
use recrl_lib::paths::Layout;
use recrl_lib::ranker::Ranker;
use serde_json::json;
use std::path::PathBuf;
use tch::Device;

/// Token budgets reported (the configuration's is 40; the seeded runs use 32).
const BUDGETS: [usize; 6] = [32, 40, 48, 64, 96, 128];

/// One reply, where its sentences end and which budgets leave it complete.
struct Reply {
    text: String,
    tokens: usize,
    eos: bool,
    /// Tokens up to and including the end of each sentence.
    sentence_ends: Vec<usize>,
    /// Characters of the reply up to the end of its first sentence.
    first_chars: Option<usize>,
    /// Per budget: whether the reply cut there (and to 160 characters) ends a sentence.
    complete_at: Vec<bool>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(args.get(1).map_or(".", String::as_str));
    let n_users: usize = args.get(2).map_or(Ok(96), |s| s.parse())?;
    let samples: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    let out = PathBuf::from(
        args.get(4)
            .map_or("target/bench/reply_lengths.json", String::as_str),
    );
    let layout = Layout::new(&root);
    let cfg = Config::load_default("ml-100k")?;
    let ds = store::load(&root, DatasetName::Ml100k)?;
    let ranker = Ranker::load(&layout.checkpoints(), &ds, Device::Cpu)?;
    let (ex, start) = init::start_for_ppo(
        layout.root(),
        &layout.lora_init_dir("ml-100k"),
        &cfg,
        ranker.output_table(),
        Device::Cpu,
    )?;
    eprintln!("base: {start}");
    let split = UserSplit::new(&ds, &cfg.split);
    let users: Vec<usize> = split.rl.iter().copied().take(n_users).collect();
    let requests = init::requests_for(&ds, &ranker, &users, 5);
    let budget = *BUDGETS.last().unwrap();
    let mut replies = Vec::new();
    for (k, chunk) in requests.chunks(16).enumerate() {
        for s in 0..=samples {
            let gen = GenerationConfig {
                max_new_tokens: budget,
                temperature: if s == 0 { 0.0 } else { cfg.temperature },
                top_p: cfg.top_p,
                seed: cfg.seed ^ ((k * 131 + s) as u64),
                ..GenerationConfig::default()
            };
            for g in ex.explain(&ds, chunk, Some(ranker.output_table()), &gen)? {
                let eos = g.stop == StopReason::Eos;
                replies.push(measure(&ex, &g.tokens, eos, cfg.explanation_max_len)?);
            }
        }
        eprintln!("{} of {} users", k * 16 + chunk.len(), requests.len());
    }
    print_table(&replies, cfg.explanation_max_len);
    let rows: Vec<_> = replies
        .iter()
        .map(|r| {
            json!({"text": r.text, "tokens": r.tokens, "eos": r.eos,
                   "sentence_ends": r.sentence_ends, "first_sentence_chars": r.first_chars,
                   "complete_at": r.complete_at})
        })
        .collect();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let report = json!({"users": users.len(), "samples": samples, "budgets": BUDGETS,
        "max_chars": cfg.explanation_max_len, "replies": rows});
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Decodes every prefix of `tokens` to find where sentences end, and which budgets leave the
/// reply (cut to `max_chars` characters as the reward reads it) complete.
fn measure(
    ex: &recrl_lib::explainer::Explainer,
    tokens: &[u32],
    eos: bool,
    max_chars: usize,
) -> Result<Reply> {
    let mut sentence_ends = Vec::new();
    let mut prev_end = false;
    for n in 1..=tokens.len() {
        let text = ex.tokenizer.decode(&tokens[..n], true)?;
        let ends = ends_sentence(&text);
        // A sentence ends at the last token of a run that ends one (the next token starts anew).
        if prev_end && !ends && !text.trim_end().is_empty() {
            let next = ex.tokenizer.decode(&tokens[n - 1..n], true)?;
            if next.starts_with(char::is_whitespace) {
                sentence_ends.push(n - 1);
            }
        }
        prev_end = ends;
    }
    if prev_end {
        sentence_ends.push(tokens.len());
    }
    let complete_at = BUDGETS
        .iter()
        .map(|&b| {
            let mut t = ex.tokenizer.decode(&tokens[..b.min(tokens.len())], true)?;
            prompt::cut_reply(&mut t, max_chars);
            Ok(ends_sentence(&t))
        })
        .collect::<Result<Vec<bool>>>()?;
    let first_chars = match sentence_ends.first() {
        Some(&n) => Some(ex.tokenizer.decode(&tokens[..n], true)?.chars().count()),
        None => None,
    };
    Ok(Reply {
        first_chars,
        text: ex.tokenizer.decode(tokens, true)?,
        tokens: tokens.len(),
        eos,
        sentence_ends,
        complete_at,
    })
}

fn share(replies: &[Reply], f: impl Fn(&Reply) -> bool) -> f64 {
    replies.iter().filter(|r| f(r)).count() as f64 / replies.len().max(1) as f64
}

fn print_table(replies: &[Reply], max_chars: usize) {
    let q = |p: f64, mut v: Vec<usize>| {
        v.sort_unstable();
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let lens: Vec<usize> = replies.iter().map(|r| r.tokens).collect();
    let first: Vec<usize> = replies
        .iter()
        .map(|r| r.sentence_ends.first().copied().unwrap_or(usize::MAX))
        .collect();
    println!(
        "{} replies; EOS within {} tokens: {:.2}",
        replies.len(),
        BUDGETS[BUDGETS.len() - 1],
        share(replies, |r| r.eos)
    );
    println!(
        "reply tokens (to EOS or the cap): median {}, p90 {}, p95 {}",
        q(0.5, lens.clone()),
        q(0.9, lens.clone()),
        q(0.95, lens)
    );
    println!(
        "first sentence ends at token: median {}, p90 {}, p95 {} (MAX = never)",
        q(0.5, first.clone()),
        q(0.9, first.clone()),
        q(0.95, first.clone())
    );
    println!("| budget | complete as cut (tokens, then {max_chars} chars) | first sentence ends within the budget | … and within {max_chars} chars (complete with max_sentences 1) |");
    println!("|---|---|---|---|");
    for (k, b) in BUDGETS.iter().enumerate() {
        let within = |r: &Reply| r.sentence_ends.first().is_some_and(|&e| e <= *b);
        println!(
            "| {b} | {:.2} | {:.2} | {:.2} |",
            share(replies, |r| r.complete_at[k]),
            share(replies, within),
            share(replies, |r| within(r)
                && r.first_chars.is_some_and(|c| c <= max_chars))
        );
    }
}
