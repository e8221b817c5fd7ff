//! The arms of step 5, one job per file:
//!
//! * here: their names and rules, the tables [`ARMS`] and [`BASELINES`], [`Arm`] (from a name,
//!   [`Arm::named`], or from `recrl ppo`'s flags, [`Arm::from_flags`]) and [`Baseline`];
//! * [`places`]: where an arm's steps read and write ([`Places`], [`dirs`]) and the run settings
//!   of a configuration ([`run_options`], [`Schedule`]);
//! * [`launch`]: running an arm ([`run_arm`], shared by `recrl ppo` and notebook 05) and the
//!   notebooks' helpers that start runs ([`run_arm_shown`], [`prepare`], [`ensure_checkpoint`]);
//! * [`view`]: the per-arm curves and tables of notebook 05.
//!
//! `audit` and `report` use the names, [`places`] and [`view`], never [`launch`] (checked by
//! `recrl-lib/tests/architecture.rs`). Every item is re-exported here (`ppo::arms::run_arm`).

pub mod launch;
pub mod places;
pub mod view;

pub use launch::{ensure_checkpoint, prepare, run_arm, run_arm_shown};
pub use places::{dirs, run_options, Places, Schedule};
pub use view::{curves, quality_curves, samples_table, summary_table, ArmSamples};

use super::run::Coupled;
use crate::config::Config;
use anyhow::Result;

/// One row of [`ARMS`]: a named arm and what it changes against the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmRow {
    /// Name, also the run's tag (`logs/<ds>/<name>/`).
    pub name: &'static str,
    /// How `E` is coupled (`recrl ppo --no_projection`, `--freeze_items`).
    pub coupled: Coupled,
    /// Configuration keys the arm sets, as `--set key=value` would.
    pub sets: &'static [(&'static str, &'static str)],
}

/// The arms of the comparison: `recrl ppo --arm`, notebook 05, `experiments/cpu_runs_ml100k.sh`,
/// and (after `base`, the step-4 checkpoint) the rows `recrl aggregate` expects per dataset.
/// [`Arm::named`] also reads `tau<τ>` (the basis refitted at τ) and the suffixes `_g<G>`
/// (`group_size` G) and `_e<E>` (E PPO epochs of one micro-batch per optimiser step).
pub const ARMS: [ArmRow; 5] = [
    ArmRow {
        name: "shielded",
        coupled: Coupled::Shielded,
        sets: &[],
    },
    ArmRow {
        name: "no_proj",
        coupled: Coupled::NoProjection,
        sets: &[],
    },
    ArmRow {
        name: "frozen",
        coupled: Coupled::Frozen,
        sets: &[],
    },
    ArmRow {
        name: "kl0",
        coupled: Coupled::Shielded,
        sets: &[("kl_beta", "0")],
    },
    ArmRow {
        name: "lora4",
        coupled: Coupled::Shielded,
        sets: &[("lora_rank", "4")],
    },
];

/// An explainer without RL, audited on the same held-out panel as every RL arm (docs/design.md
/// §8.5): the rows of [`BASELINES`]. None of them trains; all read step 4's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Step 4's explainer (LoRA at B = 0, initial `W_p`), sampled like an arm.
    Base,
    /// Step 4's explainer with prompts without soft item tokens.
    BaseNoSoft,
    /// A fixed sentence filled from the metadata (`judge::template`), no model.
    Template,
    /// For each panel reply, the best by the training reward of `audit.best_of` fresh samples of
    /// `base`: G× the samples of an arm at evaluation, none at training.
    BestOfN,
}

/// The baselines by name (their tags), with what each is.
pub const BASELINES: [(Baseline, &str, &str); 4] = [
    (
        Baseline::Base,
        crate::paths::BASE_TAG,
        "step 4's explainer (LoRA at B = 0, initial W_p and E), no RL",
    ),
    (
        Baseline::BaseNoSoft,
        "base_no_soft",
        "step 4's explainer with prompts without soft item tokens, no RL",
    ),
    (
        Baseline::Template,
        "template",
        "a fixed sentence filled from the catalogue (judge::template), no model",
    ),
    (
        Baseline::BestOfN,
        "best_of_n",
        "best of audit.best_of fresh base samples per reply by the training reward (G x an arm's samples at evaluation, none at training)",
    ),
];

