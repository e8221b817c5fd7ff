//! `recrl ppo` (step 5): one arm of shielded PPO ([`run_arm`]), the arm picked by its name
//! (`--arm`) and the seed's flags ([`Arm::from_flags`]).

use crate::flags::{dir_of, pick_device};
use crate::keys::{ConfigArgs, RunKeys};
use anyhow::Result;
use recrl_lib::config::Config;
use recrl_lib::ppo::arms::{run_arm, Arm, ArmFlags, Places, Schedule};
use recrl_lib::{data, paths};
use std::path::PathBuf;

/// Flags of `recrl ppo` (the seed's names).
#[derive(clap::Args)]
#[command(rename_all = "snake_case")]
pub struct PpoArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub keys: RunKeys,
    /// A named arm and its keys (applied after --set, before the flags): shielded, no_proj,
    /// frozen, kl0, lora4, `tau<τ>`, each with optional `_grpo` or `_ppo`, `_g<G>`, `_e<E>` and
    /// `_s<seed>` (see ppo::arms::Arm::named).
    #[arg(long)]
    arm: Option<String>,
    /// Folder of the ranker checkpoint, or one of its files (the seed's `sasrec_<ds>.pt` reads
    /// recrl's `sasrec_<ds>.safetensors` beside it) (default: checkpoints/).
    #[arg(long)]
    ranker_ckpt: Option<PathBuf>,
    /// Folder of the shield basis, or one of its files (the seed's `basis_<ds>.pt` reads
    /// recrl's `basis_<ds>.safetensors` beside it) (default: checkpoints/).
    #[arg(long)]
    projection_basis: Option<PathBuf>,
    /// Train E without the shield (the no_proj arm).
    #[arg(long)]
    no_projection: bool,
    /// Keep E frozen (the control arm).
    #[arg(long)]
    freeze_items: bool,
    /// Run name: `logs/<ds>/<tag>/` (default: --arm, else the flags' arm, e.g. shielded, kl0).
    #[arg(long)]
    tag: Option<String>,
    /// Validation drift every N steps.
    #[arg(long, default_value_t = 10)]
    eval_every: usize,
    /// Save a resumable snapshot every N steps (and at the end) in `checkpoints/ppo_<ds>_<tag>/resume/`.
    #[arg(long, default_value_t = 10)]
    checkpoint_every: usize,
    /// Continue the arm from its last snapshot (a killed run picks up where it stopped;
    /// a larger --max_steps extends a finished one). With --overwrite as well, a snapshot made
    /// with other options is moved aside and the run starts afresh.
    #[arg(long)]
    resume: bool,
    /// Start afresh even if the tag already has a run: the earlier run's logs and checkpoint
    /// are moved aside to `logs/<ds>/.replaced/` and `checkpoints/.replaced/` (without it,
    /// re-using a tag without --resume is refused).
    #[arg(long)]
    overwrite: bool,
    /// Device: cpu, cuda, cuda:N (default: CUDA when available, else CPU; or $RECRL_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

impl PpoArgs {
    /// The configuration (`--arm`'s keys after `--set`, the flags last) and the arm to run
    /// ([`Arm::from_flags`]).
    pub fn configure(&self) -> Result<(Config, Arm)> {
        let named = self.arm.as_deref().map(Arm::named).transpose()?;
        let arm_sets = named.as_ref().map_or(&[][..], |a| &a.sets);
        let cfg = self.config.load(arm_sets, &self.keys)?;
        let flags = ArmFlags {
            freeze_items: self.freeze_items,
            no_projection: self.no_projection,
            tau: self.keys.shield.tau,
            lora_rank: self.keys.lora_rank,
            tag: self.tag.clone(),
        };
        let arm = Arm::from_flags(&flags, named.as_ref(), cfg.kl_beta);
        paths::check_run_tag(&arm.tag)?;
        Ok((cfg, arm))
    }
}

