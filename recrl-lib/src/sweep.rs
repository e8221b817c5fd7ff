//! The full experiment as one command (the seed's `run_runpod_full.sh`): a sweep file names
//! datasets × arms × seeds and the explainer model; [`plan`] turns it into the `recrl`
//! commands in order, each with the file that shows it done:
//!
//! 1. per dataset (stage `prepare`): `data`, `train-ranker`, `basis`, `lora-init`, and the
//!    audits of the baselines without RL (`base`, `base_no_soft`, `template`, `best_of_n`:
//!    the runs' audits pair their held-out panel users with them);
//! 2. per dataset × arm × seed (one *run*): `ppo --resume`, then its `audit`;
//! 3. `aggregate` of everything under `logs/`.
//!
//! `recrl sweep --file F` runs the plan one command after another ([`execute`]), skipping what
//! is done and resuming what was interrupted (a PPO run continues from its last snapshot), so
//! the same command picks up after a kill. `recrl sweep --file F --slurm DIR` writes the same plan as
//! Slurm batch scripts: one job for the preparation, a job array with one task per run, and
//! the aggregate as a job that depends on the array ([`slurm_scripts`]).

use crate::paths::{files, Layout};
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A sweep file (YAML). Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Datasets (sections of the configuration file), e.g. `[ml-100k, bookcrossing]`.
    pub datasets: Vec<String>,
    /// Arm names without the seed (`ppo::arms::Arm::named`), e.g. `[shielded_grpo_g4, no_proj_grpo_g4]`.
    pub arms: Vec<String>,
    /// Seeds; run `<arm>_s<seed>` of every arm for each.
    pub seeds: Vec<u64>,
    /// The explainer model (key `explainer_model`): a Hugging Face folder or a GGUF file,
    /// relative to the project root; absent = the configuration's.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// A preset of the configuration file applied to every configured command (e.g. `smoke`).
    #[serde(default)]
    pub preset: Option<String>,
    /// `KEY=VALUE` overrides for every configured command (`--set`).
    #[serde(default)]
    pub set: Vec<String>,
    /// Further flags of `recrl ppo` (the run budget), e.g. `[--max_steps, "30"]`.
    #[serde(default)]
    pub ppo: Vec<String>,
    /// Audit-set size (`recrl audit --users`); absent = the configuration's.
    #[serde(default)]
    pub audit_users: Option<usize>,
    /// Extra `#SBATCH` lines for `--slurm`, e.g. `["--partition=gpu", "--gres=gpu:1"]`.
    #[serde(default)]
    pub slurm: Vec<String>,
}

impl Sweep {
    /// Reads and checks a sweep file.
    pub fn load(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the sweep file {}", path.display()))?;
        let sweep: Sweep = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: not a sweep file", path.display()))?;
        sweep
            .check()
            .with_context(|| format!("{}", path.display()))?;
        Ok(sweep)
    }

    fn check(&self) -> Result<()> {
        for (key, empty) in [
            ("datasets", self.datasets.is_empty()),
            ("arms", self.arms.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ] {
            ensure!(!empty, "`{key}` is empty: the sweep has nothing to run");
        }
        for ds in &self.datasets {
            let _: crate::data::DatasetName = ds.parse()?;
        }
        for arm in &self.arms {
            crate::paths::check_tag(arm)?;
            let named = format!("{arm}_s{}", self.seeds[0]);
            crate::ppo::Arm::named(&named)
                .with_context(|| format!("arm {arm:?} (run {named:?})"))?;
        }
        for s in &self.set {
            ensure!(s.contains('='), "`set` entry {s:?} is not KEY=VALUE");
        }
        Ok(())
    }

    /// The model's path under `root`, when the sweep names one; an error that says where to
    /// put it when it is missing.
    pub fn check_model(&self, root: &Path) -> Result<()> {
        let Some(model) = &self.model else {
            return Ok(());
        };
        let path = root.join(model);
        if !path.exists() {
            bail!(
                "the sweep's model {} is missing: put the Hugging Face folder there (config.json, model.safetensors, tokenizer.json; e.g. `huggingface-cli download TinyLlama/TinyLlama-1.1B-Chat-v1.0 --local-dir {}`), or a GGUF file, or remove `model` to use the configuration's explainer_model",
                path.display(),
                model.display()
            );
        }
        Ok(())
    }

    /// The runs: `(dataset, tag)` for every dataset × arm × seed.
    pub fn runs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for ds in &self.datasets {
            for arm in &self.arms {
                for seed in &self.seeds {
                    out.push((ds.clone(), format!("{arm}_s{seed}")));
                }
            }
        }
        out
    }

