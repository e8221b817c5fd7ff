//! The grounded `q(x)` (docs/design.md §7.2) on constructed texts, with the real models of the
//! embedded default: SmolLM2-135M-Instruct as the reference model and all-MiniLM-L6-v2.
//! Noise, shuffled words and a looped title score near 0; a fluent text about something else
//! scores low; a hand-written grounded explanation scores high.

mod common;

use common::successor_dataset;
use recrl_lib::data::Dataset;
use recrl_lib::explainer::{Explainer, LoadOptions};
use recrl_lib::paths::Layout;
use recrl_lib::rng::Rng;
use recrl_lib::sim::quality::{Grader, QualityParts, Subject};
use std::path::Path;
use tch::Device;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference_model() -> Explainer {
    let path =
        root().join("checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    Explainer::load(&path, Device::Cpu, LoadOptions::default()).unwrap()
}

/// Item 3 is Star Wars, item 2 Return of the Jedi (in the user's history).
fn films() -> Dataset {
    let mut ds = successor_dataset(4, 12, 3);
    ds.items[3].title = "Star Wars".into();
    ds.items[3].genres = vec!["Action".into(), "Adventure".into(), "Sci-Fi".into()];
    ds.items[3].year = Some(1977);
    ds.items[2].title = "Return of the Jedi".into();
    ds.items[2].genres = vec!["Action".into(), "Sci-Fi".into()];
    ds
}

const GOOD: &str = "Since you loved Return of the Jedi, you will enjoy Star Wars: the original space adventure with thrilling action and unforgettable heroes.";
const OFF_TOPIC: &str = "The weather in the mountains was cold this morning, so we stayed inside and cooked a large breakfast for the whole family.";

fn shuffled(text: &str, seed: u64) -> String {
    let mut w: Vec<&str> = text.split_whitespace().collect();
    Rng::new(seed).shuffle(&mut w);
    w.join(" ")
}

/// Strings of sub-words drawn uniformly from the tokenizer's vocabulary.
fn random_subwords(ex: &Explainer, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let vocab = ex.model.config.vocab_size;
    (0..n)
        .map(|_| {
            let ids: Vec<u32> = (0..30).map(|_| rng.below(vocab) as u32).collect();
            ex.tokenizer.decode(&ids, true).unwrap()
        })
        .collect()
}

fn grade(grader: &Grader, ex: &mut Explainer, ds: &Dataset, texts: &[&str]) -> Vec<QualityParts> {
    let history = [2u32];
    let subjects: Vec<Subject> = texts
        .iter()
        .map(|t| Subject {
            text: t,
            item: 3,
            history: &history,
        })
        .collect();
    grader.grade(ex, ds, &subjects).unwrap()
}

#[test]
fn noise_scores_near_zero_and_a_grounded_explanation_scores_high() {
    let mut ex = reference_model();
    let grader = Grader::load(&Layout::new(root()), &mut ex).unwrap();
    let ds = films();
    eprintln!("fluency anchors {:?}", grader.fluency);
    let noise = random_subwords(&ex, 8, 1);
    let shuffles: Vec<String> = (0..8).map(|s| shuffled(GOOD, s)).collect();
    let looped = "Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars";
    let mut texts: Vec<&str> = vec![GOOD, OFF_TOPIC, looped];
    texts.extend(noise.iter().map(String::as_str));
    texts.extend(shuffles.iter().map(String::as_str));
    let parts = grade(&grader, &mut ex, &ds, &texts);
    for (t, p) in texts.iter().zip(&parts) {
        eprintln!("q {:.3} {p:?}  {t:?}", p.q());
    }
    let q: Vec<f64> = parts.iter().map(QualityParts::q).collect();
    assert!(
        q[0] >= 0.7,
        "a hand-written grounded explanation: q {}",
        q[0]
    );
    assert!(q[1] <= 0.4, "fluent but off-topic: q {}", q[1]);
    assert!(q[2] <= 0.2, "a looped title: q {}", q[2]);
    for (i, v) in q[3..11].iter().enumerate() {
        assert!(*v <= 0.05, "random sub-words {:?}: q {v}", noise[i]);
    }
    for (i, v) in q[11..].iter().enumerate() {
        assert!(*v <= 0.05, "shuffled words {:?}: q {v}", shuffles[i]);
    }
    assert!(parts[0].relevance > parts[1].relevance);
}

#[test]
fn the_reference_model_ignores_the_adapter_and_the_grade_is_deterministic() {
    let mut ex = reference_model();
    let prefix = ex.chat_prefix("Say something.").unwrap();
    let before = ex.reference_log_probs(&prefix, &[GOOD, OFF_TOPIC]).unwrap();
    tch::manual_seed(3);
    ex.init_lora(&recrl_lib::explainer::LoraConfig {
        rank: 2,
        ..Default::default()
    })
    .unwrap();
    // A non-zero B: the adapted model now differs from the base.
    for (_, mut v) in ex.trainable.variables() {
        tch::no_grad(|| {
            let _ = v.fill_(0.05);
        });
    }
    let after = ex.reference_log_probs(&prefix, &[GOOD, OFF_TOPIC]).unwrap();
    assert_eq!(before, after, "LoRA is off for the reference");
    assert!(ex.model.lora_enabled, "and back on after");
    assert!(before[0] < 0.0 && before[0] > -10.0, "{before:?}");
}
