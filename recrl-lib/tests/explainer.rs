//! Step 4: the Llama explainer against transformers (tiny random model in float64 and the real
//! SmolLM2 GGUF), KV-cache and batching invariances, LoRA, soft tokens, sampling.
//! Fixtures: scripts/fixtures/explainer_reference.py.

use recrl_lib::explainer::{
    generate,
    linear::BaseWeight,
    load, lora,
    model::{positions_of, KvCache},
    Explainer, GenerationConfig, Llama, LoadOptions, LoraConfig, PromptBatch, TextTokenizer,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explainer")
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn tiny() -> (Llama, TextTokenizer) {
    load::load(
        &fixtures().join("tiny-llama"),
        Device::Cpu,
        LoadOptions::default(),
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from(
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max(),
    )
    .unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<i64>> {
    let n = t.size()[0];
    (0..n)
        .map(|i| Vec::<i64>::try_from(t.get(i).to_kind(Kind::Int64)).unwrap())
        .collect()
}

/// The tiny model's batch as prompts (left padding stripped).
fn tiny_prompts(r: &HashMap<String, Tensor>) -> Vec<Vec<u32>> {
    let ids = rows(&r["ids"]);
    let mask = rows(&r["mask"]);
    ids.iter()
        .zip(&mask)
        .map(|(i, m)| {
            i.iter()
                .zip(m)
                .filter(|(_, &k)| k == 1)
                .map(|(&x, _)| x as u32)
                .collect()
        })
        .collect()
}

#[test]
fn tiny_logits_match_transformers_float64() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (model, _) = tiny();
    assert_eq!(
        model.config.num_key_value_heads, 2,
        "the fixture exercises grouped-query attention"
    );
    let logits = tch::no_grad(|| model.forward_ids(&r["ids"], &r["mask"].to_kind(Kind::Bool)));
    let mask = r["mask"].to_kind(Kind::Bool).unsqueeze(-1);
    let diff = max_diff(&(&logits * &mask), &(&r["logits"] * &mask));
    assert!(diff < 1e-4, "max |logit difference| at real tokens {diff}");
}

#[test]
fn cached_batched_greedy_equals_transformers_and_one_by_one() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (model, mut tok) = tiny();
    tok.eos.clear(); // the reference ran without stopping
    let prompts = tiny_prompts(&r);
    let cfg = GenerationConfig::greedy(12);
    let batch = PromptBatch::new(&prompts, &[], tok.pad, Device::Cpu);
    let together = generate(&model, &tok, &batch, None, &cfg).unwrap();
    let expected = rows(&r["greedy"]);
    for (b, g) in together.iter().enumerate() {
        let got: Vec<i64> = g.tokens.iter().map(|&t| t as i64).collect();
        assert_eq!(
            got, expected[b],
            "row {b}: batched KV-cache greedy vs transformers"
        );
        let alone = generate(
            &model,
            &tok,
            &PromptBatch::new(&prompts[b..=b], &[], tok.pad, Device::Cpu),
            None,
            &cfg,
        )
        .unwrap();
        assert_eq!(alone[0].tokens, g.tokens, "row {b}: batched vs one by one");
    }
    // Without a cache: re-run the whole sequence each step.
    let mut seq = prompts[0].clone();
    for _ in 0..12 {
        let ids =
            Tensor::from_slice(&seq.iter().map(|&x| x as i64).collect::<Vec<_>>()).unsqueeze(0);
        let logits = tch::no_grad(|| model.forward_ids(&ids, &ids.ones_like().to_kind(Kind::Bool)));
        seq.push(i64::try_from(logits.get(0).get(-1).argmax(-1, false)).unwrap() as u32);
    }
    assert_eq!(
        &seq[prompts[0].len()..],
        together[0].tokens.as_slice(),
        "no-cache vs cache"
    );
}

#[test]
fn logprobs_are_those_of_the_temperature_scaled_forward_pass() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (model, mut tok) = tiny();
    tok.eos.clear();
    let prompts = tiny_prompts(&r);
    let cfg = GenerationConfig {
        max_new_tokens: 6,
        temperature: 0.7,
        top_p: 0.9,
        seed: 3,
        ..Default::default()
    };
    let batch = PromptBatch::new(&prompts[1..], &[], tok.pad, Device::Cpu);
    let g = &generate(&model, &tok, &batch, None, &cfg).unwrap()[0];
    assert_eq!(
        generate(&model, &tok, &batch, None, &cfg).unwrap()[0].tokens,
        g.tokens,
        "same seed, same sample"
    );
    let full: Vec<i64> = prompts[1]
        .iter()
        .chain(&g.tokens)
        .map(|&x| x as i64)
        .collect();
    let ids = Tensor::from_slice(&full).unsqueeze(0);
    let logp = tch::no_grad(|| {
        (model.forward_ids(&ids, &ids.ones_like().to_kind(Kind::Bool)) / 0.7)
            .log_softmax(-1, Kind::Float)
    });
    let p = prompts[1].len() as i64;
    for (j, (&t, &lp)) in g.tokens.iter().zip(&g.logprobs).enumerate() {
        let want = f64::try_from(logp.get(0).get(p - 1 + j as i64).get(t as i64)).unwrap();
        assert!((want - lp as f64).abs() < 1e-4, "token {j}: {lp} vs {want}");
    }
    let k1 = GenerationConfig {
        top_k: 1,
        ..cfg.clone()
    };
    let greedy = GenerationConfig::greedy(6);
    assert_eq!(
        generate(&model, &tok, &batch, None, &k1).unwrap()[0].tokens,
        generate(&model, &tok, &batch, None, &greedy).unwrap()[0].tokens,
        "top-k 1 is greedy"
    );
}