impl Baseline {
    /// The baseline whose tag is `tag`, if any.
    pub fn named(tag: &str) -> Option<Baseline> {
        BASELINES.iter().find(|b| b.1 == tag).map(|b| b.0)
    }

    /// Its tag.
    pub fn name(self) -> &'static str {
        BASELINES.iter().find(|b| b.0 == self).map_or("", |b| b.1)
    }

    /// What it is.
    pub fn describe(self) -> &'static str {
        BASELINES.iter().find(|b| b.0 == self).map_or("", |b| b.2)
    }
}

/// One arm of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Run name (`logs/<ds>/<tag>/`).
    pub tag: String,
    /// How `E` is coupled.
    pub coupled: Coupled,
    /// Refit the basis at this τ instead of loading `checkpoints/basis_<ds>` (τ sweep).
    pub tau: Option<f64>,
    /// Configuration keys the arm sets (`("kl_beta", "0")`), applied by [`Arm::configure`].
    pub sets: Vec<(String, String)>,
}

impl Arm {
    /// The arm called `name`: a row of [`ARMS`] or `tau<τ>` (e.g. `tau0.99`, which also sets
    /// `shield.tau`), then optionally `_grpo` or `_ppo` (set `algorithm`; `_ppo` without `_g<G>`
    /// also sets `group_size` 1, the value head), `_g<G>` (sets
    /// `group_size`), `_e<E>` (sets `epochs` to E and `grad_accum` to 1) and `_s<S>` (sets
    /// `seed`), in this order, e.g. `shielded_grpo_g4_s2`. The tag is `name`; [`Arm::base_name`]
    /// is the name without `_s<S>` (the arm that seeds repeat).
    pub fn named(name: &str) -> Result<Arm> {
        let (rest, seed) = numbered_suffix(name, "_s");
        let (rest, epochs) = numbered_suffix(rest, "_e");
        let (rest, group) = numbered_suffix(rest, "_g");
        let (base, algorithm) = algorithm_suffix(rest);
        let mut arm = Arm::base(base)?;
        arm.tag = name.to_string();
        if let Some(a) = algorithm {
            arm.sets.push(("algorithm".into(), a.into()));
        }
        match (group, algorithm) {
            (Some(g), _) => arm.sets.push(("group_size".into(), g.into())),
            // PPO with the value head: one rollout per prompt unless `_g<G>` says otherwise.
            (None, Some("ppo")) => arm.sets.push(("group_size".into(), "1".into())),
            _ => {}
        }
        if let Some(e) = epochs {
            arm.sets.push(("epochs".into(), e.into()));
            arm.sets.push(("grad_accum".into(), "1".into()));
        }
        if let Some(seed) = seed {
            arm.sets.push(("seed".into(), seed.into()));
        }
        Ok(arm)
    }

    /// `tag` without a final `_s<S>`: the arm a seeded run repeats (`shielded_s2` → `shielded`).
    pub fn base_name(tag: &str) -> &str {
        numbered_suffix(tag, "_s").0
    }

    /// `tag` without any of the suffixes [`Arm::named`] reads (`_grpo`/`_ppo`, `_g<G>`,
    /// `_e<E>`, `_s<S>`): the row of [`ARMS`] (or `tau<τ>`) it is a variant of
    /// (`shielded_grpo_g4_s2` → `shielded`).
    pub fn family(tag: &str) -> &str {
        let rest = numbered_suffix(tag, "_s").0;
        let rest = numbered_suffix(rest, "_e").0;
        let rest = numbered_suffix(rest, "_g").0;
        algorithm_suffix(rest).0
    }

