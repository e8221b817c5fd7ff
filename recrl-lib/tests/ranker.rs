//! Step 2: SASRec properties (causality, padding), learning a sequential pattern with both
//! losses, determinism, evaluation against a brute-force loop, checkpoint round-trip/refusals.

use recrl_lib::config::{Config, RankerConfig, RankerLoss};
use recrl_lib::ranker::{self, eval, EvalSet, Ranker, SasrecShape, Split, TrainOptions};
use tch::{Device, Kind, Tensor};

mod common;
use common::{successor_dataset, torch_rng};

fn small_shape(n_items: usize) -> SasrecShape {
    SasrecShape {
        n_items,
        hidden: 16,
        blocks: 2,
        heads: 2,
        max_len: 8,
        dropout: 0.3,
        pre_ln: true,
        tie_output: false,
    }
}

fn fast_config(loss: RankerLoss) -> RankerConfig {
    let mut c = Config::load_default("ml-100k").unwrap().ranker;
    c.hidden = 32;
    c.blocks = 1;
    c.heads = 1;
    c.max_len = 12;
    c.dropout = 0.1;
    c.epochs = 40;
    c.lr = 5e-3;
    c.batch_size = 64;
    c.patience = 8;
    c.loss = loss;
    c.negatives = 8;
    c
}

fn options(config: RankerConfig, seed: u64) -> TrainOptions {
    TrainOptions {
        config,
        seed,
        device: Device::Cpu,
        bf16: false,
        log_path: None,
    }
}

fn ids(v: &[i64]) -> Tensor {
    Tensor::from_slice(v).view([1, -1])
}

#[test]
fn a_future_item_never_changes_an_earlier_position() {
    let _rng = torch_rng();
    tch::manual_seed(1);
    let r = Ranker::new(small_shape(30), Device::Cpu);
    let a = r.net.encode(&ids(&[0, 0, 3, 7, 9, 11, 2, 5]), false);
    let b = r.net.encode(&ids(&[0, 0, 3, 7, 9, 28, 2, 5]), false);
    let diff = (&a - &b).abs().sum_dim_intlist(2, false, Kind::Float);
    let diff: Vec<f32> = diff.view([-1]).try_into().unwrap();
    assert!(diff[..5].iter().all(|&d| d == 0.0), "{diff:?}");
    assert!(diff[5..].iter().all(|&d| d > 1e-4), "{diff:?}");
}

#[test]
fn outputs_do_not_depend_on_padding() {
    let _rng = torch_rng();
    tch::manual_seed(2);
    let r = Ranker::new(small_shape(30), Device::Cpu);
    let short = r.net.encode(&ids(&[4, 5, 6]), false);
    let padded = r.net.encode(&ids(&[0, 0, 0, 0, 0, 4, 5, 6]), false);
    assert!(short.allclose(&padded.narrow(1, 5, 3), 1e-6, 1e-6, false));
    // padding rows are exactly zero
    assert_eq!(padded.narrow(1, 0, 5).abs().max().double_value(&[]), 0.0);
    // batched with a longer history: the same user state
    let alone = r.user_states(&[vec![4u32, 5, 6]]);
    let batched = r.user_states(&[vec![1u32, 2, 3, 9, 10, 11, 12], vec![4, 5, 6]]);
    assert!(alone.allclose(&batched.get(1).unsqueeze(0), 1e-6, 1e-6, false));
}

