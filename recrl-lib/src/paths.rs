//! Where the project's files are: [`project_root`] finds the root, [`Layout`] names every path
//! under it (`data/`, `checkpoints/`, `experiments/`, `figures/`, `logs/`).

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

/// The audit tag of the step-4 checkpoint (before RL): `logs/<ds>/base/`.
pub const BASE_TAG: &str = "base";

/// Folders of `logs/<ds>/` that are not runs (the ranker's log).
const NOT_RUNS: [&str; 1] = ["ranker"];

/// Longest run tag accepted.
pub const MAX_TAG_LEN: usize = 64;

/// `path` relative to `root` when it lies under it (records carry no machine's absolute
/// paths), else `path` as it is.
pub fn relative_to(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The lock file of the one process that may write `path` (a run's log folder, a checkpoint's
/// stem): `<parent>/.<name>.lock`, outside the folder itself, so it stays put when a fresh
/// run moves an earlier folder aside ([`crate::io::Owner`]).
pub fn owner_lock(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let parent = path.parent().unwrap_or(Path::new("."));
    parent.join(format!(".{name}.lock"))
}

/// Checks a run tag (`--tag`, an arm name): it names the folders `logs/<ds>/<tag>/` and
/// `checkpoints/ppo_<ds>_<tag>/`, so it must stay inside them. Allowed: 1 to [`MAX_TAG_LEN`]
/// ASCII letters, digits, `_`, `-` and `.`, starting with a letter or digit; not `ranker` (the
/// ranker's log folder). [`BASE_TAG`] passes (the audit of step 4); PPO runs use
/// [`check_run_tag`].
pub fn check_tag(tag: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let problem = if tag.is_empty() {
        Some("it is empty".to_string())
    } else if tag.len() > MAX_TAG_LEN {
        Some(format!("it has {} characters", tag.len()))
    } else if let Some(c) = tag.chars().find(|&c| !allowed(c)) {
        Some(format!("it contains {c:?}"))
    } else if !tag.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("it does not start with a letter or digit".to_string())
    } else if NOT_RUNS.contains(&tag) {
        Some(format!(
            "`{tag}` is reserved (logs/<ds>/{tag}/ is the ranker's log)"
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => anyhow::bail!(
            "run tag {tag:?} is not allowed: {why}; a tag is 1 to {MAX_TAG_LEN} ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit (e.g. shielded_s2)"
        ),
    }
}

/// Where an earlier run's folder `dir` goes when a new run of the same tag replaces it:
/// `<parent>/.replaced/<name>-<stamp>` (a hidden folder beside it, which step 7 does not read;
/// delete it when the old run is not needed). A taken name gets `.1`, `.2`, … appended.
pub fn aside(dir: &Path, stamp: u64) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let parent = dir.parent().unwrap_or(Path::new(".")).join(".replaced");
    let candidate = |i: usize| match i {
        0 => parent.join(format!("{name}-{stamp}")),
        i => parent.join(format!("{name}-{stamp}.{i}")),
    };
    (0..)
        .map(candidate)
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// [`check_tag`] for a PPO run, which must not take [`BASE_TAG`] (the audit's step-4 folder).
pub fn check_run_tag(tag: &str) -> anyhow::Result<()> {
    check_tag(tag)?;
    anyhow::ensure!(
        tag != BASE_TAG,
        "run tag {tag:?} is reserved for the audit of the step-4 checkpoint (logs/<ds>/{BASE_TAG}/); choose another --tag"
    );
    Ok(())
}

/// File names inside the folders of a [`Layout`].
pub mod files {
    /// A PPO run's step log (`logs/<ds>/<tag>/`): one JSON line per step.
    pub const METRICS: &str = "metrics.jsonl";
    /// A PPO run's settings (`logs/<ds>/<tag>/`), with its simulated user.
    pub const RUN: &str = "run.json";
    /// An audit's report (`logs/<ds>/<tag>/`).
    pub const AUDIT: &str = "audit.json";
    /// The text metrics of a run's audit explanations (`logs/<ds>/<tag>/`).
    pub const TEXT_METRICS: &str = "text_metrics.json";
    /// The audit's explanations (`logs/<ds>/<tag>/`), one JSON line each.
    pub const EXPLANATIONS: &str = "explanations.jsonl";
    /// The replies a best-of-N audit chose among its candidates (one per panel reply).
    pub const SELECTED: &str = "explanations.selected.jsonl";
    /// A PPO run's logged rollout explanations (`logs/<ds>/<tag>/`).
    pub const SAMPLES: &str = "samples.jsonl";
    /// The users a PPO run trained on (`logs/<ds>/<tag>/`).
    pub const MEMBERS: &str = "members.json";
    /// The canaries a PPO run planted (`logs/<ds>/<tag>/`).
    pub const CANARIES: &str = "canaries.json";
    /// An explainer checkpoint's description (in `lora_init_<ds>/` and `ppo_<ds>_<tag>/`).
    pub const EXPLAINER: &str = "explainer.json";
    /// Step 1's counts (`data/proc/<ds>/`).
    pub const DATA_STATS: &str = "stats.json";
}

/// Every path a step reads or writes, under one project root: the one home of the on-disk
/// layout (docs/design.md §3 lists what each file holds).
///
/// ```text
/// <root>/experiments/recrl_default.yaml, policy_thresholds.yaml   configuration
/// <root>/experiments/aggregate_results.csv, main_results.tex      step 7 tables of the records
/// <root>/data/raw/<ds>/            raw files (fetched or put there by the user)
/// <root>/data/proc/<ds>/           step 1 output (Parquet), <root>/data/_checksums/<ds>.json
/// <root>/data/lexicons/            audit word lists
/// <root>/checkpoints/sasrec_<ds>.{safetensors,json}     step 2
/// <root>/checkpoints/basis_<ds>.{safetensors,json}      step 3
/// <root>/checkpoints/lora_init_<ds>/                    step 4
/// <root>/checkpoints/ppo_<ds>_<tag>/ (+ resume/)        step 5
/// <root>/checkpoints/models/                            fetched models
/// <root>/logs/<ds>/ranker/train.jsonl                   step 2 log
/// <root>/logs/<ds>/<tag>/                               step 5 and 6 logs of a run
/// <root>/experiments/records/<ds>/<tag>/               committed run records (step 7's input)
/// <root>/figures/                                       step 7 figures of the records
/// <root>/results/                                       step 7 tables and figures of logs/
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The layout under [`project_root`].
    pub fn project() -> Layout {
        Layout::new(project_root())
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `experiments/`.
    pub fn experiments(&self) -> PathBuf {
        self.root.join("experiments")
    }

    /// `experiments/recrl_default.yaml`.
    pub fn default_config(&self) -> PathBuf {
        self.root.join("experiments/recrl_default.yaml")
    }

    /// `experiments/policy_thresholds.yaml` (the audit policy).
    pub fn policy_thresholds(&self) -> PathBuf {
        self.root.join("experiments/policy_thresholds.yaml")
    }

    /// `data/raw/<ds>/`.
    pub fn raw_dir(&self, dataset: &str) -> PathBuf {
        self.root.join("data/raw").join(dataset)
    }

    /// `data/proc/<ds>/`.
    pub fn proc_dir(&self, dataset: &str) -> PathBuf {
        self.root.join("data/proc").join(dataset)
    }

    /// `data/_checksums/<ds>.json`.
    pub fn checksum_file(&self, dataset: &str) -> PathBuf {
        self.root
            .join("data/_checksums")
            .join(format!("{dataset}.json"))
    }

    /// `data/lexicons/` (the audit's word lists).
    pub fn lexicons(&self) -> PathBuf {
        self.root.join("data/lexicons")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `checkpoints/models/<name>` (fetched models).
    pub fn model(&self, name: &str) -> PathBuf {
        self.root.join("checkpoints/models").join(name)
    }

    /// The ranker's `(weights, sidecar)`: `checkpoints/sasrec_<ds>.{safetensors,json}`.
    pub fn ranker_files(&self, dataset: &str) -> (PathBuf, PathBuf) {
        ranker_files_in(&self.checkpoints(), dataset)
    }

    /// The shield basis' `(weights, sidecar)`: `checkpoints/basis_<ds>.{safetensors,json}`.
    pub fn basis_files(&self, dataset: &str) -> (PathBuf, PathBuf) {
        basis_files_in(&self.checkpoints(), dataset)
    }

    /// Step 4's explainer checkpoint: `checkpoints/lora_init_<ds>/`.
    pub fn lora_init_dir(&self, dataset: &str) -> PathBuf {
        self.checkpoints().join(format!("lora_init_{dataset}"))
    }

    /// A PPO run's checkpoint folder: `checkpoints/ppo_<ds>_<tag>/`.
    pub fn ppo_dir(&self, dataset: &str, tag: &str) -> PathBuf {
        self.checkpoints().join(format!("ppo_{dataset}_{tag}"))
    }

    /// `logs/`.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A run's log folder: `logs/<ds>/<tag>/` (PPO and audit outputs of tag `tag`).
    pub fn run_logs(&self, dataset: &str, tag: &str) -> PathBuf {
        self.logs().join(dataset).join(tag)
    }

    /// A PPO run's snapshot folder: `checkpoints/ppo_<ds>_<tag>/resume/`.
    pub fn resume_dir(ckpt_dir: &Path) -> PathBuf {
        ckpt_dir.join("resume")
    }

    /// The ranker's training log: `logs/<ds>/ranker/train.jsonl`.
    pub fn ranker_log(&self, dataset: &str) -> PathBuf {
        self.logs().join(dataset).join("ranker/train.jsonl")
    }

    /// `figures/`: the committed figures of step 7 (made from [`Layout::records`]).
    pub fn figures(&self) -> PathBuf {
        self.root.join("figures")
    }

    /// `experiments/records/`: the committed run records (`<ds>/<tag>/` with `run.json`,
    /// `metrics.jsonl`, `audit.json`, `text_metrics.json`) the committed results are made from.
    pub fn records(&self) -> PathBuf {
        self.experiments().join("records")
    }

    /// `results/`: step 7's tables and figures of the live runs in `logs/` (git-ignored).
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
}

/// The folder to read a `kind` (`sasrec`, `basis`) checkpoint of `dataset` from, given a
/// `--ranker_ckpt` / `--projection_basis` value: a folder as it is; one of the checkpoint's files
/// (`<kind>_<ds>.safetensors` or `.json`) its folder; the seed's `<kind>_<ds>.pt` the folder of
/// recrl's `<kind>_<ds>.safetensors` beside it. Anything else (another dataset's file, a `.pt`
/// with no recrl checkpoint beside it, a missing path) is an error that names the files recrl
/// reads and where step 2 or 3 puts them (`default`).
pub fn checkpoint_dir(
    flag: &Path,
    kind: &str,
    dataset: &str,
    default: &Path,
) -> anyhow::Result<PathBuf> {
    if flag.is_dir() {
        return Ok(flag.to_path_buf());
    }
    let stem = format!("{kind}_{dataset}");
    let folder = flag
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let ours = folder.join(format!("{stem}.safetensors"));
    let named = flag.file_stem().is_some_and(|s| s == stem.as_str());
    let ext = flag.extension().and_then(|e| e.to_str()).unwrap_or("");
    if named && matches!(ext, "safetensors" | "json" | "pt") && ours.is_file() {
        return Ok(folder.to_path_buf());
    }
    let why = if !named && !ext.is_empty() {
        format!("it is not the {kind} checkpoint of {dataset}")
    } else if ext == "pt" {
        "recrl does not read PyTorch .pt files".to_string()
    } else {
        "it does not exist".to_string()
    };
    anyhow::bail!(
        "{}: {why}; recrl reads {stem}.safetensors with {stem}.json from a folder (step {} writes them to {}): pass that folder or one of those files, or leave the flag out",
        flag.display(),
        if kind == "basis" { 3 } else { 2 },
        default.display()
    )
}

/// The run tag whose checkpoint `path` is (`recrl audit --model_ckpt`): the project's
/// `checkpoints/ppo_<ds>_<tag>/` gives `<tag>`, `checkpoints/lora_init_<ds>/` gives
/// [`BASE_TAG`], and a path ending in `latest` (the seed's `checkpoints/recrl/<ds>/latest`)
/// the tag of the PPO checkpoint of `dataset` saved last. Anything else is an error naming the
/// folders that work.
pub fn tag_of_checkpoint(layout: &Layout, path: &Path, dataset: &str) -> anyhow::Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let prefix = format!("ppo_{dataset}_");
    if name == "latest" {
        return latest_ppo_tag(layout, dataset);
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if name == format!("lora_init_{dataset}") && same(path, &layout.lora_init_dir(dataset)) {
        return Ok(BASE_TAG.to_string());
    }
    if let Some(tag) = name.strip_prefix(&prefix) {
        if same(path, &layout.ppo_dir(dataset, tag)) {
            check_tag(tag)?;
            return Ok(tag.to_string());
        }
    }
    anyhow::bail!(
        "{}: not a checkpoint of {dataset} in {}: use {}/{prefix}<tag> (a PPO run), {}/lora_init_{dataset} (before RL) or `latest`",
        path.display(),
        layout.checkpoints().display(),
        layout.checkpoints().display(),
        layout.checkpoints().display()
    )
}

/// The tag of the PPO checkpoint of `dataset` whose `explainer.json` was written last.
fn latest_ppo_tag(layout: &Layout, dataset: &str) -> anyhow::Result<String> {
    let prefix = format!("ppo_{dataset}_");
    let found = std::fs::read_dir(layout.checkpoints())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let tag = name.strip_prefix(&prefix)?.to_string();
            let written = std::fs::metadata(e.path().join(files::EXPLAINER))
                .and_then(|m| m.modified())
                .ok()?;
            Some((written, tag))
        })
        .max();
    found.map(|(_, tag)| tag).ok_or_else(|| {
        anyhow::anyhow!(
            "latest: no PPO checkpoint of {dataset} in {} (run step 5 first)",
            layout.checkpoints().display()
        )
    })
}

/// The ranker's `(weights, sidecar)` in a checkpoints folder `dir`:
/// `<dir>/sasrec_<ds>.{safetensors,json}`.
pub fn ranker_files_in(dir: &Path, dataset: &str) -> (PathBuf, PathBuf) {
    pair(dir, "sasrec", dataset)
}

/// The shield basis' `(weights, sidecar)` in a checkpoints folder `dir`:
/// `<dir>/basis_<ds>.{safetensors,json}`.
pub fn basis_files_in(dir: &Path, dataset: &str) -> (PathBuf, PathBuf) {
    pair(dir, "basis", dataset)
}

/// `(<dir>/<kind>_<ds>.safetensors, <dir>/<kind>_<ds>.json)`.
fn pair(dir: &Path, kind: &str, dataset: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{kind}_{dataset}.safetensors")),
        dir.join(format!("{kind}_{dataset}.json")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_that_stay_in_their_folders_pass() {
        for tag in [
            "shielded",
            "shielded_grpo_g4_s2",
            "tau0.99",
            "no-proj.v2",
            "base",
            "A1",
        ] {
            check_tag(tag).unwrap();
        }
        check_run_tag("tau0.999_s3").unwrap();
        check_tag(&"a".repeat(MAX_TAG_LEN)).unwrap();
    }

    #[test]
    fn tags_that_escape_or_collide_are_refused_with_the_rule() {
        let long = "a".repeat(MAX_TAG_LEN + 1);
        for (tag, why) in [
            ("../../escape", "contains '/'"),
            ("x/../../CKPT_ESC", "contains '/'"),
            ("/tmp/abs", "contains '/'"),
            ("a\\b", "contains '\\\\'"),
            ("new\nline", "contains '\\n'"),
            ("", "it is empty"),
            ("..", "does not start with a letter or digit"),
            (".hidden", "does not start with a letter or digit"),
            ("-rf", "does not start with a letter or digit"),
            ("ranker", "reserved"),
            ("é", "contains 'é'"),
            ("a b", "contains ' '"),
            (long.as_str(), "65 characters"),
        ] {
            let err = check_tag(tag).unwrap_err().to_string();
            assert!(err.contains(why), "{tag:?}: {err}");
            assert!(err.contains("ASCII letters, digits"), "{err}");
        }
        let err = check_run_tag(BASE_TAG).unwrap_err().to_string();
        assert!(err.contains("reserved for the audit"), "{err}");
    }

    #[test]
    fn seed_checkpoint_paths_resolve_to_ours_or_name_the_files_to_use() {
        let root = tempfile::tempdir().unwrap();
        let ck = root.path().join("checkpoints");
        std::fs::create_dir_all(&ck).unwrap();
        for f in ["sasrec_books.safetensors", "sasrec_books.json"] {
            std::fs::write(ck.join(f), b"x").unwrap();
        }
        let dir = |p: &Path| checkpoint_dir(p, "sasrec", "books", &ck);
        for ok in [
            "",
            "sasrec_books.pt",
            "sasrec_books.safetensors",
            "sasrec_books.json",
        ] {
            assert_eq!(dir(&ck.join(ok)).unwrap(), ck, "{ok:?}");
        }
        for (bad, says) in [
            (
                "sasrec_ml-100k.safetensors",
                "not the sasrec checkpoint of books",
            ),
            (
                "../../checkpoints/sasrec_books.pt",
                "recrl does not read PyTorch .pt",
            ),
            ("nowhere", "it does not exist"),
        ] {
            let err = dir(&ck.join(bad)).unwrap_err().to_string();
            assert!(
                err.contains(says)
                    && err.contains("sasrec_books.safetensors with sasrec_books.json"),
                "{bad}: {err}"
            );
            assert!(err.contains("step 2 writes them to"), "{err}");
        }
        let err = checkpoint_dir(&ck.join("basis_books.pt"), "basis", "books", &ck).unwrap_err();
        assert!(err.to_string().contains("step 3"), "{err}");
    }

    #[test]
    fn model_checkpoint_folders_name_their_tag_and_latest_is_the_newest() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path());
        for tag in ["shielded", "no_proj_s2"] {
            let d = layout.ppo_dir("books", tag);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(files::EXPLAINER), b"{}").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::create_dir_all(layout.lora_init_dir("books")).unwrap();
        let tag = |p: &Path| tag_of_checkpoint(&layout, p, "books");
        assert_eq!(
            tag(&layout.ppo_dir("books", "shielded")).unwrap(),
            "shielded"
        );
        assert_eq!(tag(&layout.lora_init_dir("books")).unwrap(), BASE_TAG);
        assert_eq!(
            tag(&layout.checkpoints().join("recrl/books/latest")).unwrap(),
            "no_proj_s2"
        );
        let err = tag(Path::new("/elsewhere/ppo_books_x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a checkpoint of books") && err.contains("`latest`"),
            "{err}"
        );
        let err = tag_of_checkpoint(&layout, Path::new("latest"), "steam").unwrap_err();
        assert!(
            err.to_string().contains("no PPO checkpoint of steam"),
            "{err}"
        );
    }

    #[test]
    fn aside_is_a_hidden_sibling_and_never_a_taken_name() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("logs/ml-100k/shielded");
        let first = aside(&dir, 42);
        assert_eq!(
            first,
            root.path().join("logs/ml-100k/.replaced/shielded-42")
        );
        std::fs::create_dir_all(&first).unwrap();
        assert_eq!(
            aside(&dir, 42),
            root.path().join("logs/ml-100k/.replaced/shielded-42.1")
        );
    }
}
