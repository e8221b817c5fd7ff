//! The logs of a PPO run: one [`StepLog`] line per step in `metrics.jsonl`, two sample
//! explanations per step in `samples.jsonl`, and the same numbers as TensorBoard scalars in an
//! `events.out.tfevents.*` file; a resumed run cuts the JSON logs back to its snapshot's step,
//! appends, and starts a new event file.

use super::drift::Drift;
use super::update::UpdateStats;
use crate::sim::quality::QualityParts;
use crate::tensorboard::EventWriter;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepLog {
    /// Step (1-based; 0 = before training, evaluation only).
    pub step: usize,
    /// PPO statistics (reward = mean click probability).
    #[serde(flatten)]
    pub stats: UpdateStats,
    /// Mean `q(x)`.
    pub quality: f64,
    /// Mean of each part of `q(x)`.
    #[serde(default)]
    pub quality_parts: QualityParts,
    /// Simulated CTR: mean click probability of the step's explanations.
    pub ctr: f64,
    /// Mean share of each `E` update removed by the shield.
    pub shield_removed: f64,
    /// Seconds of this step.
    pub seconds: f64,
    /// Seconds of its phases (sampling, reward, update).
    #[serde(default)]
    pub phases: super::step::Phases,
    /// Drift measurements, on evaluation steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// What the run started from (step 0 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A one-line summary of a step for terminals and notebooks.
pub fn step_line(line: &StepLog) -> String {
    if let Some(note) = &line.note {
        return format!("{}\n{note}", step_numbers(line));
    }
    step_numbers(line)
}

fn step_numbers(line: &StepLog) -> String {
    let drift = line
        .drift
        .as_ref()
        .map(|d| {
            format!(
                "  ΔNDCG@10 {:+.5} ({})  top-10 overlap {:.3}  max|δs| {:.2e}",
                d.d_ndcg10, d.protocol, d.top10_overlap, d.max_abs_ds
            )
        })
        .unwrap_or_default();
    format!(
        "step {:>4}  reward {:.4}  q {:.3}  KL {:.3}  clip {:.3}  len {:.1}  removed {:.3}  {:.1}s (sample {:.1}, reward {:.1}, update {:.1}){drift}",
        line.step, line.ctr, line.quality, line.stats.kl, line.stats.clip_frac, line.stats.response_len, line.shield_removed, line.seconds,
        line.phases.sample, line.phases.reward, line.phases.update
    )
}

/// `metrics.jsonl` and `samples.jsonl` of a run, open for appending, and a TensorBoard event
/// file beside them (a new one each session; [`tensorboard_scalars`] says what it holds).
pub struct Logs {
    metrics: File,
    samples: File,
    events: EventWriter,
}

/// The scalars of a step line that go to TensorBoard: the reward (simulated CTR), `q(x)` and
/// its parts, KL, the PPO statistics, the share of the update the shield removed, the step's
/// seconds, and the ranking drift when measured.
pub fn tensorboard_scalars(line: &StepLog) -> Vec<(String, f64)> {
    let (s, q) = (&line.stats, &line.quality_parts);
    let mut v: Vec<(String, f64)> = [
        ("reward/ctr", line.ctr),
        ("reward/with_kl", s.reward),
        ("quality/q", line.quality),
    ]
    .into_iter()
    .map(|(k, x)| (k.to_string(), x))
    .chain(q.named().map(|(k, x)| (format!("quality/{k}"), x)))
    .collect();
    v.extend(
        [
            ("ppo/kl", s.kl),
            ("ppo/clip_frac", s.clip_frac),
            ("ppo/policy_loss", s.policy_loss),
            ("ppo/value_loss", s.value_loss),
            ("ppo/approx_kl", s.approx_kl),
            ("ppo/entropy", s.entropy),
            ("ppo/response_len", s.response_len),
            ("ppo/zero_std_groups", s.zero_std_groups),
            ("shield/removed", line.shield_removed),
            ("time/seconds", line.seconds),
        ]
        .map(|(k, x)| (k.to_string(), x)),
    );
    if let Some(d) = &line.drift {
        v.extend([
            ("drift/d_ndcg10".to_string(), d.d_ndcg10),
            ("drift/top10_overlap".to_string(), d.top10_overlap),
            ("drift/max_abs_ds".to_string(), d.max_abs_ds),
        ]);
    }
    v
}

impl Logs {
    /// Writes `line` to the TensorBoard file (of step 0, before any update, only the drift).
    fn events_of(&mut self, line: &StepLog) -> Result<()> {
        let scalars = tensorboard_scalars(line);
        let kept: Vec<(&str, f64)> = scalars
            .iter()
            .filter(|(k, _)| line.step > 0 || k.starts_with("drift/"))
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        self.events
            .scalars(line.step as i64, &kept)
            .context("writing the TensorBoard events")
    }
}

impl Logs {
    /// Starts both logs afresh in `log_dir`: creates `metrics.jsonl`, writes the step-0 line
    /// `zero()` into it and shows it to `on_step`, then creates `samples.jsonl`.
    pub fn start(
        log_dir: &Path,
        zero: impl FnOnce() -> Result<StepLog>,
        on_step: impl FnOnce(&StepLog),
    ) -> Result<(Logs, StepLog)> {
        let mut metrics = File::create(log_dir.join(crate::paths::files::METRICS))?;
        let zero = zero()?;
        writeln!(metrics, "{}", serde_json::to_string(&zero)?)?;
        on_step(&zero);
        let samples = File::create(log_dir.join(crate::paths::files::SAMPLES))?;
        let events = EventWriter::create(log_dir)?;
        let mut logs = Logs {
            metrics,
            samples,
            events,
        };
        logs.events_of(&zero)?;
        Ok((logs, zero))
    }

    /// Cuts both logs in `log_dir` back to step `last` and reopens them; returns the kept
    /// metrics lines too.
    pub fn resume(log_dir: &Path, last: usize) -> Result<(Logs, Vec<StepLog>)> {
        let (metrics_path, samples_path) = (
            log_dir.join(crate::paths::files::METRICS),
            log_dir.join(crate::paths::files::SAMPLES),
        );
        let kept = lines_upto(&metrics_path, last)?;
        let mut out = Vec::new();
        for line in &kept {
            out.push(serde_json::from_str(line)?);
        }
        let metrics = reopen(&metrics_path, &kept)?;
        let samples = reopen(&samples_path, &lines_upto(&samples_path, last)?)?;
        let events = EventWriter::create(log_dir)?;
        Ok((
            Logs {
                metrics,
                samples,
                events,
            },
            out,
        ))
    }

    /// Appends a step's line to `metrics.jsonl` and its sample explanations (item title,
    /// text) to `samples.jsonl`.
    pub fn write(&mut self, line: &StepLog, shown: &[(String, String)]) -> Result<()> {
        writeln!(self.metrics, "{}", serde_json::to_string(line)?)?;
        self.metrics.flush()?;
        self.events_of(line)?;
        for (title, text) in shown {
            writeln!(
                self.samples,
                "{}",
                serde_json::json!({"step": line.step, "item": title, "explanation": text})
            )?;
        }
        Ok(())
    }
}

/// A sample explanation of a step: `(step, item title, explanation)`.
pub type Sample = (usize, String, String);

/// The sample explanations of the run logged in `log_dir` (`samples.jsonl`), as
/// `(step, item title, explanation)`; none when the file is absent.
pub fn read_samples(log_dir: &Path) -> Result<Vec<Sample>> {
    let path = log_dir.join(crate::paths::files::SAMPLES);
    let mut out = Vec::new();
    for (n, line) in lines_upto(&path, usize::MAX)?.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {} is not JSON", path.display(), n + 1))?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let step = v["step"].as_u64().unwrap_or_default() as usize;
        out.push((step, text("item"), text("explanation")));
    }
    Ok(out)
}

