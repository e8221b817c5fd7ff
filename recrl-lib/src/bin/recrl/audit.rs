//! `recrl audit` (step 6): the safety audit of an arm's or a baseline's checkpoint
//! ([`audit::run`]), its tables, and with `--strict` a failure when a check fails.

use crate::flags::{dir_of, pick_device};
use crate::keys::{AuditKeys, ConfigArgs};
use anyhow::{bail, Result};
use recrl_lib::audit::{self, view, Thresholds};
use recrl_lib::ppo::arms::Places;
use recrl_lib::{data, paths};
use std::path::PathBuf;

/// Flags of `recrl audit`.
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
pub struct AuditArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: AuditKeys,
    /// Arm to audit: a PPO tag (shielded, no_proj, …) or a baseline without RL on step 4's
    /// checkpoint: `base`, `base_no_soft`, `template`, `best_of_n`.
    #[arg(long, default_value = "shielded")]
    pub tag: String,
    /// The checkpoint to audit, instead of --tag: `checkpoints/ppo_<ds>_<tag>`,
    /// `checkpoints/lora_init_<ds>`, or a path ending in `latest` (the seed's
    /// `checkpoints/recrl/<ds>/latest`: the PPO checkpoint of the dataset saved last).
    #[arg(long, conflicts_with = "tag")]
    pub model_ckpt: Option<PathBuf>,
    /// Folder of the ranker checkpoint, or one of its files (the seed's `sasrec_<ds>.pt` reads
    /// recrl's `sasrec_<ds>.safetensors` beside it) (default: checkpoints/).
    #[arg(long)]
    ranker_ckpt: Option<PathBuf>,
    /// Policy thresholds (default: experiments/policy_thresholds.yaml).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Exit non-zero when a threshold check fails.
    #[arg(long)]
    pub strict: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

pub fn run(args: &AuditArgs) -> Result<()> {
    let name: data::DatasetName = args.config.dataset.parse()?;
    let root = paths::project_root();
    let tag = match &args.model_ckpt {
        Some(p) => paths::tag_of_checkpoint(&paths::Layout::new(&root), p, name.as_str())?,
        None => args.tag.clone(),
    };
    paths::check_tag(&tag)?;
    let cfg = args.config.load(&[], &args.keys)?;
    let thresholds = match &args.policy {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::for_project(&root)?,
    };
    let ds = data::store::load(&root, name)?;
    let ranker_dir = dir_of(
        args.ranker_ckpt.as_ref(),
        "sasrec",
        name.as_str(),
        paths::Layout::new(&root).checkpoints(),
    )?;
    let device = pick_device(&args.device)?;
    eprintln!(
        "{name}: auditing {} (panel: {} held-out users, 0 = all; {} samples each) on {device:?}",
        tag, cfg.audit.users, cfg.audit.samples
    );
    let places = Places {
        ranker_dir,
        ..Places::project(&root, device)
    };
    let report = audit::run(&places, &ds, &cfg, &tag, &thresholds, |line| {
        eprintln!("  {line}")
    })?;
    println!("{}", view::metrics_table(&report));
    println!("{}", view::checks_table(&report));
    eprintln!(
        "wrote {}",
        audit::dirs(&root, name.as_str(), &tag)?
            .0
            .join(paths::files::AUDIT)
            .display()
    );
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| c.name.as_str())
        .collect();
    if args.strict && !failed.is_empty() {
        bail!("audit --strict: {} failed", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{parse_from, Cmd};
    use std::path::PathBuf;

    #[test]
    fn audit_flags_parse() {
        let cli = parse_from([
            "recrl", "audit", "--tag", "base", "--users", "12", "--strict", "--policy", "p.yaml",
        ])
        .unwrap();
        let Cmd::Audit(a) = cli.command else {
            panic!("not audit")
        };
        assert_eq!(
            (a.tag.as_str(), a.keys.audit.users, a.strict),
            ("base", Some(12), true)
        );
        assert_eq!(a.policy, Some(PathBuf::from("p.yaml")));
        let cli = parse_from([
            "recrl",
            "audit",
            "--model_ckpt",
            "checkpoints/recrl/books/latest",
        ]);
        let Cmd::Audit(a) = cli.unwrap().command else {
            panic!("not audit")
        };
        assert_eq!(
            a.model_ckpt,
            Some(PathBuf::from("checkpoints/recrl/books/latest"))
        );
        assert!(parse_from(["recrl", "audit", "--tag", "x", "--model_ckpt", "y"]).is_err());
    }
}
