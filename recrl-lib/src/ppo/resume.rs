//! Resumable PPO runs: every N steps the trainable state (LoRA, `W_p`, value head, `E`), the
//! optimiser's moments, the user sampler's state, the run's members and canaries go to
//! `<ckpt_dir>/resume/`. The tensors are written first under step-numbered names, then
//! `state.json` (with their sha256) replaces the previous one atomically, so a run killed at
//! any moment leaves a complete, verifiable snapshot behind.

use super::adamw::AdamW;
use super::options::RunOptions;
use crate::sim::canary::Canary;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use tch::{nn, Tensor};

/// `state.json` of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always "recrl-ppo-resume/1".
    pub format: String,
    /// The last completed step.
    pub step: usize,
    /// The run's options (a resumed run must match them but for `max_steps` and
    /// `checkpoint_every`).
    pub options: RunOptions,
    /// State of the user sampler.
    pub rng: u64,
    /// Users trained on so far.
    pub members: BTreeSet<usize>,
    /// Canaries and how often each was inserted.
    pub canaries: Vec<Canary>,
    /// File names of the trainable variables and the optimiser state, with their sha256.
    pub files: Vec<(String, String)>,
}

fn trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The name of the KL reference's projector (step 4's `W_p`, [`super::SoftTokens`]) in a
/// snapshot's variables file.
pub const REFERENCE_W_P: &str = "reference.w_p0";

/// Writes a snapshot after `snap.step` into `dir` (the variables of `vs` and the `fixed`
/// tensors that are not trained but belong to the run, such as [`REFERENCE_W_P`]), then removes
/// older step files.
pub fn save(
    dir: &Path,
    mut snap: Snapshot,
    vs: &nn::VarStore,
    fixed: &[(&str, &Tensor)],
    opt: &AdamW,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let vars = format!("trainable-{:06}.safetensors", snap.step);
    let optim = format!("optimizer-{:06}.safetensors", snap.step);
    let mut tensors = trainable(vs);
    tensors.extend(
        fixed
            .iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone())),
    );
    crate::io::save_tensors(&dir.join(&vars), &tensors)?;
    opt.save(&dir.join(&optim))?;
    snap.files = vec![
        (vars.clone(), crate::io::sha256_file(&dir.join(&vars))?),
        (optim.clone(), crate::io::sha256_file(&dir.join(&optim))?),
    ];
    crate::io::write_atomic(
        &dir.join("state.json"),
        serde_json::to_string_pretty(&snap)?.as_bytes(),
    )?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") && name != vars && name != optim {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The options a resumed run must share with its snapshot: all but `max_steps`,
/// `checkpoint_every`, `ppo.exec_batch` and `ppo.shared_prompts` (which leave the update as it
/// is, up to float rounding).
fn comparable(o: &RunOptions) -> Option<serde_json::Value> {
    let ppo = super::update::PpoConfig {
        exec_batch: 0,
        shared_prompts: true,
        ..o.ppo.clone()
    };
    serde_json::to_value(RunOptions {
        max_steps: 0,
        checkpoint_every: 0,
        ppo,
        ..o.clone()
    })
    .ok()
}

/// Whether `dir` holds a snapshot made with other options than `opts` (one [`load`] refuses).
pub fn made_with_other_options(dir: &Path, opts: &RunOptions) -> Result<bool> {
    let state = dir.join("state.json");
    if !state.is_file() {
        return Ok(false);
    }
    let snap: Snapshot = crate::io::read_json(&state)?;
    Ok(comparable(&snap.options) != comparable(opts))
}

/// Reads the snapshot in `dir` (`None` when there is none), checks it belongs to a run with
/// `opts` (all options but `max_steps`, `checkpoint_every` and `ppo.exec_batch` equal) and that
/// its files match their sha256, and restores the variables of `vs`, the `fixed` tensors (by
/// name, as [`save`] wrote them) and the optimiser's state.
pub fn load(
    dir: &Path,
    opts: &RunOptions,
    vs: &nn::VarStore,
    fixed: &mut [(&str, &mut Tensor)],
    opt: &mut AdamW,
) -> Result<Option<Snapshot>> {
    let state = dir.join("state.json");
    if !state.is_file() {
        return Ok(None);
    }
    let snap: Snapshot = crate::io::read_json(&state)?;
    if comparable(&snap.options) != comparable(opts) {
        bail!(
            "{}: the snapshot was made with other options ({}); remove {} to start afresh",
            state.display(),
            serde_json::to_string(&snap.options)?,
            dir.display()
        );
    }
    for (name, sha) in &snap.files {
        let got = crate::io::sha256_file(&dir.join(name))?;
        if &got != sha {
            bail!(
                "{}: sha256 {got} differs from state.json's {sha} (corrupt snapshot)",
                dir.join(name).display()
            );
        }
    }
    let vars_path = dir.join(&snap.files[0].0);
    let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&vars_path)
        .with_context(|| format!("reading {}", vars_path.display()))?
        .into_iter()
        .collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut t) in trainable(vs) {
            let s = saved
                .get(&name)
                .with_context(|| format!("{}: no variable `{name}`", vars_path.display()))?;
            t.copy_(&s.to_device(t.device()));
        }
        for (name, t) in fixed.iter_mut() {
            let s = saved.get(*name).with_context(|| {
                format!(
                    "{}: no `{name}`: the snapshot predates the fixed KL anchor (issue 31); remove {} to start afresh",
                    vars_path.display(),
                    dir.display()
                )
            })?;
            t.copy_(&s.to_device(t.device()));
        }
        Ok(())
    })?;
    opt.load(&dir.join(&snap.files[1].0))?;
    Ok(Some(snap))
}
