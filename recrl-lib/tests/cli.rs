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

/// `recrl probe` (the GPU check's Rust side) on the tiny fixture model: a logits file with one
/// `[T, vocab]` tensor per prompt, a JSON report with a timing and the tokens of each batch
/// size, and a clear error for a token outside the vocabulary.
#[test]
fn probe_writes_logits_and_decode_timings() {
    let root = scratch();
    let r = root.path();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explainer/tiny-llama");
    let model = model.to_str().unwrap();
    std::fs::write(r.join("p.json"), "[[1, 45, 49, 17], [1, 30, 7, 27, 26]]").unwrap();
    std::fs::write(r.join("bad.json"), "[[1, 64]]").unwrap();
    let at = |f: &str| r.join(f).to_str().unwrap().to_string();
    let (prompts, logits_file, json, bad) = (
        at("p.json"),
        at("l.safetensors"),
        at("probe.json"),
        at("bad.json"),
    );
    let (code, text) = recrl(
        r,
        &[
            "probe",
            "--model",
            model,
            "--prompts",
            &prompts,
            "--logits",
            &logits_file,
            "--batches",
            "1,3",
            "--new_tokens",
            "5",
            "--repeats",
            "2",
            "--json",
            &json,
        ],
    );
    assert_eq!(code, 0, "{text}");
    let logits = tch::Tensor::read_safetensors(r.join("l.safetensors")).unwrap();
    let shapes: Vec<(String, Vec<i64>)> =
        logits.iter().map(|(k, t)| (k.clone(), t.size())).collect();
    assert!(
        shapes.contains(&("logits.1".into(), vec![5, 64])),
        "{shapes:?}"
    );
    assert_eq!(shapes.len(), 2);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("probe.json")).unwrap()).unwrap();
    let decode = report["decode"].as_array().unwrap();
    assert_eq!(decode.len(), 2);
    assert_eq!(decode[1]["batch"], 3);
    assert_eq!(decode[1]["seconds"].as_array().unwrap().len(), 2);
    assert_eq!(decode[1]["tokens"][2].as_array().unwrap().len(), 5);
    let (code, text) = recrl(r, &["probe", "--model", model, "--prompts", &bad]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("prompt 0: token id 64 is outside the model's vocabulary of 64"),
        "{text}"
    );
}

