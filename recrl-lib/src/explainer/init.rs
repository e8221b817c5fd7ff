//! Step 4 as one call: load the explainer, add LoRA and `W_p`, save `checkpoints/lora_init_<ds>/`;
//! plus the tables notebook 04 and `recrl lora-init` show.

use super::{ExplainRequest, Explainer, Generation, LoadOptions, LoraConfig, ParamCounts};
use crate::config::Config;
use crate::data::Dataset;
use crate::display::Table;
use crate::ranker::Ranker;
use anyhow::Result;
use std::path::Path;
use tch::Device;

/// LoRA settings from the configuration (`lora_rank`, `lora_alpha`, `lora_dropout`; q,k,v,o).
pub fn lora_config(cfg: &Config) -> LoraConfig {
    LoraConfig {
        rank: cfg.lora_rank,
        alpha: cfg.lora_alpha,
        dropout: cfg.lora_dropout,
        ..LoraConfig::default()
    }
}

/// Loads the configured explainer (`explainer_model`, `int8`; bf16 on CUDA).
pub fn load_configured(root: &Path, cfg: &Config, device: Device) -> Result<Explainer> {
    let opts = LoadOptions {
        int8: cfg.int8,
        bf16: device.is_cuda(),
    };
    Explainer::load(&root.join(&cfg.explainer_model), device, opts)
}