#[test]
fn lora_zero_init_merge_and_adapter_round_trip() {
    let _g = torch_rng();
    tch::manual_seed(11);
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (ids, mask) = (&r["ids"], r["mask"].to_kind(Kind::Bool));
    let (mut model, _) = tiny();
    let before = tch::no_grad(|| model.forward_ids(ids, &mask));
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = LoraConfig {
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        ..Default::default()
    };
    let n = lora::add_lora(&mut model, &vs.root(), &cfg).unwrap();
    assert_eq!(
        n,
        2 * 16 * ((32 + 32) + (32 + 16) + (48 + 32)),
        "rank × (in + out) per adapted layer"
    );
    assert_eq!(
        max_diff(&before, &tch::no_grad(|| model.forward_ids(ids, &mask))),
        0.0,
        "B = 0 leaves logits unchanged"
    );
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            v.copy_(&(v.randn_like() * 0.1));
        }
    });
    let adapted = tch::no_grad(|| model.forward_ids(ids, &mask));
    assert!(
        max_diff(&before, &adapted) > 1e-3,
        "non-zero adapters change the logits"
    );
    model.lora_enabled = false;
    assert_eq!(
        max_diff(&before, &tch::no_grad(|| model.forward_ids(ids, &mask))),
        0.0,
        "disabled = reference policy"
    );
    model.lora_enabled = true;

    let dir = tempfile::tempdir().unwrap();
    lora::save_adapter(&mut model, &cfg, "tiny-llama", dir.path()).unwrap();
    let (mut fresh, _) = tiny();
    let vs2 = nn::VarStore::new(Device::Cpu);
    let read_cfg = lora::load_adapter(&mut fresh, &vs2.root(), dir.path()).unwrap();
    assert_eq!(read_cfg, cfg);
    assert_eq!(
        max_diff(&adapted, &tch::no_grad(|| fresh.forward_ids(ids, &mask))),
        0.0,
        "adapter round trip"
    );
    let names: Vec<String> = Tensor::read_safetensors(dir.path().join("adapter_model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(
            &"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight".to_string()
        ),
        "PEFT names: {names:?}"
    );

    lora::merge(&mut model);
    assert!(
        max_diff(&adapted, &tch::no_grad(|| model.forward_ids(ids, &mask))) < 1e-5,
        "merged = unmerged forward"
    );
}

