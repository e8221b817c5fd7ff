//! Where the project's folders are: `data/`, `checkpoints/`, `experiments/`, `figures/`, `logs/`.

use std::path::{Path, PathBuf};

/// The project root: `$RECRL_ROOT` if set, else the nearest ancestor of the current directory
/// that holds `experiments/recrl_default.yaml`, else this crate's own repository (when it still
/// exists, e.g. for a crate that depends on recrl-lib by path), else the current directory.
pub fn project_root() -> PathBuf {
    if let Some(root) = std::env::var_os("RECRL_ROOT") {
        return PathBuf::from(root);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    if let Some(found) = cwd.ancestors().find(|d| is_root(d)) {
        return found.to_path_buf();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if is_root(&repo) {
        return repo.canonicalize().unwrap_or(repo);
    }
    cwd
}

fn is_root(dir: &Path) -> bool {
    dir.join("experiments/recrl_default.yaml").is_file()
}

/// `<root>/experiments/recrl_default.yaml`.
pub fn default_config() -> PathBuf {
    project_root().join("experiments/recrl_default.yaml")
}

/// `<root>/figures`.
pub fn figures_dir() -> PathBuf {
    project_root().join("figures")
}