#[test]
fn padding_never_scores_and_top_k_skips_history() {
    let _rng = torch_rng();
    tch::manual_seed(3);
    let r = Ranker::new(small_shape(30), Device::Cpu);
    let s = r.scores(&[vec![1u32, 2, 3]]);
    assert_eq!(s.size(), [1, 31]);
    assert_eq!(s.double_value(&[0, 0]), f64::NEG_INFINITY);
    let top = r.top_k(&[vec![1u32, 2, 3]], 30, true);
    assert_eq!(top[0].len(), 27, "only the 27 unseen items");
    let items: Vec<u32> = top[0].iter().map(|p| p.0).collect();
    assert!(!items.contains(&0) && !items.iter().any(|i| [1, 2, 3].contains(i)));
    let all = r.top_k(&[vec![1u32, 2, 3]], 100, false);
    assert_eq!(all[0].len(), 30, "every item but padding");
    assert!(top[0].windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn evaluation_agrees_with_a_per_user_loop() {
    let _rng = torch_rng();
    tch::manual_seed(4);
    let ds = successor_dataset(150, 140, 9);
    let r = Ranker::new(small_shape(140), Device::Cpu);
    let set = EvalSet::new(&ds, Split::Test, 5).unwrap();
    let ranks = eval::ranks(&r.net, &set, Device::Cpu, 64).unwrap();
    for u in 0..ds.n_users() {
        let history = Split::Test.history(&ds, u + 1);
        let target = ds.test[u];
        let s: Vec<f32> = r
            .scores(std::slice::from_ref(&history))
            .view([-1])
            .try_into()
            .unwrap();
        let t = s[target as usize];
        let full = (1..=ds.n_items() as u32)
            .filter(|i| *i != target && !history.contains(i))
            .filter(|&i| s[i as usize] >= t)
            .count();
        assert_eq!(ranks.full[u], full, "user {}", u + 1);
        let cands = &set.candidates()[u];
        assert_eq!(cands.len(), 101);
        assert_eq!(cands[0], target);
        assert!(cands[1..]
            .iter()
            .all(|i| !history.contains(i) && *i != target));
        let sampled = cands[1..].iter().filter(|&&i| s[i as usize] >= t).count();
        assert_eq!(ranks.sampled[u], sampled, "user {}", u + 1);
    }
}

#[test]
fn ties_count_against_the_target() {
    let _rng = torch_rng();
    // a model with all-zero output table scores every item 0: worst rank, not best
    tch::manual_seed(5);
    let ds = successor_dataset(20, 140, 1);
    let r = Ranker::new(small_shape(140), Device::Cpu);
    tch::no_grad(|| {
        let _ = r.output_table().shallow_clone().zero_();
    });
    let set = EvalSet::new(&ds, Split::Valid, 1).unwrap();
    let m = eval::evaluate(&r.net, &set, Device::Cpu).unwrap();
    assert_eq!((m[0].hr10, m[1].hr10), (0.0, 0.0));
    assert!((m[1].mrr - 1.0 / 101.0).abs() < 1e-12);
}

#[test]
fn learns_a_successor_pattern_with_full_softmax() {
    let _rng = torch_rng();
    let ds = successor_dataset(300, 150, 11);
    let (_, report) = ranker::train(&ds, &options(fast_config(RankerLoss::Ce), 7), |_| {}).unwrap();
    let test = report.test[0];
    assert_eq!(test.protocol, ranker::Protocol::Full);
    assert!(test.hr10 > 0.95, "full HR@10 {:.3}", test.hr10);
    assert!(report.test[1].hr10 > 0.95);
    assert!(report.epochs[0].loss > report.epochs.last().unwrap().loss);
}

#[test]
fn learns_a_successor_pattern_with_sampled_negatives() {
    let _rng = torch_rng();
    let ds = successor_dataset(300, 150, 12);
    let (_, report) =
        ranker::train(&ds, &options(fast_config(RankerLoss::Bce), 7), |_| {}).unwrap();
    assert!(
        report.test[0].hr10 > 0.9,
        "full HR@10 {:.3}",
        report.test[0].hr10
    );
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let _rng = torch_rng();
    let ds = successor_dataset(80, 120, 13);
    let mut cfg = fast_config(RankerLoss::Ce);
    cfg.epochs = 2;
    let run = |seed| {
        ranker::train(&ds, &options(cfg.clone(), seed), |_| {})
            .unwrap()
            .0
    };
    let (a, b, c) = (run(3), run(3), run(4));
    for ((na, ta), ((_, tb), (_, tc))) in a
        .named_tensors()
        .iter()
        .zip(b.named_tensors().iter().zip(c.named_tensors().iter()))
    {
        assert!(ta.equal(tb), "{na} differs between runs with the same seed");
        if na.contains("output_item_table") {
            assert!(!ta.equal(tc), "{na} is the same for another seed");
        }
    }
}

#[test]
fn checkpoint_round_trip_and_refusals() {
    let _rng = torch_rng();
    let root = tempfile::tempdir().unwrap();
    let ds = successor_dataset(60, 120, 14);
    let mut cfg = fast_config(RankerLoss::Ce);
    cfg.epochs = 2;
    let (trained, report) =
        ranker::train_and_save(root.path(), &ds, &options(cfg, 1), |_| {}).unwrap();
    let ckpt = root.path().join("checkpoints");
    let loaded = Ranker::load(&ckpt, &ds, Device::Cpu).unwrap();
    let histories: Vec<Vec<u32>> = (1..=ds.n_users())
        .map(|u| ds.train[u - 1].clone())
        .collect();
    assert!(trained.scores(&histories).equal(&loaded.scores(&histories)));
    let meta = loaded.meta.as_ref().unwrap();
    assert_eq!(meta.epoch, report.best_epoch);
    assert_eq!(meta.test[0].protocol, ranker::Protocol::Full);
    assert!(root
        .path()
        .join("logs/ml-100k/ranker/train.jsonl")
        .is_file());
    // and TensorBoard scalars beside it
    let events: Vec<Vec<u8>> = std::fs::read_dir(root.path().join("logs/ml-100k/ranker"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("events.out.tfevents."))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    let has = |tag: &[u8]| events[0].windows(tag.len()).any(|w| w == tag);
    assert!(has(b"brain.Event:2") && has(b"valid/ndcg10") && has(b"train/loss"));
    let json = std::fs::read_to_string(ckpt.join("sasrec_ml-100k.json")).unwrap();
    assert!(json.contains("\"protocol\": \"sampled-100\""), "{json}");

    // other data: one test item changed
    let mut other = ds.clone();
    other.test[0] = if other.test[0] == 1 { 2 } else { 1 };
    let e = Ranker::load(&ckpt, &other, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("different ml-100k data"), "{e}");
    // other shape: one more item
    let mut bigger = ds.clone();
    bigger.items.push(Default::default());
    let e = Ranker::load(&ckpt, &bigger, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("120 items") && e.contains("121 items"), "{e}");
    // a hand-edited but valid JSON: a clear error naming the files, not a panic or a C++ trace
    let j = ckpt.join("sasrec_ml-100k.json");
    let original = std::fs::read_to_string(&j).unwrap();
    let hidden = meta.shape.hidden;
    for (key, value, says) in [
        ("hidden", hidden / 2, "in the file, ".to_string()),
        (
            "heads",
            3,
            format!("shape.hidden = {hidden} and shape.heads = 3"),
        ),
        ("blocks", meta.shape.blocks + 1, "is missing".to_string()),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
        v["shape"][key] = value.into();
        std::fs::write(&j, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let e = Ranker::load(&ckpt, &ds, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&says) && e.contains("sasrec_ml-100k.json"),
            "{key}: {e}"
        );
    }
    std::fs::write(&j, &original).unwrap();
    Ranker::load(&ckpt, &ds, Device::Cpu).unwrap();
    // corrupt weights
    let w = ckpt.join("sasrec_ml-100k.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&w, bytes).unwrap();
    let e = Ranker::load(&ckpt, &ds, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sha256") && e.contains("re-run step 2"), "{e}");
    // no checkpoint at all
    let e = Ranker::load(root.path(), &ds, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("recrl train-ranker --dataset ml-100k"), "{e}");
    // no temporary files left behind
    let names: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
}

/// Fixture from `scripts/fixtures/sasrec_reference.py` (PyTorch, float64, nn.MultiheadAttention).
#[test]
fn forward_matches_the_pytorch_reference() {
    let _rng = torch_rng();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ranker/sasrec_reference.safetensors"
    );
    let tensors = Tensor::read_safetensors(path).unwrap();
    let get = |n: &str| {
        tensors
            .iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .shallow_clone()
    };
    for (pre_ln, tag) in [(true, "pre"), (false, "post")] {
        let shape = SasrecShape {
            n_items: 23,
            hidden: 8,
            blocks: 2,
            heads: 2,
            max_len: 6,
            dropout: 0.1,
            pre_ln,
            tie_output: false,
        };
        let r = Ranker::new(shape, Device::Cpu);
        let vars = r.vs.variables();
        assert_eq!(
            vars.len(),
            tensors.len() - 5,
            "variables: {:?}",
            vars.keys()
        );
        tch::no_grad(|| {
            for (name, var) in &vars {
                var.shallow_clone().copy_(&get(name));
            }
        });
        let h = r.net.encode(&get("io.seqs"), false);
        let want = get(&format!("io.hidden_{tag}"));
        let err = (&h - &want).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{tag}-LN hidden states differ by {err}");
        let s = r.net.scores(&h.select(1, -1)).narrow(1, 1, 23);
        let err = (&s - get(&format!("io.scores_{tag}")))
            .abs()
            .max()
            .double_value(&[]);
        assert!(err < 1e-4, "{tag}-LN scores differ by {err}");
    }
}