#[test]
fn token_by_token_with_a_growing_cache_equals_the_whole_forward() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (ids, mask) = (&r["ids"], r["mask"].to_kind(Kind::Bool));
    let (model, _) = tiny();
    let whole = tch::no_grad(|| model.forward_ids(ids, &mask));
    // A default cache starts at the first token's size and regrows (copying) as it fills.
    let mut cache = KvCache::default();
    for t in 0..ids.size()[1] {
        let seen = mask.narrow(1, 0, t + 1);
        let step = tch::no_grad(|| {
            let hidden = model.forward_embeds(
                &model.embed_tokens(&ids.narrow(1, t, 1)),
                &seen,
                &positions_of(&seen).narrow(1, t, 1),
                &mut cache,
                false,
            );
            model.logits(&hidden)
        });
        assert_eq!(cache.len(), t + 1);
        let d = max_diff(&step, &whole.narrow(1, t, 1));
        assert!(d < 1e-4, "token {t}: cached vs whole forward differ by {d}");
    }
}

#[test]
fn a_replaced_projection_weight_is_used_not_the_stale_fused_block() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (ids, mask) = (&r["ids"], r["mask"].to_kind(Kind::Bool));
    let double_q_and_up = |model: &mut Llama| {
        for (name, lin) in model.linears_mut() {
            if let (true, BaseWeight::DenseT(w)) = (
                name.ends_with("q_proj") || name.ends_with("up_proj"),
                &lin.base,
            ) {
                lin.base = BaseWeight::DenseT(w * 2.0);
            }
        }
    };
    let (mut plain, _) = tiny();
    let before = tch::no_grad(|| plain.forward_ids(ids, &mask));
    double_q_and_up(&mut plain); // q and up no longer views of their blocks: run one by one
    let (mut repacked, _) = tiny();
    double_q_and_up(&mut repacked);
    repacked.fuse(); // one product again, over the new weights
    let a = tch::no_grad(|| plain.forward_ids(ids, &mask));
    let b = tch::no_grad(|| repacked.forward_ids(ids, &mask));
    assert!(
        max_diff(&a, &before) > 1e-2,
        "doubling q and up changes the logits"
    );
    assert!(max_diff(&a, &b) < 1e-5, "separate = fused products");
}

#[test]
fn soft_tokens_splice_and_carry_gradients_to_projector_and_table() {
    let _g = torch_rng();
    tch::manual_seed(5);
    let (model, tok) = tiny();
    let prompt = vec![0u32, 5, 9, 17, 3];
    // Splicing the tokens' own embeddings back in is the identity.
    let batch = PromptBatch::new(
        &[vec![1, 1], prompt.clone()],
        &[vec![], vec![1, 3]],
        tok.pad,
        Device::Cpu,
    );
    let own = model
        .embed
        .index_select(0, &Tensor::from_slice(&[5i64, 17]));
    let plain = PromptBatch::new(&[vec![1, 1], prompt.clone()], &[], tok.pad, Device::Cpu);
    let a = tch::no_grad(|| batch.embeds(&model, Some(&own)));
    let b = tch::no_grad(|| plain.embeds(&model, None));
    assert_eq!(max_diff(&a, &b), 0.0);
    // Gradients reach W_p and E.
    let vs = nn::VarStore::new(Device::Cpu);
    let table = (Tensor::randn([7, 6], (Kind::Float, Device::Cpu)) * 0.5).set_requires_grad(true);
    let proj = recrl_lib::explainer::Projector::new(&vs.root(), &table, &model.embed);
    let soft = proj.forward(&table.index_select(0, &Tensor::from_slice(&[2i64, 4])));
    let emb = batch.embeds(&model, Some(&soft));
    let hidden = model.forward_embeds(
        &emb,
        &batch.mask,
        &recrl_lib::explainer::model::positions_of(&batch.mask),
        &mut KvCache::default(),
        true,
    );
    model
        .logits(&hidden)
        .select(1, -1)
        .logsumexp([-1i64].as_slice(), false)
        .sum(Kind::Float)
        .backward();
    let gw = f64::try_from(proj.weight.grad().abs().sum(Kind::Double)).unwrap();
    let ge = Vec::<f64>::try_from(table.grad().abs().sum_dim_intlist(
        [1i64].as_slice(),
        false,
        Kind::Double,
    ))
    .unwrap();
    assert!(gw > 0.0, "W_p gets a gradient");
    assert!(
        ge[2] > 0.0 && ge[4] > 0.0,
        "E's spliced rows get gradients: {ge:?}"
    );
    assert_eq!(ge[3], 0.0, "rows not in the prompt get none");
}