#[test]
fn humaneval_export_then_import_of_two_raters() {
    let root = scratch();
    let r = root.path();
    assert_eq!(recrl(r, &["data"]).0, 0);
    // greedy audit explanations of 6 requests by two tags (5 shared), and one sampled reply
    // of user 1 by each: raters see greedy and sampled replies, so 6 pairs
    for (tag, word) in [("base", "plain"), ("shielded", "lively")] {
        let dir = r.join("logs/ml-100k").join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for u in 1..=6usize {
            if tag == "base" && u == 6 {
                continue;
            }
            let row = serde_json::json!({"user": u, "mode": "greedy", "history": [1, 2],
                "recommended": 10 + u, "prompt": "p", "swapped": 0, "mean_logprob": -1.0,
                "explanation": format!("A {word} reason </script> \"{u}\", é")});
            text.push_str(&format!("{row}\n"));
        }
        text.push_str(r#"{"user":1,"mode":"sampled","history":[1],"recommended":11,"prompt":"p","explanation":"x","mean_logprob":-1.0,"swapped":0}"#);
        text.push('\n');
        std::fs::write(dir.join("explanations.jsonl"), text).unwrap();
    }
    let out = r.join("he");
    let (code, text) = recrl(
        r,
        &[
            "humaneval",
            "export",
            "--arm",
            "shielded",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("6 pairs of shielded and base"), "{text}");
    let form = std::fs::read_to_string(out.join("form.html")).unwrap();
    assert!(form.contains("lively reason <\\/script>") && !form.contains("reason </script>"));
    // the key: which side is the arm; both sides occur (the coin flips of seed 1)
    let key = std::fs::read_to_string(out.join("key.csv")).unwrap();
    let arm_is_a: Vec<bool> = key
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1) == Some("shielded"))
        .collect();
    assert_eq!(arm_is_a.len(), 6);
    assert!(
        arm_is_a.contains(&true) && arm_is_a.contains(&false),
        "{key}"
    );
    // rater 1 always prefers the arm; rater 2 always answers A
    let sheet = std::fs::read_to_string(out.join("sheet.csv")).unwrap();
    assert!(
        sheet.starts_with("pair,history,recommended,explanation_a,explanation_b,choice,rater\n")
    );
    let mut rdr = csv::Reader::from_reader(sheet.as_bytes());
    let header = rdr.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rdr.records().map(|x| x.unwrap()).collect();
    let fill = |name: &str, pick: &dyn Fn(usize) -> &'static str| {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&header).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let mut v: Vec<String> = row.iter().map(String::from).collect();
            v[5] = pick(i).into();
            v[6] = name.into();
            w.write_record(&v).unwrap();
        }
        let path = r.join(format!("{name}.csv"));
        std::fs::write(&path, w.into_inner().unwrap()).unwrap();
        path
    };
    let r1 = fill("r1", &|i| if arm_is_a[i] { "A" } else { "b" });
    let r2 = fill("r2", &|_| "A");
    let (code, text) = recrl(
        r,
        &[
            "humaneval",
            "import",
            "--key",
            out.join("key.csv").to_str().unwrap(),
            r1.to_str().unwrap(),
            r2.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{text}");
    // pair scores (1 + [arm is A]) / 2
    let k = arm_is_a.iter().filter(|a| **a).count() as f64;
    let rate = (6.0 + k) / 12.0;
    assert!(
        text.contains(&format!("shielded vs base: win rate {rate:.3}")),
        "{text}"
    );
    assert!(text.contains("from 2 rater(s)"), "{text}");
    let bad = fill("r3", &|_| "maybe");
    let (code, text) = recrl(
        r,
        &[
            "humaneval",
            "import",
            "--key",
            out.join("key.csv").to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        text.contains("r3.csv:2: choice \"maybe\"; expected A, B or tie"),
        "{text}"
    );
}

#[test]
fn a_sweep_runs_every_step_in_order_then_skips_what_is_done() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = scratch();
    let r = root.path();
    std::fs::create_dir_all(r.join("checkpoints")).unwrap();
    std::os::unix::fs::symlink(
        repo.join("checkpoints/models"),
        r.join("checkpoints/models"),
    )
    .unwrap();
    std::os::unix::fs::symlink(repo.join("data/lexicons"), r.join("data/lexicons")).unwrap();
    // the aggregate's static figures: kaleido from the project's notebook venv
    std::os::unix::fs::symlink(repo.join(".venv-nb"), r.join(".venv-nb")).unwrap();
    let file = r.join("tiny.yaml");
    std::fs::write(
        &file,
        "datasets: [ml-100k]\narms: [shielded, no_proj]\nseeds: [1]\npreset: smoke\naudit_users: 4\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, text) = recrl(r, &["sweep", "--file", f, "--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" 11  to do  ppo ml-100k no_proj_s1    recrl ppo --dataset ml-100k --preset smoke --arm no_proj_s1 --resume"), "{text}");
    let (code, text) = recrl(r, &["sweep", "--file", f]);
    assert_eq!(code, 0, "{text}");
    for tag in [
        "base",
        "base_no_soft",
        "template",
        "best_of_n",
        "shielded_s1",
        "no_proj_s1",
    ] {
        assert!(
            r.join(format!("logs/ml-100k/{tag}/audit.json")).is_file(),
            "{tag}: {text}"
        );
    }
    assert!(r.join("results/aggregate_results.csv").is_file(), "{text}");
    the_records_say_what_they_depend_on(r);
    a_second_process_on_a_run_is_refused_until_the_first_is_killed(r);
    // again: every step with an output is skipped
    let (code, text) = recrl(r, &["sweep", "--file", f]);
    assert_eq!(code, 0, "{text}");
    for name in [
        "train-ranker ml-100k",
        "audit ml-100k base",
        "ppo ml-100k shielded_s1",
        "audit ml-100k no_proj_s1",
    ] {
        assert!(
            text.contains(&format!("] {name}: done, skipped")),
            "{name}: {text}"
        );
    }
    // one run alone, as a Slurm array task runs it; and the scripts
    let (code, text) = recrl(r, &["sweep", "--file", f, "--run", "2"]);
    assert_eq!(
        (code, text.contains("the sweep has 2 runs (0 to 1)")),
        (1, true),
        "{text}"
    );
    let (code, text) = recrl(
        r,
        &[
            "sweep",
            "--file",
            f,
            "--slurm",
            r.join("slurm").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{text}");
    let runs = std::fs::read_to_string(r.join("slurm/runs.sbatch")).unwrap();
    assert!(
        runs.contains("#SBATCH --array=0-1") && runs.contains("--run \"$SLURM_ARRAY_TASK_ID\""),
        "{runs}"
    );
    // a model that is not there stops the sweep before anything runs, saying where to put it
    std::fs::write(&file, "datasets: [ml-100k]\narms: [shielded]\nseeds: [1]\nmodel: checkpoints/models/TinyLlama-1.1B-Chat\n").unwrap();
    let (code, text) = recrl(r, &["sweep", "--file", f]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("TinyLlama-1.1B-Chat is missing")
            && text.contains("huggingface-cli download"),
        "{text}"
    );
}

/// The records of a sweep's run and audit (issue 30): the resolved configuration, the shield's
/// τ and k, the protocol, the code version and the sha256 of every input, paths relative to the
/// project root; no absolute path of the machine anywhere in them.
fn the_records_say_what_they_depend_on(r: &Path) {
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(r.join(f)).unwrap()).unwrap()
    };
    let sha256sum = |f: &str| -> String {
        let out = Command::new("sha256sum").arg(r.join(f)).output().unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    };
    let run = read("logs/ml-100k/shielded_s1/run.json");
    let audit = read("logs/ml-100k/shielded_s1/audit.json");
    for (name, rec) in [("run.json", &run), ("audit.json", &audit)] {
        let p = &rec["provenance"];
        assert_eq!(p["protocol"], 3, "{name}");
        let commit = p["code"]["commit"].as_str().unwrap();
        assert!(
            commit == "unknown" || commit.len() == 40,
            "{name}: {commit}"
        );
        for f in [
            "checkpoints/sasrec_ml-100k.safetensors",
            "checkpoints/sasrec_ml-100k.json",
            "checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
        ] {
            assert_eq!(
                p["inputs"][f].as_str(),
                Some(sha256sum(f).as_str()),
                "{name}: {f}"
            );
        }
        assert!(
            p["inputs"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("data/proc/ml-100k/")),
            "{name}: {p}"
        );
        assert_eq!(
            rec["config"]["lora_rank"], 16,
            "{name}: the YAML's lora_rank"
        );
        let text = serde_json::to_string(rec).unwrap();
        let abs = r.display().to_string();
        assert!(
            !text.contains(&abs),
            "{name} holds the machine's path {abs}: {text}"
        );
    }
    let inputs = &run["provenance"]["inputs"];
    for f in [
        "checkpoints/basis_ml-100k.json",
        "checkpoints/lora_init_ml-100k/explainer.json",
    ] {
        assert_eq!(
            inputs[f].as_str(),
            Some(sha256sum(f).as_str()),
            "run.json: {f}"
        );
    }
    let basis = read("checkpoints/basis_ml-100k.json");
    // the checkpoints the run read name the code that made them
    let code = &run["provenance"]["code"];
    for f in [
        "checkpoints/sasrec_ml-100k.json",
        "checkpoints/basis_ml-100k.json",
        "checkpoints/lora_init_ml-100k/explainer.json",
    ] {
        assert_eq!(&read(f)["code"], code, "{f}");
    }
    assert_eq!(run["shield"]["k"], basis["k"], "{}", run["shield"]);
    assert_eq!(run["shield"]["tau"], run["config"]["shield"]["tau"]);
    let ckpt = "checkpoints/ppo_ml-100k_shielded_s1/explainer.json";
    assert_eq!(
        audit["provenance"]["inputs"][ckpt].as_str(),
        Some(sha256sum(ckpt).as_str())
    );
}

