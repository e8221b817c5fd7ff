//! What a result depends on, for its record (`run.json`, `audit.json`): the results protocol,
//! the code version the binary was built from (commit and dirty flag, fixed at build time, so
//! editing the checkout while a run goes on does not change what it says) and the sha256 of
//! every input file it read, with paths relative to the project root.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The results protocol: 2 is the held-out panel with the judge and the baselines (issue 28);
/// 3 the same under the reward with form gates (`sim::quality::Form`), the fixed KL anchor and
/// replies stopped at their first sentence end (issue 31), so its judge faithfulness,
/// completeness and artefact rates are shared with the reward; records without one are
/// version 1 (a panel of training users, one sample each).
pub const PROTOCOL: u32 = 3;

/// The code a binary was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// The crate's version.
    pub version: String,
    /// The git commit of the checkout it was built in, or "unknown" (no git, no repository).
    pub commit: String,
    /// Whether tracked files differed from that commit when it was built (`None`: unknown).
    pub dirty: Option<bool>,
}

/// The code version of this binary (`build.rs` records the commit and the dirty flag).
pub fn code() -> Code {
    let dirty = match env!("RECRL_GIT_DIRTY") {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    Code {
        version: crate::VERSION.to_string(),
        commit: env!("RECRL_GIT_COMMIT").to_string(),
        dirty,
    }
}

/// What a record says it depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// [`PROTOCOL`] when it was made.
    pub protocol: u32,
    /// The code version.
    pub code: Code,
    /// Every input file read, relative to the project root (absolute when outside it) → its
    /// sha256.
    pub inputs: BTreeMap<String, String>,
}

impl Provenance {
    /// The provenance of a result made now from `inputs` (files, or folders whose files are
    /// all taken, recursively) under `root`. A missing input is an error naming it.
    pub fn of(root: &Path, inputs: &[PathBuf]) -> Result<Provenance> {
        let mut files = Vec::new();
        for p in inputs {
            collect(p, &mut files).with_context(|| format!("recording input {}", p.display()))?;
        }
        let inputs = files
            .into_iter()
            .map(|f| {
                let key = crate::paths::relative_to(root, &f).display().to_string();
                Ok((key, crate::io::sha256_file(&f)?))
            })
            .collect::<Result<_>>()?;
        Ok(Provenance {
            protocol: PROTOCOL,
            code: code(),
            inputs,
        })
    }
}

/// The files of `path` (itself, or a folder's files recursively, sorted; hidden entries and
/// `resume/` snapshots skipped) appended to `out`.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    anyhow::ensure!(path.is_dir(), "{} does not exist", path.display());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for e in entries {
        let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "resume" {
            continue;
        }
        collect(&e, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_relative_sorted_and_hashed_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("ck/sub")).unwrap();
        std::fs::create_dir_all(root.join("ck/resume")).unwrap();
        std::fs::write(root.join("ck/b.json"), b"abc").unwrap();
        std::fs::write(root.join("ck/sub/a.bin"), b"").unwrap();
        std::fs::write(root.join("ck/resume/snap"), b"x").unwrap();
        std::fs::write(root.join("ck/.tmp"), b"x").unwrap();
        let p = Provenance::of(root, &[root.join("ck")]).unwrap();
        // sha256("abc") and sha256("") (FIPS 180-2 test vectors)
        let want: BTreeMap<String, String> = [
            (
                "ck/b.json",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "ck/sub/a.bin",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(p.inputs, want);
        assert_eq!(p.protocol, PROTOCOL);
        let err = Provenance::of(root, &[root.join("nope.json")]).unwrap_err();
        assert!(format!("{err:#}").contains("nope.json"), "{err:#}");
    }

    #[test]
    fn the_code_version_names_a_commit_or_says_unknown() {
        let c = code();
        assert!(
            c.commit == "unknown" || (c.commit.len() == 40 && c.dirty.is_some()),
            "{c:?}"
        );
    }
}