#[test]
fn int8_weights_stay_close_and_take_a_quarter_of_the_bytes() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let (mut model, _) = tiny();
    let (_, f32_bytes) = model.base_size();
    model.quantize_int8();
    let (_, int8_bytes) = model.base_size();
    assert!(int8_bytes < f32_bytes, "{int8_bytes} vs {f32_bytes}");
    let mask = r["mask"].to_kind(Kind::Bool);
    let logits = tch::no_grad(|| model.forward_ids(&r["ids"], &mask));
    let m = mask.unsqueeze(-1);
    let diff = max_diff(&(&logits * &m), &(&r["logits"] * &m));
    let scale = f64::try_from(r["logits"].abs().max()).unwrap();
    assert!(
        diff < 0.05 * scale,
        "int8 drift {diff} vs logit scale {scale}"
    );
}

fn smollm2_path() -> PathBuf {
    let p = recrl_lib::paths::project_root()
        .join("checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh (it fetches the model)",
        p.display()
    );
    p
}

#[test]
fn smollm2_gguf_matches_transformers() {
    let ex = Explainer::load(&smollm2_path(), Device::Cpu, LoadOptions::default()).unwrap();
    // an adapter saved on it names the model by its Hugging Face id (from the asset registry)
    {
        let mut ex = Explainer::load(&smollm2_path(), Device::Cpu, LoadOptions::default()).unwrap();
        ex.init_lora(&LoraConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        ex.save(dir.path()).unwrap();
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            cfg["base_model_name_or_path"],
            "HuggingFaceTB/SmolLM2-135M-Instruct"
        );
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("smollm2_reference.json")).unwrap(),
    )
    .unwrap();
    let r = read(&fixtures().join("smollm2_reference.safetensors"));
    // Tokenizer: ids of fixed strings and a lossless round trip.
    for (text, ids) in json["encoded"].as_object().unwrap() {
        let want: Vec<u32> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ex.tokenizer.encode(text).unwrap(), want, "ids of {text:?}");
        assert_eq!(
            &ex.tokenizer.decode(&want, false).unwrap(),
            text,
            "round trip of {text:?}"
        );
    }
    assert_eq!(
        ex.tokenizer.encode("2024").unwrap().len(),
        4,
        "digits are split one by one"
    );
    assert_eq!(ex.tokenizer.eos, vec![2], "<|im_end|> ends a reply");
    assert_eq!(
        ex.tokenizer.template,
        recrl_lib::explainer::ChatTemplate::ChatMl
    );
    for (k, prompt) in json["prompts"].as_array().unwrap().iter().enumerate() {
        let ids = ex.tokenizer.encode(prompt.as_str().unwrap()).unwrap();
        let want_ids: Vec<u32> = Vec::<i64>::try_from(&r[&format!("prompt_ids_{k}")])
            .unwrap()
            .iter()
            .map(|&x| x as u32)
            .collect();
        assert_eq!(ids, want_ids, "prompt {k} ids");
        let t = Tensor::from_slice(&ids.iter().map(|&x| x as i64).collect::<Vec<_>>()).unsqueeze(0);
        let logits = tch::no_grad(|| ex.model.forward_ids(&t, &t.ones_like().to_kind(Kind::Bool)))
            .get(0)
            .get(-1);
        let want = &r[&format!("logits_{k}")];
        let diff = max_diff(&logits, want);
        assert!(diff < 2e-3, "prompt {k}: max |logit difference| {diff}");
        let batch = PromptBatch::new(&[ids], &[], ex.tokenizer.pad, Device::Cpu);
        let mut tok_cfg = GenerationConfig::greedy(16);
        tok_cfg.stop_strings.clear();
        let g = generate(
            &ex.model,
            &TextTokenizer {
                eos: vec![],
                ..clone_tok(&ex.tokenizer)
            },
            &batch,
            None,
            &tok_cfg,
        )
        .unwrap();
        let want_greedy: Vec<u32> = json["greedy"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(g[0].tokens, want_greedy, "prompt {k}: greedy tokens");
    }
}