/// One owner per run (issue 30): while `recrl ppo` runs a tag, the same command with `--resume`
/// or `--overwrite`, and an audit of the tag, are refused with the holder's pid; after the
/// holder is killed with SIGKILL, `--resume` takes the run over.
fn a_second_process_on_a_run_is_refused_until_the_first_is_killed(r: &Path) {
    let ppo = |extra: &[&str]| {
        let mut args = vec![
            "ppo",
            "--dataset",
            "ml-100k",
            "--preset",
            "smoke",
            "--tag",
            "twin",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let mut first = Command::new(env!("CARGO_BIN_EXE_recrl"))
        .args(ppo(&["--max_steps", "200"]))
        .env("RECRL_ROOT", r)
        .env("RECRL_DEVICE", "cpu")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = r.join("logs/ml-100k/.twin.lock");
    let holder = format!("pid {} on host", first.id());
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with(&holder)) {
        assert!(
            t0.elapsed().as_secs() < 120,
            "the first run never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for args in [
        ppo(&["--resume"]),
        ppo(&["--overwrite"]),
        ["audit", "--dataset", "ml-100k", "--tag", "twin"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, text) = recrl(r, &a);
        assert_eq!(code, 1, "{args:?}: {text}");
        assert!(
            text.contains("in use by another process") && text.contains(&holder),
            "{args:?}: {text}"
        );
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let (code, text) = recrl(
        r,
        &ppo(&["--resume", "--overwrite", "--max_steps", "1"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, 0, "after the holder was killed: {text}");
}
