//! Outputs that must change together change together: a run stopped at any point of a save
//! (before its journal, after it, between two renames) leaves the old pair or the new pair,
//! never a mix, and the next reader finishes or discards the interrupted save and removes
//! the temporaries of processes that are gone. The stop is `recrl_lib::io::crash_at`, which
//! leaves the files exactly as a kill at that point would. Its own test binary: the hook is
//! process-wide.

use recrl_lib::config::Config;
use recrl_lib::data::store::{self, Settings};
use recrl_lib::data::{prepare, DatasetName};
use recrl_lib::io::{crash_at, recover};
use recrl_lib::paths::Layout;
use recrl_lib::ranker::{self, Ranker, TrainOptions};
use std::path::Path;
use tch::Device;

mod common;
use common::{successor_dataset, torch_rng};

/// The stops of a commit: before the journal, after the journal, between its two renames.
const STOPS: [usize; 3] = [0, 1, 2];

/// `crash_at` is process-wide: the tests that arm it take this lock, or a parallel test's save
/// would meet (and count down) another test's stop.
fn crash_hook() -> std::sync::MutexGuard<'static, ()> {
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HOOK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names in `dir` that are temporaries or journals.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-") || n.starts_with(".commit-"))
        .collect()
}

#[test]
fn a_ranker_save_stopped_anywhere_leaves_the_old_checkpoint_or_the_new() {
    let _hook = crash_hook();
    let _rng = torch_rng();
    let root = tempfile::tempdir().unwrap();
    let ds = successor_dataset(30, 150, 3);
    let mut rc = Config::load_default("ml-100k").unwrap().ranker;
    (rc.hidden, rc.blocks, rc.heads, rc.max_len, rc.epochs) = (16, 1, 1, 10, 1);
    let opts = |seed| TrainOptions {
        config: rc.clone(),
        seed,
        device: Device::Cpu,
        bf16: false,
        log_path: None,
    };
    let ckpt = root.path().join("checkpoints");
    let sha = || {
        let r = Ranker::load(&ckpt, &ds, Device::Cpu).expect("a consistent checkpoint loads");
        r.meta.unwrap().weights_sha256
    };
    ranker::train_and_save(root.path(), &ds, &opts(1), |_| {}).unwrap();
    let mut old = sha();
    for (k, stop) in STOPS.into_iter().enumerate() {
        crash_at(Some(stop));
        let err = ranker::train_and_save(root.path(), &ds, &opts(10 + k as u64), |_| {});
        crash_at(None);
        assert!(format!("{:#}", err.unwrap_err()).contains("crash point"));
        assert!(
            !leftovers(&ckpt).is_empty(),
            "stop {stop}: the kill left its files"
        );
        let now = sha();
        if stop == 0 {
            assert_eq!(now, old, "stopped before the journal: the old checkpoint");
        } else {
            assert_ne!(
                now, old,
                "stopped after the journal: the new checkpoint, finished"
            );
        }
        assert!(
            leftovers(&ckpt).is_empty(),
            "stop {stop}: {:?}",
            leftovers(&ckpt)
        );
        old = now;
    }
}

#[test]
fn a_data_write_stopped_anywhere_leaves_the_old_dataset_or_the_new() {
    let _hook = crash_hook();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let raw = r.join("data/raw/ml-100k");
    std::fs::create_dir_all(&raw).unwrap();
    for f in ["ml-100k.inter", "ml-100k.item", "ml-100k.user"] {
        std::fs::copy(repo.join("data/raw/ml-100k").join(f), raw.join(f))
            .expect("ml-100k assets: run scripts/setup.sh assets");
    }
    let settings = Settings {
        k_core: 5,
        rating_threshold: 0.0,
    };
    let (real, _, _) = prepare(r, DatasetName::Ml100k, settings, false, |_| {}).unwrap();
    let small = successor_dataset(25, 30, 4);
    let layout = Layout::new(r);
    let proc_parent = layout.proc_dir("ml-100k").parent().unwrap().to_path_buf();
    for stop in STOPS {
        // each round replaces what is there with the other dataset
        let before = store::load(r, DatasetName::Ml100k).unwrap().n_users();
        let next = if before == real.n_users() {
            &small
        } else {
            &real
        };
        crash_at(Some(stop));
        let err = store::write(r, next, &raw, settings);
        crash_at(None);
        assert!(format!("{:#}", err.unwrap_err()).contains("crash point"));
        assert!(!leftovers(&proc_parent).is_empty(), "stop {stop}");
        let after = store::load(r, DatasetName::Ml100k).unwrap().n_users();
        let want = if stop == 0 { before } else { next.n_users() };
        assert_eq!(after, want, "stop {stop}");
        // folder and checksum file are one pair: the checksums describe the files there
        assert!(store::is_fresh(r, DatasetName::Ml100k, &raw, settings).unwrap());
        let sums: store::Checksums = serde_json::from_str(
            &std::fs::read_to_string(layout.checksum_file("ml-100k")).unwrap(),
        )
        .unwrap();
        for (path, sha) in &sums.processed {
            let file = r.join(path);
            assert_eq!(
                &recrl_lib::io::sha256_file(&file).unwrap(),
                sha,
                "stop {stop}: {path}"
            );
        }
        assert!(leftovers(&proc_parent).is_empty(), "stop {stop}");
        assert!(leftovers(layout.checksum_file("ml-100k").parent().unwrap()).is_empty());
    }
}