/// The step logs of the runs under `dir` (`<dir>/<tag>/metrics.jsonl`) of the arms `arms`,
/// their seeds pooled: tags `<arm>_s<S>`, in arm order, then by tag. For notebook 05's view of
/// the committed records (`experiments/records/<ds>/`) without step 7's reader.
pub fn read_runs(dir: &Path, arms: &[&str]) -> Result<Vec<(String, Vec<StepLog>)>> {
    let mut tags: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    tags.sort();
    let mut out = Vec::new();
    for arm in arms {
        let seeded = |t: &String| {
            t.strip_prefix(arm)
                .and_then(|r| r.strip_prefix("_s"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        for tag in tags.iter().filter(|t| seeded(t)) {
            let path = dir.join(tag).join(crate::paths::files::METRICS);
            if path.is_file() {
                out.push((tag.clone(), crate::io::read_json_lines(&path)?));
            }
        }
    }
    Ok(out)
}

/// Log lines of `path` (JSON with a `step`) up to step `last`; none when the file is absent.
/// A last line without its newline that does not parse (a write a kill cut short) is dropped;
/// any other bad line is an error naming it.
fn lines_upto(path: &Path, last: usize) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let cut_short = (!text.ends_with('\n')).then(|| text.lines().count());
    let mut keep = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parsed = serde_json::from_str::<serde_json::Value>(line);
        if parsed.is_err() && cut_short == Some(n + 1) {
            break;
        }
        let v = parsed.with_context(|| format!("{}:{}: bad log line", path.display(), n + 1))?;
        if v["step"].as_u64().is_some_and(|s| s as usize <= last) {
            keep.push(line.to_string());
        }
    }
    Ok(keep)
}

/// Opens `path` for appending after rewriting it with `lines` (atomically).
fn reopen(path: &Path, lines: &[String]) -> Result<File> {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    crate::io::write_atomic(path, body.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_written_last_line_is_dropped_and_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"step\":0}\n{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"rew",
        )
        .unwrap();
        assert_eq!(
            lines_upto(&path, 1).unwrap(),
            ["{\"step\":0}", "{\"step\":1}"]
        );
        assert_eq!(lines_upto(&path, 9).unwrap().len(), 3);
        std::fs::write(&path, "{\"step\":0}\n{\"st\n{\"step\":2}\n").unwrap();
        let err = lines_upto(&path, 5).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl:2: bad log line"), "{err}");
        std::fs::write(&path, "{\"step\":0}\n{\"st\n").unwrap();
        assert!(
            lines_upto(&path, 5).is_err(),
            "a complete line that does not parse"
        );
    }

    #[test]
    fn read_runs_pools_the_seeds_of_each_arm_in_arm_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |tag: &str, steps: usize| {
            let d = dir.path().join(tag);
            std::fs::create_dir_all(&d).unwrap();
            let lines: String = (0..steps)
                .map(|s| {
                    serde_json::to_string(&StepLog {
                        step: s,
                        ..Default::default()
                    })
                    .unwrap()
                        + "\n"
                })
                .collect();
            std::fs::write(d.join(crate::paths::files::METRICS), lines).unwrap();
        };
        write("shielded_s2", 3);
        write("shielded_s1", 2);
        write("no_proj_s1", 1);
        write("shielded_tau_s1", 1); // another arm's name that starts alike
        write("shielded_sx", 1);
        std::fs::create_dir_all(dir.path().join("frozen_s1")).unwrap(); // no log yet
        let runs = read_runs(dir.path(), &["no_proj", "shielded", "frozen"]).unwrap();
        let got: Vec<(&str, usize)> = runs.iter().map(|(t, l)| (t.as_str(), l.len())).collect();
        assert_eq!(
            got,
            [("no_proj_s1", 1), ("shielded_s1", 2), ("shielded_s2", 3)]
        );
        assert!(read_runs(&dir.path().join("absent"), &["x"])
            .unwrap()
            .is_empty());
    }
}