/// The explainer a PPO run starts from (step 4 → step 5): the configured model with the LoRA
/// and `W_p` of the step-4 checkpoint in `step4_dir` when it is there and made for the same
/// adapter settings, else new ones (LoRA B = 0, `W_p` from `table`); and a line saying which.
/// A checkpoint made for another base model is refused, by name.
pub fn start_for_ppo(
    models_root: &Path,
    step4_dir: &Path,
    cfg: &Config,
    table: &tch::Tensor,
    device: Device,
) -> Result<(Explainer, String)> {
    let mut ex = load_configured(models_root, cfg, device)?;
    let want = lora_config(cfg);
    if let Some(parent) = step4_dir.parent() {
        crate::io::recover(parent)?; // finishes a step-4 save that a kill interrupted
    }
    let meta_path = step4_dir.join(crate::paths::files::EXPLAINER);
    let fresh = |ex: &mut Explainer, why: String| -> Result<String> {
        ex.init_lora(&want)?;
        ex.init_projector(table);
        Ok(format!("new LoRA (B = 0) and W_p: {why}"))
    };
    if !meta_path.is_file() {
        let why = format!(
            "no step-4 checkpoint in {}",
            crate::paths::relative_to(models_root, step4_dir).display()
        );
        let note = fresh(&mut ex, why)?;
        return Ok((ex, note));
    }
    let meta: serde_json::Value = crate::io::read_json(&meta_path)?;
    let file_name = |p: &str| Path::new(p).file_name().map(|f| f.to_os_string());
    let made_for = meta["base_model"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(
        file_name(&made_for) == ex.source.file_name().map(|f| f.to_os_string()),
        "{}: the step-4 checkpoint was made for base model {made_for:?}, but explainer_model is {:?}; re-run step 4 (`recrl lora-init`) or remove {}",
        meta_path.display(),
        ex.source.display(),
        step4_dir.display()
    );
    let lora: Option<LoraConfig> = serde_json::from_value(meta["lora"].clone()).ok();
    if lora.as_ref() != Some(&want) {
        let why = format!(
            "the step-4 checkpoint {} has LoRA {:?}, this run configures {:?}",
            step4_dir.display(),
            lora,
            want
        );
        let note = fresh(&mut ex, why)?;
        return Ok((ex, note));
    }
    let delta = ex.load_checkpoint(step4_dir, table)?;
    anyhow::ensure!(
        delta.is_none() && ex.projector.is_some(),
        "{}: not a step-4 checkpoint (it holds e_delta or lacks w_p)",
        step4_dir.display()
    );
    let note = format!(
        "LoRA and W_p from the step-4 checkpoint {}",
        crate::paths::relative_to(models_root, step4_dir).display()
    );
    Ok((ex, note))
}

/// Explanation requests for `users`: the last `n_history` training items, and the ranker's top
/// unseen item after the whole training history (the item PPO explains).
pub fn requests_for(
    ds: &Dataset,
    ranker: &Ranker,
    users: &[usize],
    n_history: usize,
) -> Vec<ExplainRequest> {
    let histories: Vec<&Vec<u32>> = users.iter().map(|&u| &ds.train[u - 1]).collect();
    let tops = ranker.top_k(&histories, 1, true);
    users
        .iter()
        .zip(histories.iter().zip(tops))
        .map(|(&user, (h, top))| ExplainRequest {
            user,
            history: h[h.len().saturating_sub(n_history)..].to_vec(),
            recommended: top[0].0,
        })
        .collect()
}

/// Adds LoRA (from `cfg`) and `W_p` (for the ranker's `E`) and saves them into `dir`.
pub fn init_and_save(
    ex: &mut Explainer,
    cfg: &Config,
    ranker: &Ranker,
    dir: &Path,
) -> Result<ParamCounts> {
    let _owner = crate::io::Owner::acquire(
        &crate::paths::owner_lock(dir),
        &format!("the step-4 checkpoint {}", dir.display()),
    )?;
    ex.init_lora(&lora_config(cfg))?;
    ex.init_projector(ranker.output_table());
    ex.save(dir)?;
    Ok(ex.counts())
}

/// The model's shape, tokenizer and chat format as a two-column table.
pub fn model_table(ex: &Explainer) -> Table {
    let c = &ex.model.config;
    Table::key_value(vec![
        ("source".into(), ex.source.display().to_string()),
        (
            "layers / d_model / FFN".into(),
            format!(
                "{} / {} / {}",
                c.num_hidden_layers, c.hidden_size, c.intermediate_size
            ),
        ),
        (
            "query / KV heads".into(),
            format!("{} / {}", c.num_attention_heads, c.num_key_value_heads),
        ),
        (
            "vocabulary, RoPE θ, RMSNorm ε".into(),
            format!("{}, {}, {:e}", c.vocab_size, c.rope_theta, c.rms_norm_eps),
        ),
        (
            "lm_head".into(),
            if c.tie_word_embeddings {
                "tied to the embedding"
            } else {
                "untied"
            }
            .into(),
        ),
        (
            "chat template, EOS ids".into(),
            format!("{:?}, {:?}", ex.tokenizer.template, ex.tokenizer.eos),
        ),
        (
            "device, dtype".into(),
            format!("{:?}, {:?}", ex.model.device(), ex.model.kind()),
        ),
    ])
}

/// Parameter counts, trainable share and weight memory.
pub fn counts_table(c: &ParamCounts) -> Table {
    let mib = |b: i64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    Table::key_value(vec![
        (
            "base parameters (frozen)".into(),
            format!("{} ({} as loaded)", c.base, mib(c.base_bytes)),
        ),
        ("LoRA parameters".into(), c.lora.to_string()),
        ("W_p parameters".into(), c.projector.to_string()),
        (
            "trainable share (LoRA + W_p)".into(),
            format!("{:.3}%", 100.0 * c.trainable_share()),
        ),
        (
            "trainable memory (f32 + AdamW moments)".into(),
            mib(16 * (c.lora + c.projector)),
        ),
    ])
}

/// One row per request: user, last history titles, recommended title, then each reply column.
pub fn explanations_table(
    ds: &Dataset,
    requests: &[ExplainRequest],
    columns: &[(&str, &[Generation])],
) -> Table {
    let mut header = vec![
        "user".to_string(),
        "recent history".into(),
        "recommended".into(),
    ];
    header.extend(columns.iter().map(|(n, _)| n.to_string()));
    let rows = requests
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let hist: Vec<&str> = r.history.iter().map(|&i| ds.title(i)).collect();
            let mut row = vec![
                r.user.to_string(),
                hist.join(" · "),
                ds.title(r.recommended).to_string(),
            ];
            row.extend(
                columns
                    .iter()
                    .map(|(_, g)| g[k].text.trim().replace('\n', " ")),
            );
            row
        })
        .collect();
    Table::new(&header, rows)
}
