//! `checkpoints/sasrec_<ds>.safetensors` + `sasrec_<ds>.json`: the weights and what they are
//! (configuration, metrics with protocol, the dataset they were trained on, epoch, seed).
//! Both files are written atomically; loading verifies the weights' sha256 and refuses a
//! checkpoint made for a different dataset or shape.

use super::metrics::RankMetrics;
use super::model::SasrecShape;
use crate::config::RankerConfig;
use crate::data::Dataset;
use crate::io::{recover, sha256_file, temp_beside, Commit};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Format tag of the JSON sidecar.
pub const FORMAT: &str = "recrl-sasrec/1";

/// The JSON sidecar of a ranker checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT`].
    pub format: String,
    /// Dataset name.
    pub dataset: String,
    /// Users in the dataset.
    pub n_users: usize,
    /// Model shape (includes `n_items`).
    pub shape: SasrecShape,
    /// The training configuration.
    pub config: RankerConfig,
    /// Seed of the run.
    pub seed: u64,
    /// Epoch whose weights were kept (best validation NDCG@10, full ranking).
    pub epoch: usize,
    /// Epochs trained before stopping.
    pub epochs_run: usize,
    /// Validation metrics of the kept weights, one entry per protocol.
    pub valid: Vec<RankMetrics>,
    /// Test metrics of the kept weights, one entry per protocol.
    pub test: Vec<RankMetrics>,
    /// [`dataset_fingerprint`] of the training data.
    pub dataset_sha256: String,
    /// sha256 of the processed files (from `data/_checksums/<ds>.json`), when there are any.
    pub data_files: BTreeMap<String, String>,
    /// sha256 of the `.safetensors` file.
    pub weights_sha256: String,
    /// Device trained on.
    pub device: String,
    /// Wall-clock seconds of training and evaluation.
    pub train_seconds: f64,
    /// The code that trained it (absent in checkpoints from before issue 30).
    #[serde(default)]
    pub code: Option<crate::record::Code>,
}

/// sha256 over the split (every user's train items, valid and test item, little-endian u32s
/// with separators) and the item count: identifies the exact data a ranker was trained on.
pub fn dataset_fingerprint(ds: &Dataset) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((ds.n_items() as u64).to_le_bytes());
    for u in 0..ds.n_users() {
        for i in ds.train[u].iter().chain([&ds.valid[u], &ds.test[u]]) {
            h.update(i.to_le_bytes());
        }
        h.update(u32::MAX.to_le_bytes());
    }
    format!("{:x}", h.finalize())
}

/// Writes the weights (`named` tensors) and the sidecar as one [`Commit`]: a kill leaves the
/// previous checkpoint or this one, never new weights with an old sidecar. Fills in
/// `meta.weights_sha256`.
pub fn save(
    weights_path: &Path,
    meta_path: &Path,
    named: &[(String, tch::Tensor)],
    meta: &mut CheckpointMeta,
) -> Result<()> {
    let dir = weights_path.parent().unwrap_or(Path::new("."));
    recover(dir)?;
    let tmp = temp_beside(weights_path, ".safetensors")?;
    let cpu: Vec<(String, tch::Tensor)> = named
        .iter()
        .map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    tch::Tensor::write_safetensors(&cpu, tmp.path())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    meta.weights_sha256 = sha256_file(tmp.path())?;
    let mut commit = Commit::new(dir);
    commit.file(tmp, weights_path)?;
    commit.bytes(meta_path, serde_json::to_string_pretty(meta)?.as_bytes())?;
    commit.apply()
}

/// Checks that the tensors in `weights_path` are the variables of `vs` (the model the sidecar
/// `meta_path` describes), by name and shape; a mismatch (a hand-edited sidecar, weights of
/// another model) is an error naming both files and the first difference.
pub fn check_shapes(weights_path: &Path, meta_path: &Path, vs: &tch::nn::VarStore) -> Result<()> {
    let stored = tch::Tensor::read_safetensors(weights_path)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    let stored: std::collections::BTreeMap<String, Vec<i64>> =
        stored.into_iter().map(|(n, t)| (n, t.size())).collect();
    let wanted: std::collections::BTreeMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    let differ = |what: String| {
        anyhow::anyhow!(
            "{}: the model described by {} does not fit these weights: {what} (the JSON was edited, or the files come from different runs; re-run step 2)",
            weights_path.display(),
            meta_path.display()
        )
    };
    for (name, shape) in &wanted {
        match stored.get(name) {
            None => return Err(differ(format!("`{name}` is missing"))),
            Some(s) if s != shape => {
                return Err(differ(format!(
                    "`{name}` is {s:?} in the file, {shape:?} by the JSON"
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = stored.keys().find(|n| !wanted.contains_key(*n)) {
        return Err(differ(format!(
            "`{extra}` is in the file but not in the model"
        )));
    }
    Ok(())
}

/// Reads and checks a sidecar: format, weights checksum, and that `ds` is the dataset the
/// weights were trained on (same split, same items).
pub fn read_checked(weights_path: &Path, meta_path: &Path, ds: &Dataset) -> Result<CheckpointMeta> {
    let text = std::fs::read_to_string(meta_path)
        .with_context(|| format!("{}: cannot read the checkpoint's JSON", meta_path.display()))?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a ranker checkpoint", meta_path.display()))?;
    if meta.format != FORMAT {
        bail!(
            "{}: format `{}`, expected `{FORMAT}`",
            meta_path.display(),
            meta.format
        );
    }
    let sha = sha256_file(weights_path)?;
    if sha != meta.weights_sha256 {
        bail!(
            "{}: sha256 {sha} does not match {} recorded in {} (corrupt or overwritten; \
             re-run step 2)",
            weights_path.display(),
            meta.weights_sha256,
            meta_path.display()
        );
    }
    if meta.dataset != ds.name.as_str() || meta.shape.n_items != ds.n_items() {
        bail!(
            "{}: trained on {} with {} items, but the dataset is {} with {} items",
            meta_path.display(),
            meta.dataset,
            meta.shape.n_items,
            ds.name,
            ds.n_items()
        );
    }
    let fp = dataset_fingerprint(ds);
    if fp != meta.dataset_sha256 {
        bail!(
            "{}: trained on different {} data (dataset sha256 {} ≠ current {fp}); the processed \
             data changed since step 2: re-train the ranker",
            meta_path.display(),
            ds.name,
            meta.dataset_sha256
        );
    }
    Ok(meta)
}