#[test]
fn recover_removes_temporaries_of_gone_processes_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let live = std::os::unix::process::parent_id(); // the test runner's parent: running
    for name in [
        format!(".tmp-{gone}-x.safetensors"),
        format!(".tmp-{live}-y.json"),
        "sasrec_ml-100k.json".to_string(),
        ".tmp-notapid".to_string(),
    ] {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    std::fs::create_dir(dir.path().join(format!(".tmp-{gone}-ml-100k-abc"))).unwrap();
    std::fs::write(
        dir.path()
            .join(format!(".tmp-{gone}-ml-100k-abc/a.parquet")),
        b"x",
    )
    .unwrap();
    recover(dir.path()).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            format!(".tmp-{live}-y.json"),
            ".tmp-notapid".to_string(),
            "sasrec_ml-100k.json".to_string()
        ]
    );
}

#[test]
fn an_explainer_checkpoint_save_stopped_anywhere_leaves_the_old_folder_or_the_new() {
    use recrl_lib::explainer::{lora::LoraConfig, Explainer, LoadOptions};
    let _hook = crash_hook();
    let _rng = torch_rng();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explainer/tiny-llama");
    let root = tempfile::tempdir().unwrap();
    let ckpt = root.path().join("checkpoints");
    let dir = ckpt.join("ppo_x_arm");
    let table = tch::Tensor::randn([12, 8], (tch::Kind::Float, Device::Cpu));
    // a checkpoint with LoRA B drawn from `seed` and an `e_delta` of `seed`; `resume/` beside
    let save = |seed: i64| {
        let mut ex = Explainer::load(&fixture, Device::Cpu, LoadOptions::default()).unwrap();
        tch::manual_seed(seed);
        ex.init_lora(&LoraConfig {
            rank: 2,
            ..Default::default()
        })
        .unwrap();
        ex.init_projector(&table);
        let delta = tch::Tensor::full([12, 8], seed as f64, (tch::Kind::Float, Device::Cpu));
        ex.save_with(&dir, |d| {
            recrl_lib::io::save_tensors(&d.join("e_delta.safetensors"), &[("e_delta", delta)])
        })
    };
    // what a reader finds: the e_delta that explainer.json's sha256s vouch for
    let found = || {
        let mut ex = Explainer::load(&fixture, Device::Cpu, LoadOptions::default()).unwrap();
        let delta = ex
            .load_checkpoint(&dir, &table)
            .expect("a consistent checkpoint loads")
            .unwrap();
        f64::try_from(delta.mean(tch::Kind::Float)).unwrap()
    };
    save(1).unwrap();
    std::fs::create_dir_all(dir.join("resume")).unwrap();
    std::fs::write(dir.join("resume/state.json"), "{}").unwrap();
    let mut old = found();
    assert_eq!(old, 1.0);
    for (k, stop) in [0usize, 1].into_iter().enumerate() {
        let seed = 10 + k as i64;
        crash_at(Some(stop));
        let err = save(seed);
        crash_at(None);
        assert!(format!("{:#}", err.unwrap_err()).contains("crash point"));
        assert!(
            !leftovers(&ckpt).is_empty(),
            "stop {stop}: the kill left its files"
        );
        let now = found();
        let want = if stop == 0 { old } else { seed as f64 };
        assert_eq!(
            now, want,
            "stop {stop}: the old checkpoint before the journal, else the new"
        );
        assert!(
            leftovers(&ckpt).is_empty(),
            "stop {stop}: {:?}",
            leftovers(&ckpt)
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("resume/state.json")).unwrap(),
            "{}",
            "stop {stop}: the snapshots stayed"
        );
        old = now;
    }
}