    /// `--preset`, `--set` and the model: the flags of every configured command.
    fn config_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.preset {
            out.extend(["--preset".to_string(), p.clone()]);
        }
        for s in &self.set {
            out.extend(["--set".to_string(), s.clone()]);
        }
        if let Some(m) = &self.model {
            out.extend([
                "--set".to_string(),
                format!("explainer_model={}", m.display()),
            ]);
        }
        out
    }
}

/// Where a step of the plan belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Per dataset, before its runs.
    Prepare,
    /// The run with this index in [`Sweep::runs`].
    Run(usize),
    /// After every run.
    Aggregate,
}

/// One `recrl` command of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its stage.
    pub stage: Stage,
    /// A short name, e.g. `ppo ml-100k shielded_grpo_g4_s1`.
    pub name: String,
    /// The arguments after `recrl`.
    pub args: Vec<String>,
    /// The file whose presence shows it done (`None`: always run; `recrl data` and the
    /// aggregate check for themselves and are quick).
    pub done_when: Option<PathBuf>,
}

impl Step {
    /// Whether its output is there; an `audit.json` counts only when it is of the current audit
    /// protocol ([`crate::audit::PROTOCOL`]: an older one is audited again).
    pub fn is_done(&self) -> bool {
        self.done_when.as_ref().is_some_and(|p| {
            p.exists()
                && (p.file_name() != Some(std::ffi::OsStr::new(files::AUDIT))
                    || crate::audit::AuditReport::read(p).is_ok_and(|a| {
                        a.protocol["version"].as_u64() == Some(crate::audit::PROTOCOL as u64)
                    }))
        })
    }
}

/// The commands of `sweep` for the project at `root`, in order.
pub fn plan(root: &Path, sweep: &Sweep) -> Vec<Step> {
    let layout = Layout::new(root);
    let cfg = sweep.config_flags();
    let audit_users: Vec<String> = sweep
        .audit_users
        .map(|n| vec!["--users".to_string(), n.to_string()])
        .unwrap_or_default();
    let cmd = |sub: &str, ds: &str, rest: &[String], configured: bool| -> Vec<String> {
        let mut a = vec![sub.to_string(), "--dataset".to_string(), ds.to_string()];
        if configured {
            a.extend(cfg.iter().cloned());
        }
        a.extend(rest.iter().cloned());
        a
    };
    let step = |stage: Stage, name: String, args: Vec<String>, done_when: Option<PathBuf>| Step {
        stage,
        name,
        args,
        done_when,
    };
    let mut out = Vec::new();
    for ds in &sweep.datasets {
        let ck = layout.checkpoints();
        let audit_of = |tag: &str| layout.run_logs(ds, tag).join(files::AUDIT);
        out.extend([
            step(
                Stage::Prepare,
                format!("data {ds}"),
                cmd("data", ds, &[], false),
                None,
            ),
            step(
                Stage::Prepare,
                format!("train-ranker {ds}"),
                cmd("train-ranker", ds, &[], true),
                Some(ck.join(format!("sasrec_{ds}.json"))),
            ),
            step(
                Stage::Prepare,
                format!("basis {ds}"),
                cmd("basis", ds, &[], true),
                Some(ck.join(format!("basis_{ds}.json"))),
            ),
            step(
                Stage::Prepare,
                format!("lora-init {ds}"),
                cmd("lora-init", ds, &[], true),
                Some(layout.lora_init_dir(ds).join(files::EXPLAINER)),
            ),
        ]);
        // the baselines without RL, on the held-out panel every run's audit is paired with
        for (_, tag, _) in crate::ppo::arms::BASELINES {
            out.push(step(
                Stage::Prepare,
                format!("audit {ds} {tag}"),
                cmd(
                    "audit",
                    ds,
                    &[["--tag".into(), tag.into()].as_slice(), &audit_users].concat(),
                    true,
                ),
                Some(audit_of(tag)),
            ));
        }
    }
    for (k, (ds, tag)) in sweep.runs().into_iter().enumerate() {
        let mut ppo = vec!["--arm".to_string(), tag.clone(), "--resume".to_string()];
        ppo.extend(sweep.ppo.iter().cloned());
        let tag_flag = [vec!["--tag".to_string(), tag.clone()], audit_users.clone()].concat();
        out.push(step(
            Stage::Run(k),
            format!("ppo {ds} {tag}"),
            cmd("ppo", &ds, &ppo, true),
            Some(layout.run_logs(&ds, &tag).join(files::RUN)),
        ));
        out.push(step(
            Stage::Run(k),
            format!("audit {ds} {tag}"),
            cmd("audit", &ds, &tag_flag, true),
            Some(layout.run_logs(&ds, &tag).join(files::AUDIT)),
        ));
    }
    out.push(step(
        Stage::Aggregate,
        "aggregate".into(),
        vec!["aggregate".into()],
        None,
    ));
    out
}