fn clone_tok(t: &TextTokenizer) -> TextTokenizer {
    TextTokenizer {
        inner: t.inner.clone(),
        bos: t.bos,
        eos: t.eos.clone(),
        pad: t.pad,
        template: t.template,
    }
}

#[test]
fn llama2_tokenizer_rebuilt_from_npm_gives_the_known_ids() {
    let dir = recrl_lib::paths::project_root().join("checkpoints/models/llama2-tokenizer");
    assert!(
        dir.join("tokenizer.json").is_file(),
        "{} missing: run scripts/setup.sh",
        dir.display()
    );
    let tok = TextTokenizer::from_hf_dir(&dir).unwrap();
    let mut ids: Vec<u32> = tok.bos.into_iter().collect();
    ids.extend(tok.encode("Hello world!").unwrap());
    assert_eq!(ids, vec![1, 15043, 3186, 29991], "ASSETS.md's check");
    assert_eq!(tok.eos, vec![2]);
    assert_eq!(tok.template, recrl_lib::explainer::ChatTemplate::Zephyr);
    let chat = tok.template.render("Be brief.", "Hi", &tok.eos_text());
    assert_eq!(
        chat,
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n"
    );
    let ids = tok.encode(&chat).unwrap();
    assert_eq!(
        ids.iter().filter(|&&i| i == 2).count(),
        2,
        "</s> in the template is the EOS token: {ids:?}"
    );
    let text = "Toy Story (1995) is great.\nCafé 😀";
    assert_eq!(
        tok.decode(&tok.encode(text).unwrap(), true).unwrap(),
        text,
        "byte fallback round trip"
    );
}

/// Step 4 feeds step 5: PPO starts from the step-4 checkpoint when it matches the configured
/// adapter, starts afresh (and says why) when it does not, and refuses one made for another
/// base model.
#[test]
fn ppo_starts_from_the_step4_checkpoint_when_it_matches() {
    use recrl_lib::config::Config;
    use recrl_lib::explainer::init::{lora_config, start_for_ppo};
    let _g = torch_rng();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = Config::load_default("ml-100k").unwrap();
    cfg.explainer_model = "tests/fixtures/explainer/tiny-llama".into();
    cfg.lora_rank = 2;
    let table = Tensor::randn([7, 4], (Kind::Float, Device::Cpu));
    let dir = tempfile::tempdir().unwrap();
    let step4 = dir.path().join("lora_init_test");
    // No checkpoint: new adapter.
    let (_, note) = start_for_ppo(root, &step4, &cfg, &table, Device::Cpu).unwrap();
    assert!(
        note.starts_with("new LoRA") && note.contains("no step-4"),
        "{note}"
    );
    // Step 4 saves an adapter with a non-zero B (as a trained one would have).
    tch::manual_seed(11);
    let mut ex = Explainer::load(
        &root.join(&cfg.explainer_model),
        Device::Cpu,
        LoadOptions::default(),
    )
    .unwrap();
    ex.init_lora(&lora_config(&cfg)).unwrap();
    ex.init_projector(&table);
    for (_, mut v) in ex.trainable.variables() {
        tch::no_grad(|| {
            let _ = v.fill_(0.25);
        });
    }
    ex.save(&step4).unwrap();
    let (started, note) = start_for_ppo(root, &step4, &cfg, &table, Device::Cpu).unwrap();
    assert!(note.contains("from the step-4 checkpoint"), "{note}");
    let vars = started.trainable.variables();
    assert!(!vars.is_empty());
    for (name, v) in vars {
        assert!(
            f64::try_from((v - 0.25).abs().max()).unwrap() < 1e-6,
            "{name} was not read from the checkpoint"
        );
    }
    // Another rank (the lora4 arm): new adapter, and the note says why.
    let mut other = cfg.clone();
    other.lora_rank = 4;
    let (started, note) = start_for_ppo(root, &step4, &other, &table, Device::Cpu).unwrap();
    assert!(
        note.starts_with("new LoRA") && note.contains("rank: 2"),
        "{note}"
    );
    assert_eq!(started.lora.unwrap().rank, 4);
    // A checkpoint made for another base model is refused, by name.
    let meta_path = step4.join("explainer.json");
    let text = std::fs::read_to_string(&meta_path).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["base_model"] = "checkpoints/models/other-model".into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let err = start_for_ppo(root, &step4, &cfg, &table, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("other-model") && err.contains("explainer.json"),
        "{err}"
    );
}