    /// A row of [`ARMS`], or `tau<τ>`.
    fn base(name: &str) -> Result<Arm> {
        if let Some(row) = ARMS.iter().find(|r| r.name == name) {
            return Ok(Arm {
                tag: name.to_string(),
                coupled: row.coupled,
                tau: None,
                sets: row
                    .sets
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
        let Some(tau) = name.strip_prefix("tau") else {
            let names: Vec<&str> = ARMS.iter().map(|r| r.name).collect();
            anyhow::bail!(
                "unknown arm {name:?}: {}, tau<τ>, each with optional _grpo or _ppo, _g<G>, _e<E> and _s<seed>",
                names.join(", ")
            );
        };
        let value: f64 = tau
            .parse()
            .map_err(|_| anyhow::anyhow!("arm {name}: expected tau<number>, e.g. tau0.99"))?;
        Ok(Arm {
            tag: name.to_string(),
            coupled: Coupled::Shielded,
            tau: Some(value),
            sets: vec![("shield.tau".into(), tau.into())],
        })
    }

    /// `cfg` with the arm's keys set (e.g. `kl_beta: 0` for `kl0`).
    pub fn configure(&self, cfg: &Config) -> Result<Config> {
        cfg.with_sets(&self.sets)
    }
}

/// What `recrl ppo`'s flags say about the arm besides `--arm` (the seed's names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmFlags {
    /// `--freeze_items`: keep `E` frozen (the control arm).
    pub freeze_items: bool,
    /// `--no_projection`: train `E` without the shield.
    pub no_projection: bool,
    /// `--tau`: refit the basis at this τ.
    pub tau: Option<f64>,
    /// `--lora_rank`, which the tag of a run without a name mentions.
    pub lora_rank: Option<usize>,
    /// `--tag`: the run's name.
    pub tag: Option<String>,
}

impl Arm {
    /// The arm a run set up on the command line runs: `named` (from `--arm`) or the flags' own,
    /// changed by `--freeze_items`, `--no_projection` and `--tau`; its tag is `--tag`, else the
    /// name, else [`tag_for`] the flags (with the resolved configuration's `kl_beta`).
    pub fn from_flags(flags: &ArmFlags, named: Option<&Arm>, kl_beta: f64) -> Arm {
        let coupled = match (flags.freeze_items, flags.no_projection, named) {
            (true, _, _) => Coupled::Frozen,
            (false, true, _) => Coupled::NoProjection,
            (false, false, Some(a)) => a.coupled,
            (false, false, None) => Coupled::Shielded,
        };
        let tau = flags.tau.or(named.and_then(|a| a.tau));
        let tag = match (&flags.tag, named) {
            (Some(t), _) => t.clone(),
            (None, Some(a)) => a.tag.clone(),
            (None, None) => tag_for(coupled, kl_beta, tau, flags.lora_rank),
        };
        Arm {
            tag,
            coupled,
            tau,
            sets: named.map_or_else(Vec::new, |a| a.sets.clone()),
        }
    }
}

/// `name` split into the part before a final `_grpo` or `_ppo` and that algorithm, if it ends so.
fn algorithm_suffix(name: &str) -> (&str, Option<&'static str>) {
    for algorithm in ["grpo", "ppo"] {
        if let Some(head) = name.strip_suffix(&format!("_{algorithm}")) {
            if !head.is_empty() {
                return (head, Some(algorithm));
            }
        }
    }
    (name, None)
}

/// `name` split into the part before a final `<suffix><digits>` and the digits, if it ends so.
fn numbered_suffix<'a>(name: &'a str, suffix: &str) -> (&'a str, Option<&'a str>) {
    match name.rsplit_once(suffix) {
        Some((head, n))
            if !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (head, Some(n))
        }
        _ => (name, None),
    }
}

