//! `checkpoints/basis_<ds>.safetensors` (`B`, σ) + `.json` (τ, k, d, probe count, the ranker
//! checkpoint it came from, checksums), written atomically and verified on load.

use super::Basis;
use crate::io::{recover, sha256_file, temp_beside, Commit};
use crate::ranker::Ranker;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Format tag of the sidecar.
pub const FORMAT: &str = "recrl-basis/1";

/// The sidecar of a saved basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BasisMeta {
    /// [`FORMAT`].
    pub format: String,
    /// Dataset name.
    pub dataset: String,
    /// Energy threshold τ.
    pub tau: f64,
    /// Kept directions.
    pub k: usize,
    /// Hidden size.
    pub d: usize,
    /// Probe states fitted on.
    pub probes: usize,
    /// Share of the energy kept.
    pub energy_kept: f64,
    /// sha256 of the ranker weights the states came from.
    pub ranker_weights_sha256: String,
    /// The ranker's split fingerprint.
    pub dataset_sha256: String,
    /// sha256 of the basis safetensors file.
    pub basis_sha256: String,
    /// The code that fitted it (absent in bases from before issue 30).
    #[serde(default)]
    pub code: Option<crate::record::Code>,
}

impl Basis {
    /// Saves `B` and σ with a sidecar naming the ranker checkpoint they came from.
    pub fn save(&self, dir: &Path, dataset: &str, ranker: &Ranker) -> Result<BasisMeta> {
        let rmeta = ranker
            .meta
            .as_ref()
            .context("the ranker has no checkpoint: save it before fitting a basis")?;
        let (w, j) = crate::paths::basis_files_in(dir, dataset);
        recover(dir)?;
        let tmp = temp_beside(&w, ".safetensors")?;
        let sigma = Tensor::from_slice(&self.sigma);
        Tensor::write_safetensors(&[("basis", &self.b), ("sigma", &sigma)], tmp.path())
            .with_context(|| format!("writing {}", w.display()))?;
        let basis_sha256 = sha256_file(tmp.path())?;
        let meta = BasisMeta {
            format: FORMAT.into(),
            dataset: dataset.into(),
            tau: self.tau,
            k: self.k(),
            d: self.d(),
            probes: self.probes,
            energy_kept: self.energy_kept(),
            ranker_weights_sha256: rmeta.weights_sha256.clone(),
            dataset_sha256: rmeta.dataset_sha256.clone(),
            basis_sha256,
            code: Some(crate::record::code()),
        };
        // weights and sidecar change together (a kill leaves the old basis or the new one)
        let mut commit = Commit::new(dir);
        commit.file(tmp, &w)?;
        commit.bytes(&j, serde_json::to_string_pretty(&meta)?.as_bytes())?;
        commit.apply()?;
        Ok(meta)
    }

    /// Loads the basis of `dataset`, refusing one whose file is corrupt or that was fitted on
    /// another ranker checkpoint than `ranker`'s.
    pub fn load(dir: &Path, dataset: &str, ranker: &Ranker) -> Result<(Basis, BasisMeta)> {
        let (w, j) = crate::paths::basis_files_in(dir, dataset);
        recover(dir)?; // finishes a save that a kill interrupted
        let text = std::fs::read_to_string(&j).with_context(|| {
            format!(
                "reading {} (fit the basis first: notebook 03 or `recrl basis`)",
                j.display()
            )
        })?;
        let meta: BasisMeta = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a basis sidecar", j.display()))?;
        ensure!(
            meta.format == FORMAT,
            "{}: format {:?}, expected {FORMAT:?}",
            j.display(),
            meta.format
        );
        let sha = sha256_file(&w).with_context(|| format!("reading {}", w.display()))?;
        if sha != meta.basis_sha256 {
            bail!(
                "{}: sha256 {sha} differs from the sidecar's {} (corrupt or overwritten)",
                w.display(),
                meta.basis_sha256
            );
        }
        let current = ranker
            .meta
            .as_ref()
            .map(|m| m.weights_sha256.as_str())
            .unwrap_or("");
        if current != meta.ranker_weights_sha256 {
            bail!(
                "{}: fitted on ranker weights {} but the ranker now is {current}: refit the basis (notebook 03 or `recrl basis`)",
                j.display(),
                meta.ranker_weights_sha256
            );
        }
        let mut t: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&w)?.into_iter().collect();
        let b = t
            .remove("basis")
            .with_context(|| format!("{}: tensor basis missing", w.display()))?;
        let sigma = t
            .remove("sigma")
            .with_context(|| format!("{}: tensor sigma missing", w.display()))?;
        ensure!(
            b.size() == [meta.d as i64, meta.k as i64],
            "{}: basis has shape {:?}, sidecar says [{}, {}]",
            w.display(),
            b.size(),
            meta.d,
            meta.k
        );
        let basis = Basis {
            b: b.to_device(Device::Cpu).to_kind(Kind::Float),
            sigma: Vec::<f64>::try_from(sigma.to_kind(Kind::Double))?,
            tau: meta.tau,
            probes: meta.probes,
        };
        Ok((basis, meta))
    }
}
