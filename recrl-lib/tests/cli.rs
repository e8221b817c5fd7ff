//! The `recrl` binary as a user types it, in a scratch project: the seed's commands (`data
//! --dataset all`, `.pt` checkpoint paths, `audit --model_ckpt`) and careless input (a GPU that
//! is not there, a tag that leaves its folder) end in a clear message and exit status 1, never a
//! panic (101).

use std::path::Path;
use std::process::Command;

/// A scratch project root with the configuration and ml-100k's raw files.
fn scratch() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("experiments")).unwrap();
    std::fs::copy(
        repo.join("experiments/recrl_default.yaml"),
        r.join("experiments/recrl_default.yaml"),
    )
    .unwrap();
    let raw = r.join("data/raw/ml-100k");
    std::fs::create_dir_all(&raw).unwrap();
    for f in ["ml-100k.inter", "ml-100k.item", "ml-100k.user"] {
        std::fs::copy(repo.join("data/raw/ml-100k").join(f), raw.join(f))
            .expect("ml-100k assets: run scripts/setup.sh assets");
    }
    root
}

/// Runs `recrl args` in `root`: (exit status, stdout + stderr).
fn recrl(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recrl"))
        .args(args)
        .env("RECRL_ROOT", root)
        .env("RECRL_DEVICE", "cpu")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn data_all_processes_what_is_there_and_lists_the_rest() {
    let root = scratch();
    let r = root.path();
    // Book-Crossing's folder holds a broken file: that dataset fails, the others go on
    let bx = r.join("data/raw/bookcrossing");
    std::fs::create_dir_all(&bx).unwrap();
    std::fs::write(bx.join("BX-Book-Ratings.csv"), b"not;the;header\n").unwrap();
    let (code, text) = recrl(r, &["data", "--dataset", "all"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("processed: ml-100k"), "{text}");
    assert!(text.contains("failed: bookcrossing"), "{text}");
    for ds in ["ml-1m", "ml-25m", "books", "steam"] {
        assert!(
            text.contains(&format!("{ds} ({}", r.join("data/raw").join(ds).display())),
            "{ds}: {text}"
        );
    }
    assert!(r.join("data/proc/ml-100k/interactions.parquet").is_file());
}

#[test]
fn careless_flags_get_a_message_and_status_1_not_a_panic() {
    let root = scratch();
    let r = root.path();
    assert_eq!(recrl(r, &["data"]).0, 0);
    for (args, says) in [
        (
            &["train-ranker", "--device", "cuda", "--epochs", "1"][..],
            "CUDA device 0 was asked for",
        ),
        (
            &["train-ranker", "--device", "bogus"][..],
            "device \"bogus\" is not one of",
        ),
        (
            &["basis", "--device", "cuda:abc"][..],
            "device \"cuda:abc\" is not one of",
        ),
        (
            &["ppo", "--tag", "../../escape"][..],
            "run tag \"../../escape\" is not allowed",
        ),
        (
            &["train-ranker", "--max_len", "0"][..],
            "key `ranker.max_len`: must be at least 1",
        ),
        (
            &[
                "ppo",
                "--ranker_ckpt",
                "../../checkpoints/sasrec_ml-100k.pt",
            ][..],
            "recrl reads sasrec_ml-100k.safetensors with sasrec_ml-100k.json",
        ),
        (
            &[
                "audit",
                "--model_ckpt",
                "../../checkpoints/recrl/ml-100k/latest",
            ][..],
            "latest: no PPO checkpoint of ml-100k",
        ),
    ] {
        let (code, text) = recrl(r, args);
        assert_eq!(code, 1, "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}