/// `PromptBatch::rows` (the `sim_batch` chunks of a PPO step): a slice's embeddings, soft
/// vectors included, are the same rows of the whole batch's.
#[test]
fn prompt_batch_rows_keep_their_soft_vectors() {
    let (model, _) = tiny();
    let prompts = vec![vec![5u32, 6, 7], vec![8, 9], vec![10, 11, 12, 13], vec![14]];
    let soft = vec![vec![1], vec![0, 1], vec![], vec![0]];
    let batch = PromptBatch::new(&prompts, &soft, 0, Device::Cpu);
    let d = model.embed.size()[1];
    let vectors = Tensor::randn([4, d], (Kind::Float, Device::Cpu));
    let all = batch.embeds(&model, Some(&vectors));
    for (lo, hi) in [(0, 2), (1, 3), (2, 4), (3, 4)] {
        let (part, range) = batch.rows(lo, hi);
        let v = vectors.narrow(0, range.start as i64, range.len() as i64);
        let got = part.embeds(&model, Some(&v));
        let want = all.narrow(0, lo as i64, (hi - lo) as i64);
        assert!(max_diff(&got, &want) == 0.0, "rows {lo}..{hi}");
    }
    assert_eq!(
        batch.rows(2, 4).1,
        3..4,
        "rows 2..4 hold the last soft slot"
    );
}

/// The LoRA settings of the PEFT interop fixtures (`scripts/fixtures/peft_reference.py`).
fn interop_lora() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    }
}

/// Writes `tests/fixtures/explainer/recrl-adapter/`, the adapter recrl saves (seeded random A
/// and B), which the PEFT fixture script loads. Run once, before the script:
/// `cargo test -p recrl-lib --test explainer write_recrl_adapter_fixture -- --ignored`.
#[test]
#[ignore]
fn write_recrl_adapter_fixture() {
    let _g = torch_rng();
    let (mut model, _) = tiny();
    let vs = nn::VarStore::new(Device::Cpu);
    lora::add_lora(&mut model, &vs.root(), &interop_lora()).unwrap();
    tch::manual_seed(2026);
    tch::no_grad(|| {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mut v) in vars {
            v.copy_(&(v.randn_like() * 0.2));
        }
    });
    lora::save_adapter(
        &mut model,
        &interop_lora(),
        "tiny-llama",
        &fixtures().join("recrl-adapter"),
    )
    .unwrap();
}

