//! Headless notebook execution: notebook 00 runs and shows its outputs, and the runner injects
//! parameters and fails (naming the cell) on panics, compile errors and early `?` returns.
//!
//! Needs the project's Jupyter environment (`scripts/setup.sh notebooks`). Set
//! RECRL_SKIP_NOTEBOOK_TESTS=1 to skip these tests in a quick local loop.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Kernels of concurrent tests would take different build slots; run them one at a time so
/// every test finds the warm slot.
static ONE_KERNEL_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn skip() -> bool {
    let skip = std::env::var("RECRL_SKIP_NOTEBOOK_TESTS").as_deref() == Ok("1");
    if skip {
        eprintln!("RECRL_SKIP_NOTEBOOK_TESTS=1: notebook test skipped");
    }
    skip
}

/// Runs scripts/run_notebooks.py with a per-cell timeout of 900 s; returns (exit code, stdout).
fn run_notebooks(args: &[&str], out: &Path) -> (i32, String) {
    run_notebooks_with_timeout(args, out, 900)
}

fn run_notebooks_with_timeout(args: &[&str], out: &Path, timeout_s: u32) -> (i32, String) {
    let python = root().join(".venv-nb/bin/python");
    assert!(
        python.is_file(),
        "no Jupyter environment at {}: run scripts/setup.sh notebooks",
        python.display()
    );
    let output = Command::new(python)
        .arg(root().join("scripts/run_notebooks.py"))
        .arg("--out")
        .arg(out)
        .args(["--no-html", "--timeout", &timeout_s.to_string()])
        .args(args)
        .output()
        .expect("runner starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), stdout)
}

fn outputs(notebook: &Path) -> Vec<Value> {
    let nb: Value = serde_json::from_str(&std::fs::read_to_string(notebook).unwrap()).unwrap();
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// nbformat stores text as a string or as a list of lines.
fn joined(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn text_of(out: &Value, key: &str) -> String {
    joined(&out["data"][key])
}

/// All stream output (stdout and stderr) of a notebook.
fn streams(outs: &[Value]) -> String {
    outs.iter().map(|o| joined(&o["text"])).collect()
}

/// Runs a project notebook with `--smoke` (one kernel at a time) and returns its outputs;
/// the run must pass.
fn smoke_outputs(name: &str) -> Vec<Value> {
    let _one = ONE_KERNEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let nb = root().join(format!("notebooks/{name}.ipynb"));
    let (code, stdout) = run_notebooks(&["--smoke", nb.to_str().unwrap()], out.path());
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("notebooks: 1 passed, 0 failed"), "{stdout}");
    outputs(&out.path().join(format!("{name}.ipynb")))
}

#[test]
fn notebook_00_runs_headless_with_tables_plot_and_assets() {
    if skip() {
        return;
    }
    let outs = smoke_outputs("00_environment");
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    assert!(
        plain.contains("libtorch") && plain.contains("2.11.0"),
        "{plain}"
    );
    assert!(
        plain.contains("GFLOP/s") && plain.contains("00_matmul.png"),
        "{plain}"
    );
    let plot = outs
        .iter()
        .find(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .expect("a plotly figure output");
    assert!(text_of(plot, "text/html").starts_with("<img src=\"data:image/png;base64,"));
    let text = streams(&outs);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("recrl-lib/assets.json")).unwrap(),
    )
    .unwrap();
    let default_files: usize = manifest["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["group"] == "default")
        .map(|p| p["files"].as_array().unwrap().len())
        .sum();
    let all = format!("{default_files} of {default_files} asset files verified");
    assert!(text.contains(&all), "expected `{all}`: {text}");
}

#[test]
fn runner_injects_parameters_and_names_failing_cells() {
    if skip() {
        return;
    }
    let _one = ONE_KERNEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let fixtures = root().join("recrl-lib/tests/fixtures/notebooks");
    let nb = |name: &str| fixtures.join(name).to_str().unwrap().to_string();
    let (params, panic, compile, early) = (
        nb("params.ipynb"),
        nb("panic.ipynb"),
        nb("compile_error.ipynb"),
        nb("question_mark.ipynb"),
    );
    // A string with quotes, backslashes, a newline, brackets, non-ASCII and an emoji: it must
    // reach Rust unchanged (Rust escapes, not JSON's), and stay a String though it starts with `[`.
    let tricky = "[zed] \"q\" \\b\né 🎉";
    let args = [
        "-p", "n", "7", "-p", "name", tricky, "-p", "lr", "2", "-p", "flag", "true", &params,
        &panic, &compile, &early,
    ];
    let (code, stdout) = run_notebooks(&args, out.path());

    assert_eq!(code, 1, "a failed notebook must fail the run: {stdout}");
    assert!(stdout.contains("notebooks: 1 passed, 3 failed"), "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with("ok") || l.starts_with("FAIL"))
            .find(|l| l.contains(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("params").starts_with("ok"), "{stdout}");
    let panic_line = line("panic");
    assert!(panic_line.starts_with("FAIL"), "{stdout}");
    assert!(
        panic_line.contains("code cell 3 (In [") && panic_line.contains("boom in the third cell"),
        "{panic_line}"
    );
    let compile_line = line("compile_error");
    assert!(
        compile_line.starts_with("FAIL") && compile_line.contains("code cell 2 (In ["),
        "{compile_line}"
    );
    // evcxr reports an early `?` return as success; the runner's cell marker catches it
    let early_line = line("question_mark");
    assert!(
        early_line.starts_with("FAIL")
            && early_line.contains("code cell 2 (In [")
            && early_line.contains("EarlyReturn"),
        "{early_line}"
    );

    // progress: a line as each notebook starts, its printed output as it arrives (markers left out)
    assert!(stdout.contains("run  params.ipynb (1/4) ..."), "{stdout}");
    assert!(
        stdout.contains("  params | RESULT [zed]") && !stdout.contains("RECRL_CELL_DONE"),
        "{stdout}"
    );
    // typed injection: usize 7, the String as given, f64 from an integer literal, bool
    let text = streams(&outputs(&out.path().join("params.ipynb")));
    assert!(
        text.contains(&format!("RESULT {tricky} 70 4 true")),
        "{text}"
    );
    let debug = format!("NAME {tricky:?} {}", tricky.chars().count());
    assert!(text.contains(&debug), "expected {debug}: {text}");
    // the executed copy of a failed notebook is still written, up to the failing cell
    let text = streams(&outputs(&out.path().join("panic.ipynb")));
    assert!(text.contains("before the panic: 42") && !text.contains("never reached"));
    // the executed copy shows the original cells: no marker in the source or the output, and
    // the displayed value after a `?` that succeeded
    let executed = std::fs::read_to_string(out.path().join("question_mark.ipynb")).unwrap();
    assert!(!executed.contains("RECRL_CELL_DONE"), "{executed}");
    let outs = outputs(&out.path().join("question_mark.ipynb"));
    assert_eq!(text_of(&outs[0], "text/plain"), "42");
    assert!(!streams(&outs).contains("never reached"));
}

#[test]
fn runner_parameter_handling_unit_tests_pass() {
    if skip() {
        return;
    }
    let out = Command::new(root().join(".venv-nb/bin/python"))
        .arg(root().join("scripts/test_run_notebooks.py"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("OK"), "{text}");
}

#[test]
fn runner_refuses_an_undeclared_parameter_before_running() {
    if skip() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let nb = root().join("recrl-lib/tests/fixtures/notebooks/params.ipynb");
    let run = Command::new(root().join(".venv-nb/bin/python"))
        .arg(root().join("scripts/run_notebooks.py"))
        .arg("--out")
        .arg(out.path())
        .args(["-p", "let x = 1; std::process::exit(5); let y", "2"])
        .arg(&nb)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no parameters cell of these notebooks declares it"),
        "{stderr}"
    );
    assert!(!out.path().join("params.ipynb").exists(), "nothing ran");
}

#[test]
fn runner_stops_a_cell_at_the_timeout() {
    if skip() {
        return;
    }
    let _one = ONE_KERNEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let slow = root().join("recrl-lib/tests/fixtures/notebooks/slow.ipynb");
    let started = std::time::Instant::now();
    let (code, stdout) = run_notebooks_with_timeout(&[slow.to_str().unwrap()], out.path(), 8);
    assert_eq!(code, 1, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL slow"))
        .unwrap_or("");
    assert!(
        line.contains("Timeout") || line.contains("timed out"),
        "{stdout}"
    );
    // the 120 s sleep was cut short
    assert!(
        started.elapsed().as_secs() < 100,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn notebook_01_processes_ml100k_with_tables_and_plots() {
    if skip() {
        return;
    }
    let outs = smoke_outputs("01_data");
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    // the counts table: 943 users and 1349 items after the 5-core (the Python reference's numbers)
    assert!(plain.contains("k_core     943    1349   99287"), "{plain}");
    let plots = outs
        .iter()
        .filter(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .count();
    assert_eq!(
        plots, 4,
        "activity, length histogram, long tail, split sizes"
    );
    assert!(streams(&outs).contains("top 20% of items hold"));
}

#[test]
fn notebook_02_trains_and_reports_both_protocols() {
    if skip() {
        return;
    }
    prepare_ml100k();
    let outs = smoke_outputs("02_ranker");
    let text = streams(&outs);
    assert!(
        text.contains("epoch   1") && text.contains("epoch   2"),
        "{text}"
    );
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    for row in [
        "valid  full",
        "valid  sampled-100",
        "test   full",
        "test   sampled-100",
    ] {
        assert!(plain.contains(row), "{row} missing in {plain}");
    }
    assert!(plain.contains("top recommendations"), "{plain}");
    let plots = outs
        .iter()
        .filter(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .count();
    assert_eq!(plots, 2, "loss and validation curves");
    let ckpt = root().join("target/smoke/checkpoints/sasrec_ml-100k.json");
    assert!(ckpt.is_file(), "{} missing", ckpt.display());
}

/// Steps 2 and 4 read step 1's output.
fn prepare_ml100k() {
    let settings = recrl_lib::data::store::Settings {
        k_core: 5,
        rating_threshold: 0.0,
    };
    recrl_lib::data::prepare(
        &root(),
        recrl_lib::data::DatasetName::Ml100k,
        settings,
        false,
        |_| {},
    )
    .unwrap();
}

#[test]
fn notebook_04_loads_the_model_explains_and_saves_the_initial_adapter() {
    if skip() {
        return;
    }
    prepare_ml100k();
    let outs = smoke_outputs("04_explainer");
    let text = streams(&outs);
    assert!(
        text.contains("loaded in") && text.contains("⟨item⟩"),
        "{text}"
    );
    assert!(
        text.contains("<|im_start|>assistant"),
        "the ChatML prompt is shown: {text}"
    );
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    for row in [
        "query / KV heads",
        "9 / 3",
        "trainable share",
        "greedy",
        "initial policy (soft tokens)",
    ] {
        assert!(plain.contains(row), "{row} missing in {plain}");
    }
    let dir = root().join("target/smoke/checkpoints/lora_init_ml-100k");
    for f in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "w_p.safetensors",
        "explainer.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
}

#[test]
fn notebook_03_fits_the_basis_and_plots_spectrum_and_residuals() {
    if skip() {
        return;
    }
    prepare_ml100k();
    let outs = smoke_outputs("03_shield");
    let text = streams(&outs);
    assert!(
        text.contains("probe users, d = 64") && text.contains("keeps k ="),
        "{text}"
    );
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    for row in [
        "← configured",
        "energy kept",
        "probe users (train history)",
        "all users at test time (held out)",
    ] {
        assert!(plain.contains(row), "{row} missing in {plain}");
    }
    let plots = outs
        .iter()
        .filter(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .count();
    assert_eq!(plots, 3, "spectrum, cumulative energy, residual CDFs");
    let json = root().join("target/smoke/checkpoints/basis_ml-100k.json");
    assert!(json.is_file(), "{} missing", json.display());
}

#[test]
fn notebook_05_runs_two_arms_and_plots_their_curves() {
    if skip() {
        return;
    }
    prepare_ml100k();
    let outs = smoke_outputs("05_ppo");
    let text = streams(&outs);
    for want in ["== arm shielded", "== arm no_proj", "step    2", "ΔNDCG@10"] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
    // the committed runs of protocol 3 that the records hold (experiments/records/ml-100k/)
    let records = root().join("experiments/records/ml-100k");
    let mut committed: Vec<String> = std::fs::read_dir(&records)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    committed.retain(|t| {
        ["shielded_s", "no_proj_s", "frozen_s"]
            .iter()
            .any(|a| t.starts_with(a))
            && records.join(t).join("metrics.jsonl").is_file()
    });
    committed.sort_by_key(|t| {
        (
            ["shielded", "no_proj", "frozen"]
                .iter()
                .position(|a| t.starts_with(a)),
            t.clone(),
        )
    });
    let line = format!(
        "{} committed run(s) of ml-100k: {}",
        committed.len(),
        committed.join(", ")
    );
    assert!(text.contains(&line), "{line} missing in {text}");
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    assert!(
        plain.contains("CTR first → last step") && plain.contains("explanation"),
        "{plain}"
    );
    let plots = outs
        .iter()
        .filter(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .count();
    assert_eq!(
        plots, 7,
        "CTR, KL, q(x) parts, ΔNDCG@10 and max |δs| curves; the committed runs' max |δs| and ΔNDCG@10"
    );
    assert!(
        text.contains("LoRA (B = 0) and W_p") || text.contains("LoRA and W_p from the step-4"),
        "the step-0 line says where LoRA started: {text}"
    );
    for arm in ["shielded", "no_proj"] {
        let log = root().join(format!("target/smoke/logs/ml-100k/{arm}/metrics.jsonl"));
        let lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        assert_eq!(lines, 3, "{}: step 0 + 2 steps", log.display());
    }
}

#[test]
fn notebook_06_audits_before_and_after_rl_with_checks_and_plots() {
    if skip() {
        return;
    }
    prepare_ml100k();
    let outs = smoke_outputs("06_audit");
    let text = streams(&outs);
    for tag in [
        "base",
        "base_no_soft",
        "template",
        "best_of_n",
        "shielded",
        "no_proj",
    ] {
        let rl = matches!(tag, "shielded" | "no_proj");
        assert!(
            text.contains(&format!("{tag}: all checks pass"))
                || text.contains(&format!("{tag}: some checks FAIL")),
            "{tag} not audited in {text}"
        );
        let dir = root().join(format!("target/smoke/logs/ml-100k/{tag}"));
        let report = recrl_lib::audit::AuditReport::read(&dir.join("audit.json")).unwrap();
        assert_eq!(report.checks.len(), 5);
        // The smoke arms insert one canary (notebook 05, or 06 when it makes the arm).
        assert_eq!(
            report.value("canary_exposure").is_some(),
            rl,
            "{tag}: {:?}",
            report.metrics.get("canary_exposure")
        );
        // The held-out panel: 4 users (smoke), none of them trained on.
        assert_eq!(report.panel.len(), 4, "{tag}");
        assert_eq!(report.value("panel_rl_members"), rl.then_some(0.0), "{tag}");
        assert!(report.value("judge_completeness").is_some(), "{tag}");
        assert_eq!(
            report.value("panel_ctr_gain").is_some(),
            tag != "base",
            "{tag}: paired with base's panel"
        );
        let rows =
            recrl_lib::audit::explanations::read_explanations(&dir.join("explanations.jsonl"))
                .unwrap();
        // 4 users × (greedy + 2 samples; best-of-N: 2 candidates each), at most 2
        // counterfactuals (none for the template), 2 RL users for an arm's membership test.
        let (lo, hi) = match tag {
            "template" => (12, 12),
            "best_of_n" => (20, 22),
            _ if rl => (14, 16),
            _ => (12, 14),
        };
        assert!(
            (lo..=hi).contains(&rows.len()),
            "{tag}: {} rows",
            rows.len()
        );
    }
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    for want in [
        "toxicity_mean",
        "leak_rate",
        "threshold",
        "tail share",
        "judge_faithfulness",
        "sample 1",
    ] {
        assert!(plain.contains(want), "{want} missing in {plain}");
    }
    let plots = outs
        .iter()
        .filter(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .count();
    assert_eq!(
        plots, 4,
        "judge rates, toxicity histogram, group means, popularity"
    );
}

/// Writes a fake run folder `logs/ml-100k/<tag>/metrics.jsonl` with `steps` PPO steps.
fn fake_run(root: &Path, tag: &str, steps: usize, drift: f64) {
    let dir = root.join("logs/ml-100k").join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let line = |s: usize, d: Option<f64>| {
        let mut v = serde_json::json!({"step": s, "ctr": 0.5 + 0.01 * s as f64, "quality": 0.7,
            "shield_removed": 0.9, "seconds": 1.0, "reward": 0.5, "kl": 0.1, "policy_loss": 0.0,
            "value_loss": 0.0, "clip_frac": 0.0, "approx_kl": 0.0, "entropy": 1.0, "response_len": 9.0});
        if let Some(d) = d {
            v["drift"] = serde_json::json!({"protocol": "full", "ndcg10": 0.1 + d, "hr10": 0.2,
                "d_ndcg10": d, "d_hr10": 0.0, "top10_overlap": 1.0, "max_abs_ds": d.abs()});
        }
        v.to_string()
    };
    let mut lines = vec![line(0, Some(0.0))];
    lines.extend((1..=steps).map(|s| line(s, (s == steps).then_some(drift))));
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn notebook_07_gathers_runs_into_the_table_and_figures() {
    if skip() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    fake_run(runs.path(), "shielded", 12, 0.0);
    fake_run(runs.path(), "no_proj", 12, -0.003);
    let _one = ONE_KERNEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let nb = root().join("notebooks/07_results.ipynb");
    let dir = runs.path().to_str().unwrap();
    let (code, stdout) = run_notebooks(
        &["--smoke", nb.to_str().unwrap(), "-p", "runs_root", dir],
        out.path(),
    );
    assert_eq!(code, 0, "{stdout}");
    let outs = outputs(&out.path().join("07_results.ipynb"));
    let text = streams(&outs);
    assert!(text.contains("2 run folder(s)"), "{text}");
    let csv = std::fs::read_to_string(runs.path().join("results/aggregate_results.csv")).unwrap();
    // 2 runs + 7 expected arms without a folder (the 4 baselines, frozen, kl0, lora4).
    assert_eq!(csv.lines().count(), 1 + 9, "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.ends_with(",run")).count(),
        7,
        "{csv}"
    );
    let seeded = std::fs::read_to_string(runs.path().join("results/seeded_results.csv")).unwrap();
    assert_eq!(
        seeded.lines().count(),
        1 + 2,
        "two PPO arms, one seed each: {seeded}"
    );
    let plain: String = outs.iter().map(|o| text_of(o, "text/plain")).collect();
    for want in [
        "gain over best-of-N",
        "d_ndcg10",
        "-0.0030",
        "bleu4",
        "toxicity_mean",
        "missing",
        "\\begin{tabular}",
    ] {
        assert!(
            plain.contains(want) || text.contains(want),
            "{want} missing in {plain}"
        );
    }
    let plots = outs
        .iter()
        .filter(|o| o["data"].get("application/vnd.plotly.v1+json").is_some())
        .count();
    assert_eq!(
        plots, 9,
        "judge rates, stability, CTR, KL, trade-off, the arms' CTR and drift, audit table, explanation metrics"
    );
    // the committed records' seeded table is shown next to the live runs, read-only: the panel
    // CTR cell of its first ml-100k row (from the committed seeded_results.md) is in the output
    let committed = std::fs::read_to_string(root().join("experiments/seeded_results.md")).unwrap();
    let row = committed
        .lines()
        .find(|l| l.starts_with("| ml-100k |") && l.split(" | ").nth(5) != Some("–"))
        .expect("a committed ml-100k row with a panel CTR");
    let ctr = row.split(" | ").nth(5).unwrap();
    assert!(plain.contains(ctr), "committed results ({ctr}): {plain}");
    for f in [
        "ranking_stability",
        "ctr_curves",
        "kl_curves",
        "tau_tradeoff",
        "arms_ctr",
        "arms_drift",
        "audit_table",
        "text_metrics",
    ] {
        assert!(
            runs.path()
                .join(format!("results/figures/{f}.html"))
                .is_file(),
            "{f}.html"
        );
    }
}