pub fn run(args: &PpoArgs) -> Result<()> {
    let name: data::DatasetName = args.config.dataset.parse()?;
    let (cfg, arm) = args.configure()?;
    let root = paths::project_root();
    let device = pick_device(&args.device)?;
    let ds = data::store::load(&root, name)?;
    let layout = paths::Layout::new(&root);
    let ranker_dir = dir_of(
        args.ranker_ckpt.as_ref(),
        "sasrec",
        name.as_str(),
        layout.checkpoints(),
    )?;
    let basis_dir = dir_of(
        args.projection_basis.as_ref(),
        "basis",
        name.as_str(),
        layout.checkpoints(),
    )?;
    let (log_dir, ckpt_dir) = (
        layout.run_logs(name.as_str(), &arm.tag),
        layout.ppo_dir(name.as_str(), &arm.tag),
    );
    eprintln!(
        "{name}: arm {} ({:?}), {} steps × {} rollouts on {device:?}; logs in {}",
        arm.tag,
        arm.coupled,
        cfg.max_steps,
        cfg.ppo_batch,
        log_dir.display()
    );
    let places = Places {
        ranker_dir,
        basis_dir,
        ..Places::project(&root, device)
    };
    run_arm(
        &places,
        &ds,
        &cfg,
        &arm,
        &Schedule {
            eval_every: args.eval_every,
            checkpoint_every: args.checkpoint_every,
            resume: args.resume,
            overwrite: args.overwrite,
        },
        |line, samples| {
            eprintln!("{}", recrl_lib::ppo::run::step_line(line));
            if let Some((item, text)) = samples.first() {
                eprintln!("      {item}: {}", text.replace('\n', " "));
            }
        },
    )?;
    eprintln!("saved {}", ckpt_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{parse_from, Cmd};
    use recrl_lib::config::Config;
    use recrl_lib::ppo::arms::Arm;
    use recrl_lib::ppo::Coupled;

    fn ppo(args: &[&str]) -> (Config, Arm) {
        let cli = parse_from(
            std::iter::once("recrl")
                .chain(["ppo"])
                .chain(args.iter().copied()),
        )
        .unwrap();
        let Cmd::Ppo(args) = cli.command else {
            panic!("not ppo")
        };
        args.configure().unwrap()
    }

    #[test]
    fn ppo_flags_pick_the_arm_and_its_tag() {
        let (_, arm) = ppo(&["--no_projection", "--lora_rank", "4", "--kl_beta", "0"]);
        assert_eq!(
            (arm.coupled, arm.tag.as_str()),
            (Coupled::NoProjection, "kl0_lora4")
        );
        let (cfg, arm) = ppo(&["--tau", "0.99", "--freeze_items"]);
        assert_eq!(cfg.shield.tau, 0.99);
        assert_eq!((arm.coupled, arm.tau), (Coupled::Frozen, Some(0.99)));
        assert_eq!(arm.tag, "frozen_tau0.99");
        let (_, arm) = ppo(&["--lora_rank", "4"]);
        assert_eq!(arm.tag, "shielded_lora4");
        let (_, arm) = ppo(&["--tag", "mine", "--no_projection"]);
        assert_eq!(arm.tag, "mine");
    }

    #[test]
    fn ppo_arm_names_set_their_keys_like_the_script_flags_did() {
        // experiments/cpu_runs_ml100k.sh before `--arm`: (name, its flags)
        let cut = ["--set", "epochs=1", "--set", "grad_accum=2"];
        let old_flags: [(&str, &[&str]); 9] = [
            ("shielded", &["--grad_accum", "2"]),
            ("no_proj", &["--no_projection", "--grad_accum", "2"]),
            ("frozen", &["--freeze_items", "--grad_accum", "2"]),
            ("kl0", &["--kl_beta", "0", "--grad_accum", "2"]),
            ("lora4", &["--lora_rank", "4", "--grad_accum", "2"]),
            ("tau0.99", &["--tau", "0.99", "--grad_accum", "2"]),
            ("shielded_g4", &["--grad_accum", "2", "--group_size", "4"]),
            (
                "no_proj_e4",
                &["--set", "epochs=4", "--no_projection", "--grad_accum", "1"],
            ),
            (
                "kl0_g2_e3",
                &[
                    "--set",
                    "epochs=3",
                    "--kl_beta",
                    "0",
                    "--grad_accum",
                    "1",
                    "--group_size",
                    "2",
                ],
            ),
        ];
        for (name, flags) in old_flags {
            let (new_cfg, new_arm) = ppo(&[&cut[..], &["--arm", name][..]].concat());
            let old = [&["--set", "epochs=1", "--tag", name][..], flags].concat();
            let (old_cfg, old_arm) = ppo(&old);
            assert_eq!(new_cfg, old_cfg, "{name}");
            assert_eq!(
                (new_arm.tag.as_str(), new_arm.coupled, new_arm.tau),
                (old_arm.tag.as_str(), old_arm.coupled, old_arm.tau),
                "{name}"
            );
        }
        assert!(parse_from(["recrl", "ppo", "--arm", "nope"])
            .map(|c| match c.command {
                Cmd::Ppo(a) => a.configure().is_err(),
                _ => false,
            })
            .unwrap());
    }
}