/// The tag of a run set up by flags rather than by an arm's name (`recrl ppo` without `--arm`
/// or `--tag`): the coupling's arm in [`ARMS`] (`kl0` instead when `kl_beta` is 0), then
/// `_tau<τ>` when the basis is refitted and `_lora<r>` when the rank is given.
pub fn tag_for(
    coupled: Coupled,
    kl_beta: f64,
    tau: Option<f64>,
    lora_rank: Option<usize>,
) -> String {
    let plain = |row: &&ArmRow| row.coupled == coupled && row.sets.is_empty();
    let kl0 = |row: &&ArmRow| row.sets == [("kl_beta", "0")];
    let row = if kl_beta == 0.0 {
        ARMS.iter().find(kl0)
    } else {
        ARMS.iter().find(plain)
    };
    let mut tag = row
        .expect("ARMS has a plain row per coupling and a kl0 row")
        .name
        .to_string();
    if let Some(tau) = tau {
        tag.push_str(&format!("_tau{tau}"));
    }
    if let Some(r) = lora_rank {
        tag.push_str(&format!("_lora{r}"));
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, EMBEDDED_YAML};

    fn sets(arm: &Arm) -> Vec<(&str, &str)> {
        arm.sets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn the_table_names_the_five_arms_of_the_comparison() {
        let names: Vec<&str> = ARMS.iter().map(|r| r.name).collect();
        assert_eq!(names, ["shielded", "no_proj", "frozen", "kl0", "lora4"]);
        for row in ARMS {
            let arm = Arm::named(row.name).unwrap();
            assert_eq!(
                (arm.tag.as_str(), arm.coupled, arm.tau),
                (row.name, row.coupled, None)
            );
            assert_eq!(sets(&arm), row.sets);
        }
        assert_eq!(
            Arm::named("no_proj").unwrap().coupled,
            Coupled::NoProjection
        );
        assert_eq!(Arm::named("frozen").unwrap().coupled, Coupled::Frozen);
        assert_eq!(sets(&Arm::named("kl0").unwrap()), [("kl_beta", "0")]);
        assert_eq!(sets(&Arm::named("lora4").unwrap()), [("lora_rank", "4")]);
    }

    #[test]
    fn tau_arms_refit_the_basis_and_suffixes_add_keys() {
        let tau = Arm::named("tau0.99").unwrap();
        assert_eq!((tau.coupled, tau.tau), (Coupled::Shielded, Some(0.99)));
        assert_eq!(sets(&tau), [("shield.tau", "0.99")]);
        let arm = Arm::named("no_proj_g4_e3").unwrap();
        assert_eq!(
            (arm.tag.as_str(), arm.coupled),
            ("no_proj_g4_e3", Coupled::NoProjection)
        );
        assert_eq!(
            sets(&arm),
            [("group_size", "4"), ("epochs", "3"), ("grad_accum", "1")]
        );
        assert_eq!(sets(&Arm::named("kl0_e2").unwrap())[0], ("kl_beta", "0"));
        assert_eq!(
            sets(&Arm::named("shielded_g8").unwrap()),
            [("group_size", "8")]
        );
        let seeded = Arm::named("shielded_grpo_g4_s3").unwrap();
        assert_eq!(
            sets(&seeded),
            [("algorithm", "grpo"), ("group_size", "4"), ("seed", "3")]
        );
        assert_eq!(seeded.coupled, Coupled::Shielded);
        assert_eq!(
            sets(&Arm::named("no_proj_ppo_s2").unwrap()),
            [("algorithm", "ppo"), ("group_size", "1"), ("seed", "2")]
        );
        assert_eq!(
            sets(&Arm::named("shielded_ppo_g4").unwrap()),
            [("algorithm", "ppo"), ("group_size", "4")]
        );
        assert_eq!(Arm::base_name("no_proj_s12"), "no_proj");
        assert_eq!(Arm::base_name("tau0.99"), "tau0.99");
        for (tag, family) in [
            ("shielded_grpo_g4_s2", "shielded"),
            ("no_proj_ppo_s1", "no_proj"),
            ("kl0_e4", "kl0"),
            ("tau0.99_grpo_g4_s3", "tau0.99"),
            ("lora4", "lora4"),
            ("mine_s", "mine_s"),
        ] {
            assert_eq!(Arm::family(tag), family, "{tag}");
        }
        assert_eq!(sets(&Arm::named("frozen_s2").unwrap()), [("seed", "2")]);
        for bad in [
            "nope",
            "tau",
            "taux",
            "shielded_e4_g4",
            "shielded_e",
            "_e4",
            "_grpo",
            "_ppo",
            "shielded_s2_g4",
        ] {
            assert!(Arm::named(bad).is_err(), "{bad}");
        }
        let err = Arm::named("nope").unwrap_err().to_string();
        assert!(
            err.contains("shielded, no_proj, frozen, kl0, lora4"),
            "{err}"
        );
    }

    #[test]
    fn configure_sets_the_arms_keys() {
        let cfg =
            Config::from_yaml_str(EMBEDDED_YAML, "test", "ml-100k", &Overrides::default()).unwrap();
        assert_eq!(
            Arm::named("shielded").unwrap().configure(&cfg).unwrap(),
            cfg
        );
        assert_eq!(
            Arm::named("kl0").unwrap().configure(&cfg).unwrap().kl_beta,
            0.0
        );
        assert_eq!(
            Arm::named("lora4")
                .unwrap()
                .configure(&cfg)
                .unwrap()
                .lora_rank,
            4
        );
        let e = Arm::named("frozen_g2_e4").unwrap().configure(&cfg).unwrap();
        assert_eq!((e.group_size, e.epochs, e.grad_accum), (2, 4, 1));
        assert_eq!(
            Arm::named("tau0.9")
                .unwrap()
                .configure(&cfg)
                .unwrap()
                .shield
                .tau,
            0.9
        );
    }

    #[test]
    fn flag_runs_are_tagged_after_their_arm() {
        assert_eq!(tag_for(Coupled::Shielded, 0.05, None, None), "shielded");
        assert_eq!(tag_for(Coupled::NoProjection, 0.05, None, None), "no_proj");
        assert_eq!(
            tag_for(Coupled::Frozen, 0.05, Some(0.99), None),
            "frozen_tau0.99"
        );
        assert_eq!(
            tag_for(Coupled::NoProjection, 0.0, None, Some(4)),
            "kl0_lora4"
        );
        assert_eq!(
            tag_for(Coupled::Shielded, 0.05, None, Some(4)),
            "shielded_lora4"
        );
    }

    #[test]
    fn flags_pick_the_arm_and_its_tag() {
        let kl0 = ArmFlags {
            no_projection: true,
            lora_rank: Some(4),
            ..ArmFlags::default()
        };
        let arm = Arm::from_flags(&kl0, None, 0.0);
        assert_eq!(
            (arm.coupled, arm.tag.as_str(), arm.tau),
            (Coupled::NoProjection, "kl0_lora4", None)
        );
        let frozen = ArmFlags {
            freeze_items: true,
            no_projection: true,
            tau: Some(0.99),
            ..ArmFlags::default()
        };
        let arm = Arm::from_flags(&frozen, None, 0.05);
        assert_eq!((arm.coupled, arm.tau), (Coupled::Frozen, Some(0.99)));
        assert_eq!(arm.tag, "frozen_tau0.99");
        let rank = ArmFlags {
            lora_rank: Some(4),
            ..ArmFlags::default()
        };
        assert_eq!(Arm::from_flags(&rank, None, 0.05).tag, "shielded_lora4");
        let mine = ArmFlags {
            tag: Some("mine".into()),
            no_projection: true,
            ..ArmFlags::default()
        };
        let arm = Arm::from_flags(&mine, None, 0.05);
        assert_eq!(
            (arm.coupled, arm.tag.as_str()),
            (Coupled::NoProjection, "mine")
        );
        assert!(arm.sets.is_empty());
    }

    #[test]
    fn flags_change_a_named_arm_and_its_name_is_the_tag() {
        let kl0 = Arm::named("kl0_s2").unwrap();
        let plain = Arm::from_flags(&ArmFlags::default(), Some(&kl0), 0.0);
        assert_eq!(plain, kl0);
        let frozen = ArmFlags {
            freeze_items: true,
            lora_rank: Some(8),
            ..ArmFlags::default()
        };
        let arm = Arm::from_flags(&frozen, Some(&kl0), 0.0);
        assert_eq!(
            (arm.coupled, arm.tag.as_str(), sets(&arm)),
            (
                Coupled::Frozen,
                "kl0_s2",
                vec![("kl_beta", "0"), ("seed", "2")]
            )
        );
        let tau = Arm::named("tau0.99").unwrap();
        let arm = Arm::from_flags(&ArmFlags::default(), Some(&tau), 0.05);
        assert_eq!((arm.tau, arm.coupled), (Some(0.99), Coupled::Shielded));
        let refit = ArmFlags {
            tau: Some(0.9),
            tag: Some("mine".into()),
            ..ArmFlags::default()
        };
        let arm = Arm::from_flags(&refit, Some(&tau), 0.05);
        assert_eq!((arm.tau, arm.tag.as_str()), (Some(0.9), "mine"));
        assert_eq!(sets(&arm), [("shield.tau", "0.99")]);
    }
}