/// PEFT interop both ways, on the tiny random Llama: the adapter recrl saved
/// (`recrl-adapter/`) loaded by PEFT 0.21.2 into transformers gives the logits recrl computes
/// with it (adapters on, and merged into the weights); an adapter PEFT made and saved
/// (`peft-adapter/`, random A and B) loads into recrl with PEFT's logits.
#[test]
fn peft_adapters_load_both_ways_with_equal_logits() {
    let r = read(&fixtures().join("tiny_reference.safetensors"));
    let reference = read(&fixtures().join("peft_reference.safetensors"));
    let (ids, mask) = (&r["ids"], r["mask"].to_kind(Kind::Bool));
    let real = mask.unsqueeze(-1);
    for (dir, key) in [
        ("recrl-adapter", "recrl_adapter_logits"),
        ("peft-adapter", "peft_adapter_logits"),
    ] {
        let (mut model, _) = tiny();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = lora::load_adapter(&mut model, &vs.root(), &fixtures().join(dir)).unwrap();
        assert_eq!((cfg.rank, cfg.alpha), (4, 8.0), "{dir}");
        let logits = tch::no_grad(|| model.forward_ids(ids, &mask));
        let diff = max_diff(&(&logits * &real), &(&reference[key] * &real));
        assert!(
            diff < 1e-4,
            "{dir}: max |logit difference| with PEFT {diff}"
        );
        let base = tch::no_grad(|| tiny().0.forward_ids(ids, &mask));
        assert!(
            max_diff(&(&base * &real), &(&reference[key] * &real)) > 1e-2,
            "{dir}: the adapter matters"
        );
        lora::merge(&mut model);
        let merged = tch::no_grad(|| model.forward_ids(ids, &mask));
        let diff = max_diff(&(&merged * &real), &(&reference[key] * &real));
        assert!(diff < 1e-4, "{dir}: merged adapter vs PEFT {diff}");
    }
}

/// `sentences: 1` stops each reply at its first sentence end: the reply is the unstopped
/// greedy reply's prefix up to that end, ends a sentence, and says why it stopped; a reply that
/// reaches the cap first keeps the cap's reason (SmolLM2, greedy, batched with padding).
#[test]
fn smollm2_stops_a_reply_at_its_first_sentence_end() {
    use recrl_lib::explainer::StopReason;
    use recrl_lib::judge::text::ends_sentence;
    let ex = Explainer::load(&smollm2_path(), Device::Cpu, LoadOptions::default()).unwrap();
    let prompts: Vec<Vec<u32>> = [
        "Why might I like the film Fargo? Answer in two sentences.",
        "Recommend a mystery novel to me and say why.",
        "Describe Star Wars in a few sentences.",
    ]
    .iter()
    .map(|m| ex.chat_prefix(m).unwrap())
    .collect();
    let batch = PromptBatch::new(
        &prompts,
        &[vec![], vec![], vec![]],
        ex.tokenizer.pad,
        Device::Cpu,
    );
    let run = |sentences: usize, cap: usize| {
        let cfg = GenerationConfig {
            sentences,
            ..GenerationConfig::greedy(cap)
        };
        generate(&ex.model, &ex.tokenizer, &batch, None, &cfg).unwrap()
    };
    let free = run(0, 64);
    let stopped = run(1, 64);
    for (f, s) in free.iter().zip(&stopped) {
        eprintln!("{:?} → {:?} ({:?})", f.text, s.text, s.stop);
        assert!(
            f.tokens.starts_with(&s.tokens),
            "a prefix of the free reply"
        );
        assert_eq!(s.logprobs[..], f.logprobs[..s.tokens.len()]);
        if s.stop == StopReason::SentenceEnd {
            assert!(ends_sentence(&s.text), "{:?}", s.text);
            let shorter = ex
                .tokenizer
                .decode(&s.tokens[..s.tokens.len() - 1], true)
                .unwrap();
            assert!(
                !ends_sentence(&shorter),
                "the first end, not a later one: {shorter:?}"
            );
        } else {
            assert_eq!(
                s.tokens, f.tokens,
                "no sentence end: as free ({:?})",
                s.stop
            );
        }
    }
    assert!(
        stopped
            .iter()
            .filter(|s| s.stop == StopReason::SentenceEnd)
            .count()
            >= 2,
        "most replies end a first sentence within 64 tokens"
    );
    assert!(stopped
        .iter()
        .zip(&free)
        .any(|(s, f)| s.tokens.len() < f.tokens.len()));
    // A cap before the first end keeps the cap's reason.
    for s in run(1, 3) {
        assert_eq!(s.stop, StopReason::Length);
    }
}