/// The plan as a table a user reads before running it: one line per step, done or to do.
pub fn describe(plan: &[Step]) -> String {
    plan.iter()
        .enumerate()
        .map(|(k, s)| {
            format!(
                "{:>3}  {:<5}  {}    recrl {}\n",
                k + 1,
                if s.is_done() { "done" } else { "to do" },
                s.name,
                s.args.join(" ")
            )
        })
        .collect()
}

/// A POSIX shell word for `s` (single-quoted unless plainly safe).
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The Slurm batch scripts of a sweep: `(file name, text)` for `prepare.sbatch` (the
/// preparation of every dataset), `runs.sbatch` (a job array, task k = run k of
/// [`Sweep::runs`]: its PPO and audit), `aggregate.sbatch`, and `submit.sh`, which submits
/// them with `afterok`/`afterany` dependencies. Every job calls `recrl sweep` on the same
/// file, so a job that is resubmitted skips what is done and resumes what was interrupted.
pub fn slurm_scripts(
    sweep: &Sweep,
    sweep_file: &Path,
    root: &Path,
    recrl: &Path,
    out_dir: &Path,
) -> Vec<(String, String)> {
    let n = sweep.runs().len();
    let logs = out_dir.join("logs");
    let job = |name: &str, array: Option<usize>, what: &str| {
        let mut s = format!(
            "#!/bin/bash\n#SBATCH --job-name=recrl-{name}\n#SBATCH --output={}/{name}-%A{}.out\n",
            logs.display(),
            if array.is_some() { "_%a" } else { "" }
        );
        if let Some(n) = array {
            s += &format!("#SBATCH --array=0-{}\n", n - 1);
        }
        for line in &sweep.slurm {
            s += &format!("#SBATCH {line}\n");
        }
        s += &format!(
            "set -euo pipefail\ncd {}\nexec {} sweep --file {} {what}\n",
            shell_word(&root.display().to_string()),
            shell_word(&recrl.display().to_string()),
            shell_word(&sweep_file.display().to_string()),
        );
        s
    };
    let submit = format!(
        "#!/bin/bash\n# Submits the sweep {file}: preparation, then one array task per run ({n}), then the aggregate.\nset -euo pipefail\ncd {dir}\nmkdir -p {logs}\nprep=$(sbatch --parsable prepare.sbatch)\nruns=$(sbatch --parsable --dependency=afterok:$prep runs.sbatch)\nagg=$(sbatch --parsable --dependency=afterany:$runs aggregate.sbatch)\necho \"submitted: prepare $prep, runs $runs (array of {n}), aggregate $agg; logs in {logs}\"\n",
        file = sweep_file.display(),
        dir = shell_word(&out_dir.display().to_string()),
        logs = shell_word(&logs.display().to_string()),
    );
    vec![
        (
            "prepare.sbatch".into(),
            job("prepare", None, "--stage prepare"),
        ),
        (
            "runs.sbatch".into(),
            job("runs", Some(n), "--run \"$SLURM_ARRAY_TASK_ID\""),
        ),
        (
            "aggregate.sbatch".into(),
            job("aggregate", None, "--stage aggregate"),
        ),
        ("submit.sh".into(), submit),
    ]
}

/// What `recrl sweep` does with a sweep file other than running all of it (its flags).
#[derive(Debug, Clone, Default)]
pub struct Execution {
    /// Describe the plan (each step done or to do, and its command) and run nothing.
    pub dry_run: bool,
    /// Only the steps of this stage ([`Stage::Prepare`] or [`Stage::Aggregate`]).
    pub stage: Option<Stage>,
    /// Only run K of [`Sweep::runs`] (0-based): its PPO and its audit.
    pub run: Option<usize>,
    /// Write the Slurm batch scripts ([`slurm_scripts`]) into this folder instead.
    pub slurm: Option<PathBuf>,
    /// The `recrl` binary the steps and the scripts call (default: the running executable).
    pub recrl: Option<PathBuf>,
}

/// `recrl sweep`: the sweep file `file` of the project at `root`, done as `how` says. Its plan
/// described ([`describe`]; a missing model only noted), its Slurm scripts written, or its
/// steps run one `recrl` command after another (all, or `how.stage`'s, or run `how.run`'s),
/// skipping the steps that are done and stopping at the first that fails. `say` gets the lines
/// for the user: the plan, or each step's start and end.
pub fn execute(root: &Path, file: &Path, how: &Execution, mut say: impl FnMut(&str)) -> Result<()> {
    let sweep = Sweep::load(file)?;
    let plan = plan(root, &sweep);
    if how.dry_run {
        if let Err(e) = sweep.check_model(root) {
            say(&format!("note: {e:#}"));
        }
        describe(&plan).lines().for_each(&mut say);
        return Ok(());
    }
    sweep.check_model(root)?;
    if let Some(dir) = &how.slurm {
        return write_slurm(root, &sweep, file, dir, how, say);
    }
    let runs = sweep.runs().len();
    if let Some(k) = how.run {
        ensure!(
            k < runs,
            "--run {k}: the sweep has {runs} runs (0 to {})",
            runs.saturating_sub(1)
        );
    }
    let chosen: Vec<&Step> = plan
        .iter()
        .filter(|s| match (&how.stage, how.run) {
            (Some(stage), _) => s.stage == *stage,
            (None, Some(k)) => s.stage == Stage::Run(k),
            (None, None) => true,
        })
        .collect();
    run_steps(root, &chosen, &recrl_binary(how)?, say)
}

/// `how.recrl`, else the running executable.
fn recrl_binary(how: &Execution) -> Result<PathBuf> {
    match &how.recrl {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("locating the recrl binary"),
    }
}

/// Writes [`slurm_scripts`] into `dir` (with absolute paths of the sweep file and the
/// folder), `submit.sh` executable.
fn write_slurm(
    root: &Path,
    sweep: &Sweep,
    file: &Path,
    dir: &Path,
    how: &Execution,
    mut say: impl FnMut(&str),
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let abs = |p: &Path| std::path::absolute(p).with_context(|| format!("{}", p.display()));
    let (file, dir) = (abs(file)?, abs(dir)?);
    let exe = recrl_binary(how)?;
    for (name, text) in slurm_scripts(sweep, &file, root, &exe, &dir) {
        crate::io::write_atomic(&dir.join(&name), text.as_bytes())?;
    }
    std::fs::set_permissions(
        dir.join("submit.sh"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    say(&format!(
        "Slurm scripts for {} run(s) in {}; submit with: bash {}",
        sweep.runs().len(),
        dir.display(),
        dir.join("submit.sh").display()
    ));
    Ok(())
}

/// Runs `chosen` with the `recrl` binary `exe` in `root`, one after another: a step that is
/// done is skipped, one that fails stops the sweep with an error that says how to go on.
fn run_steps(root: &Path, chosen: &[&Step], exe: &Path, mut say: impl FnMut(&str)) -> Result<()> {
    let n = chosen.len();
    for (k, step) in chosen.iter().enumerate() {
        if step.is_done() {
            say(&format!("[{}/{n}] {}: done, skipped", k + 1, step.name));
            continue;
        }
        say(&format!("[{}/{n}] {} ...", k + 1, step.name));
        let t0 = std::time::Instant::now();
        let status = std::process::Command::new(exe)
            .args(&step.args)
            .current_dir(root)
            .env("RECRL_ROOT", root)
            .status()
            .with_context(|| format!("starting {}", exe.display()))?;
        ensure!(
            status.success(),
            "{} failed ({status}): recrl {}\nrun the same `recrl sweep` again once fixed: finished steps are skipped and the PPO run resumes from its last snapshot",
            step.name,
            step.args.join(" ")
        );
        say(&format!(
            "[{}/{n}] {} done in {:.0} s",
            k + 1,
            step.name,
            t0.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(yaml: &str) -> Result<Sweep> {
        let s: Sweep = serde_yaml::from_str(yaml)?;
        s.check()?;
        Ok(s)
    }

    const TWO: &str = "datasets: [ml-100k]\narms: [shielded_grpo_g4, no_proj_grpo_g4]\nseeds: [1, 2]\nppo: [--max_steps, '30']\naudit_users: 100\n";

    #[test]
    fn the_plan_prepares_each_dataset_then_runs_every_arm_and_seed_then_aggregates() {
        let root = tempfile::tempdir().unwrap();
        let s = sweep(TWO).unwrap();
        let p = plan(root.path(), &s);
        let names: Vec<&str> = p.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data ml-100k",
                "train-ranker ml-100k",
                "basis ml-100k",
                "lora-init ml-100k",
                "audit ml-100k base",
                "audit ml-100k base_no_soft",
                "audit ml-100k template",
                "audit ml-100k best_of_n",
                "ppo ml-100k shielded_grpo_g4_s1",
                "audit ml-100k shielded_grpo_g4_s1",
                "ppo ml-100k shielded_grpo_g4_s2",
                "audit ml-100k shielded_grpo_g4_s2",
                "ppo ml-100k no_proj_grpo_g4_s1",
                "audit ml-100k no_proj_grpo_g4_s1",
                "ppo ml-100k no_proj_grpo_g4_s2",
                "audit ml-100k no_proj_grpo_g4_s2",
                "aggregate",
            ]
        );
        assert_eq!(
            p[7].args.join(" "),
            "audit --dataset ml-100k --tag best_of_n --users 100"
        );
        assert_eq!(
            p[8].args.join(" "),
            "ppo --dataset ml-100k --arm shielded_grpo_g4_s1 --resume --max_steps 30"
        );
        assert_eq!(
            p[9].args.join(" "),
            "audit --dataset ml-100k --tag shielded_grpo_g4_s1 --users 100"
        );
        assert_eq!(p[10].stage, Stage::Run(1));
        // done is what is on disk: a finished run's run.json, an audit's audit.json
        assert!(p.iter().all(|s| !s.is_done()));
        let run = root.path().join("logs/ml-100k/shielded_grpo_g4_s1");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        let p = plan(root.path(), &s);
        assert!(p[8].is_done() && !p[9].is_done() && !p[10].is_done());
        assert!(describe(&p).contains("  9  done   ppo ml-100k shielded_grpo_g4_s1"));
    }

    #[test]
    fn the_model_preset_and_sets_reach_every_configured_command() {
        let root = tempfile::tempdir().unwrap();
        let s = sweep(&format!(
            "{TWO}model: checkpoints/models/TinyLlama-1.1B-Chat-v1.0\npreset: smoke\nset: [ranker.epochs=3]\n"
        ))
        .unwrap();
        let p = plan(root.path(), &s);
        let tail = "--preset smoke --set ranker.epochs=3 --set explainer_model=checkpoints/models/TinyLlama-1.1B-Chat-v1.0";
        for st in &p {
            let configured = !matches!(st.args[0].as_str(), "data" | "aggregate");
            assert_eq!(
                st.args.join(" ").contains(tail),
                configured,
                "{:?}",
                st.args
            );
        }
        let err = s.check_model(root.path()).unwrap_err().to_string();
        assert!(
            err.contains("TinyLlama-1.1B-Chat-v1.0 is missing")
                && err.contains("huggingface-cli download"),
            "{err}"
        );
    }

    #[test]
    fn bad_sweep_files_are_refused_by_key() {
        for (yaml, want) in [
            (
                "datasets: [ml-100k]\narms: []\nseeds: [1]\n",
                "`arms` is empty",
            ),
            (
                "datasets: [ml-100k]\narms: [shielded]\nseeds: [1]\nsteps: 3\n",
                "unknown field `steps`",
            ),
            (
                "datasets: [ml-100K]\narms: [shielded]\nseeds: [1]\n",
                "ml-100K",
            ),
            ("datasets: [ml-100k]\narms: [bogus]\nseeds: [1]\n", "bogus"),
            ("datasets: [ml-100k]\narms: [../x]\nseeds: [1]\n", "../x"),
            (
                "datasets: [ml-100k]\narms: [shielded]\nseeds: [1]\nset: [lr]\n",
                "not KEY=VALUE",
            ),
        ] {
            let err = format!("{:#}", sweep(yaml).unwrap_err());
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn slurm_scripts_chain_prepare_runs_and_aggregate() {
        let s = sweep(&format!("{TWO}slurm: [--gres=gpu:1, --time=24:00:00]\n")).unwrap();
        let files = slurm_scripts(
            &s,
            Path::new("/p/sweeps/a b.yaml"),
            Path::new("/p"),
            Path::new("/p/target/release/recrl"),
            Path::new("/p/slurm"),
        );
        let text = |n: &str| files.iter().find(|f| f.0 == n).unwrap().1.clone();
        let runs = text("runs.sbatch");
        assert!(runs.contains("#SBATCH --array=0-3\n"), "{runs}");
        assert!(runs.contains("#SBATCH --gres=gpu:1\n#SBATCH --time=24:00:00\n"));
        assert!(runs.contains("#SBATCH --output=/p/slurm/logs/runs-%A_%a.out"));
        assert!(runs.ends_with(
            "exec /p/target/release/recrl sweep --file '/p/sweeps/a b.yaml' --run \"$SLURM_ARRAY_TASK_ID\"\n"
        ));
        assert!(text("prepare.sbatch").contains("--stage prepare"));
        let submit = text("submit.sh");
        assert!(submit.contains("--dependency=afterok:$prep runs.sbatch"));
        assert!(submit.contains("--dependency=afterany:$runs aggregate.sbatch"));
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    /// A project root with a sweep file of two runs (one arm, two seeds) of ml-100k.
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("sweep.yaml");
        std::fs::write(
            &file,
            "datasets: [ml-100k]\narms: [shielded]\nseeds: [1, 2]\n",
        )
        .unwrap();
        (root, file)
    }

    /// What [`execute`] returns and the lines it said.
    fn said(root: &Path, file: &Path, how: &Execution) -> (Result<()>, Vec<String>) {
        let mut lines = Vec::new();
        let done = execute(root, file, how, |l| lines.push(l.to_string()));
        (done, lines)
    }

    #[test]
    fn execute_describes_the_plan_or_runs_what_is_chosen_and_not_done() {
        let (root, file) = scratch();
        let r = root.path();
        let dry = Execution {
            dry_run: true,
            ..Execution::default()
        };
        let (done, lines) = said(r, &file, &dry);
        done.unwrap();
        let described = describe(&plan(r, &Sweep::load(&file).unwrap()));
        assert_eq!(lines.join("\n") + "\n", described);
        let ok = Execution {
            recrl: Some("/bin/true".into()),
            ..Execution::default()
        };
        let second = Execution {
            run: Some(1),
            ..ok.clone()
        };
        let (done, lines) = said(r, &file, &second);
        done.unwrap();
        assert_eq!(lines[0], "[1/2] ppo ml-100k shielded_s2 ...");
        assert!(lines[1].starts_with("[1/2] ppo ml-100k shielded_s2 done in "));
        assert_eq!(lines[2], "[2/2] audit ml-100k shielded_s2 ...");
        let ranker = Layout::new(r).checkpoints().join("sasrec_ml-100k.json");
        std::fs::create_dir_all(ranker.parent().unwrap()).unwrap();
        std::fs::write(&ranker, "{}").unwrap();
        let prepare = Execution {
            stage: Some(Stage::Prepare),
            ..ok.clone()
        };
        let (done, lines) = said(r, &file, &prepare);
        done.unwrap();
        assert_eq!(lines.len(), 15, "{lines:?}");
        assert_eq!(lines[2], "[2/8] train-ranker ml-100k: done, skipped");
        let third = Execution {
            run: Some(2),
            ..ok.clone()
        };
        let err = said(r, &file, &third).0.unwrap_err().to_string();
        assert_eq!(err, "--run 2: the sweep has 2 runs (0 to 1)");
        let failing = Execution {
            recrl: Some("/bin/false".into()),
            ..Execution::default()
        };
        let (done, lines) = said(r, &file, &failing);
        let err = done.unwrap_err().to_string();
        assert!(
            err.starts_with("data ml-100k failed (exit status: 1): recrl data --dataset ml-100k\nrun the same `recrl sweep` again"),
            "{err}"
        );
        assert_eq!(lines, ["[1/13] data ml-100k ..."]);
    }

    #[test]
    fn execute_writes_the_slurm_scripts_instead() {
        use std::os::unix::fs::PermissionsExt;
        let (root, file) = scratch();
        let dir = root.path().join("slurm");
        let how = Execution {
            slurm: Some(dir.clone()),
            recrl: Some("/opt/recrl".into()),
            ..Execution::default()
        };
        let (done, lines) = said(root.path(), &file, &how);
        done.unwrap();
        let submit = dir.join("submit.sh");
        assert_eq!(
            lines,
            [format!(
                "Slurm scripts for 2 run(s) in {}; submit with: bash {}",
                dir.display(),
                submit.display()
            )]
        );
        for name in ["prepare.sbatch", "runs.sbatch", "aggregate.sbatch"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.contains("exec /opt/recrl sweep --file "), "{name}");
        }
        let mode = std::fs::metadata(&submit).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
