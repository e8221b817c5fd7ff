//! Step 5 (pieces): PPO on the tiny random Llama with a synthetic reward learns; log-probs of
//! the one-pass scorer equal the cached generation's; the tensor loss equals the scalar forms.

use recrl_lib::explainer::{
    generate, Explainer, GenerationConfig, LoadOptions, LoraConfig, PromptBatch,
};
use recrl_lib::ppo::policy::{policy_loss, Responses, ValueHead};
use recrl_lib::ppo::{approx_kl, clipped_surrogate, update, PpoConfig};
use std::path::Path;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny() -> Explainer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explainer/tiny-llama");
    let mut ex = Explainer::load(&dir, Device::Cpu, LoadOptions::default()).unwrap();
    ex.tokenizer.eos.clear();
    ex
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![0, 5, 9],
        vec![0, 12, 3, 44],
        vec![0, 7],
        vec![0, 20, 21, 22, 23],
    ]
}

#[test]
fn scorer_log_probs_equal_the_generation_log_probs() {
    let ex = tiny();
    let batch = PromptBatch::new(&prompts(), &[], ex.tokenizer.pad, Device::Cpu);
    let cfg = GenerationConfig {
        max_new_tokens: 6,
        temperature: 0.8,
        top_p: 1.0,
        seed: 4,
        ..Default::default()
    };
    let gens = generate(&ex.model, &ex.tokenizer, &batch, None, &cfg).unwrap();
    let resp = Responses::new(&batch, &gens, ex.tokenizer.pad);
    let (lp, _) = tch::no_grad(|| resp.score(&ex.model, None, 0.8, false));
    for (i, g) in gens.iter().enumerate() {
        for (j, &want) in g.logprobs.iter().enumerate() {
            let got = f64::try_from(lp.get(i as i64).get(j as i64)).unwrap();
            assert!(
                (got - want as f64).abs() < 1e-4,
                "row {i} token {j}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn tensor_policy_loss_equals_the_scalar_closed_forms() {
    let lp = [-0.5, -1.2, -2.0, -0.1];
    let old = [-1.0, -1.0, -1.5, -0.1];
    let adv = [1.0, -0.5, 2.0, 0.3];
    let t = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float).view([1, 4]);
    let mask = Tensor::ones([1, 4], (Kind::Float, Device::Cpu));
    let (loss, clip, kl) = policy_loss(&t(&lp), &t(&old), &t(&adv), &mask, 0.2);
    let want: f64 = (0..4)
        .map(|i| clipped_surrogate(lp[i], old[i], adv[i], 0.2).0)
        .sum::<f64>()
        / 4.0;
    let want_clip = (0..4)
        .filter(|&i| clipped_surrogate(lp[i], old[i], adv[i], 0.2).1)
        .count() as f64
        / 4.0;
    let want_kl: f64 = (0..4).map(|i| approx_kl(lp[i], old[i])).sum::<f64>() / 4.0;
    assert!((f64::try_from(loss).unwrap() - want).abs() < 1e-6);
    assert!(
        (clip - want_clip).abs() < 1e-9 && (kl - want_kl).abs() < 1e-6,
        "{clip} {kl}"
    );
}

/// Reward = share of the response's tokens equal to `TARGET`.
const TARGET: u32 = 7;

#[test]
fn ppo_raises_a_synthetic_reward_and_kl_penalty_ties_to_the_reference() {
    let _g = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let mut ex = tiny();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        ..Default::default()
    };
    ex.init_lora(&lora).unwrap();
    let value = ValueHead::new(&ex.trainable.root(), ex.model.config.hidden_size as i64);
    let mut opt = nn::Adam::default().build(&ex.trainable, 3e-2).unwrap();
    let cfg = PpoConfig {
        epochs: 2,
        temperature: 1.0,
        kl_beta: 0.01,
        ..Default::default()
    };
    let many: Vec<Vec<u32>> = (0..4).flat_map(|_| prompts()).collect();
    let batch = PromptBatch::new(&many, &[], ex.tokenizer.pad, Device::Cpu);
    let mut rewards = Vec::new();
    let mut kls = Vec::new();
    for it in 0..30 {
        let gen = GenerationConfig {
            max_new_tokens: 8,
            temperature: 1.0,
            top_p: 1.0,
            seed: it,
            ..Default::default()
        };
        let gens = generate(&ex.model, &ex.tokenizer, &batch, None, &gen).unwrap();
        let seq: Vec<f64> = gens
            .iter()
            .map(|g| g.tokens.iter().filter(|&&t| t == TARGET).count() as f64 / 8.0)
            .collect();
        let resp = Responses::new(&batch, &gens, ex.tokenizer.pad);
        let stats = update(
            &mut ex.model,
            &value,
            &mut opt,
            &resp,
            &|| None,
            None,
            &seq,
            &cfg,
            &mut || {},
        );
        assert!(stats.approx_kl.is_finite() && stats.value_loss.is_finite());
        rewards.push(stats.reward);
        kls.push(stats.kl);
    }
    eprintln!("rewards {rewards:.3?}\nkl {kls:.3?}");
    let first: f64 = rewards[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = rewards[25..].iter().sum::<f64>() / 5.0;
    assert!(
        last > first + 0.3,
        "reward {first:.3} → {last:.3}: {rewards:?}"
    );
    assert!(
        kls[0].abs() < 1e-9,
        "the first batch is sampled from the reference itself"
    );
    assert!(
        kls[29] > 0.1,
        "the policy moved away from the reference: KL {}",
        kls[29]
    );
}
