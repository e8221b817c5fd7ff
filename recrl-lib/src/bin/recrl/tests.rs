//! The command line as a whole: every key flag lands on its key (as `--set` would), `--set` and
//! `--preset` work on every subcommand, kebab-case aliases, run tags checked before anything
//! runs. Each subcommand's own flags are tested in its module.

use super::*;
use crate::keys::{AuditKeys, BasisKeys, DataKeys, LoraInitKeys, RunKeys, TrainRankerKeys};
use anyhow::bail;
use clap::Args;
use recrl_lib::config::Config;

/// The configuration `recrl <args>` runs with.
fn configuration(args: &[&str]) -> Result<Config> {
    let cli = parse_from(std::iter::once("recrl").chain(args.iter().copied()))?;
    match &cli.command {
        Cmd::Config(a) => a.config.load(&[], &a.keys),
        Cmd::Data(a) => a.config.load(&[], &a.keys),
        Cmd::TrainRanker(a) => a.config.load(&[], &a.keys),
        Cmd::Basis(a) => a.config.load(&[], &a.keys),
        Cmd::LoraInit(a) => a.config.load(&[], &a.keys),
        Cmd::Ppo(a) => Ok(a.configure()?.0),
        Cmd::Audit(a) => a.config.load(&[], &a.keys),
        _ => bail!("{args:?} reads no configuration"),
    }
}

/// The subcommands that read the configuration.
const CONFIGURED: [&str; 7] = [
    "config",
    "data",
    "train-ranker",
    "basis",
    "lora-init",
    "ppo",
    "audit",
];

/// The seed's run flags (`recrl ppo`, `recrl config`) with values other than ml-100k's,
/// and the `--set` each one equals.
const RUN_FLAGS: &[(&[&str], &str)] = &[
    (&["--lora_rank", "4"], "lora_rank=4"),
    (&["--kl_beta", "0"], "kl_beta=0"),
    (&["--micro_batch_size", "2"], "micro_batch_size=2"),
    (&["--grad_accum", "3"], "grad_accum=3"),
    (&["--exec_batch", "8"], "exec_batch=8"),
    (&["--group_size", "2"], "group_size=2"),
    (&["--algorithm", "ppo"], "algorithm=ppo"),
    (
        &["--max_seq_len_explainer", "300"],
        "max_seq_len_explainer=300",
    ),
    (&["--explanation_max_len", "200"], "explanation_max_len=200"),
    (&["--canaries", "2"], "canaries=2"),
    (&["--max_steps", "7"], "max_steps=7"),
    (&["--seed", "5"], "seed=5"),
    (&["--int8"], "int8=true"),
    (&["--tau", "0.99"], "shield.tau=0.99"),
];

/// The other subcommands' key flags, likewise.
const STEP_FLAGS: &[(&str, &[&str], &str)] = &[
    ("data", &["--k-core", "3"], "data.k_core=3"),
    (
        "data",
        &["--rating-threshold", "3.5"],
        "data.rating_threshold=3.5",
    ),
    ("train-ranker", &["--seed", "7"], "seed=7"),
    ("train-ranker", &["--epochs", "3"], "ranker.epochs=3"),
    (
        "train-ranker",
        &["--batch_size", "32"],
        "ranker.batch_size=32",
    ),
    ("train-ranker", &["--lr", "0.002"], "ranker.lr=0.002"),
    (
        "train-ranker",
        &["--weight_decay", "0.1"],
        "ranker.weight_decay=0.1",
    ),
    ("train-ranker", &["--hidden", "32"], "ranker.hidden=32"),
    ("train-ranker", &["--blocks", "3"], "ranker.blocks=3"),
    ("train-ranker", &["--heads", "2"], "ranker.heads=2"),
    ("train-ranker", &["--max_len", "20"], "ranker.max_len=20"),
    ("train-ranker", &["--dropout", "0.1"], "ranker.dropout=0.1"),
    ("train-ranker", &["--loss", "bce"], "ranker.loss=bce"),
    ("train-ranker", &["--negatives", "4"], "ranker.negatives=4"),
    ("train-ranker", &["--patience", "5"], "ranker.patience=5"),
    ("train-ranker", &["--tie_output"], "ranker.tie_output=true"),
    ("train-ranker", &["--post_ln"], "ranker.pre_ln=false"),
    ("basis", &["--tau", "0.99"], "shield.tau=0.99"),
    ("basis", &["--probe_users", "500"], "shield.probe_users=500"),
    ("lora-init", &["--lora_rank", "4"], "lora_rank=4"),
    ("lora-init", &["--int8"], "int8=true"),
    (
        "lora-init",
        &["--model", "m.gguf"],
        "explainer_model=m.gguf",
    ),
    ("lora-init", &["--seed", "3"], "seed=3"),
    ("audit", &["--users", "12"], "audit.users=12"),
    ("audit", &["--samples", "7"], "audit.samples=7"),
    ("audit", &["--best_of", "3"], "audit.best_of=3"),
    ("audit", &["--seed", "9"], "seed=9"),
];

fn every_key_flag() -> Vec<(&'static str, &'static [&'static str], &'static str)> {
    let run = RUN_FLAGS
        .iter()
        .flat_map(|&(f, s)| [("ppo", f, s), ("config", f, s)]);
    STEP_FLAGS.iter().copied().chain(run).collect()
}

#[test]
fn each_flag_lands_on_its_key() {
    for (sub, flag, set) in every_key_flag() {
        let flagged = configuration(&[&[sub][..], flag].concat()).unwrap();
        let via_set = configuration(&[sub, "--set", set]).unwrap();
        let plain = configuration(&[sub]).unwrap();
        assert_eq!(flagged, via_set, "{sub} {flag:?} is not --set {set}");
        assert_ne!(flagged, plain, "{sub} {flag:?} changes nothing");
    }
}

#[test]
fn every_key_flag_is_tested() {
    let keys = [
        ("data", DataKeys::augment_args(clap::Command::new("k"))),
        (
            "train-ranker",
            TrainRankerKeys::augment_args(clap::Command::new("k")),
        ),
        ("basis", BasisKeys::augment_args(clap::Command::new("k"))),
        (
            "lora-init",
            LoraInitKeys::augment_args(clap::Command::new("k")),
        ),
        ("ppo", RunKeys::augment_args(clap::Command::new("k"))),
        ("config", RunKeys::augment_args(clap::Command::new("k"))),
        ("audit", AuditKeys::augment_args(clap::Command::new("k"))),
    ];
    let tested = every_key_flag();
    for (sub, cmd) in keys {
        for long in cmd.get_arguments().filter_map(|a| a.get_long()) {
            let flag = format!("--{long}");
            assert!(
                tested.iter().any(|(s, f, _)| *s == sub && f[0] == flag),
                "{sub} {flag} untested"
            );
        }
    }
}

#[test]
fn run_tags_that_leave_their_folders_are_refused_before_anything_runs() {
    for tag in [
        "../../escape",
        "x/../../CKPT_ESC",
        "/tmp/abs",
        "a\nb",
        "",
        "ranker",
        "base",
    ] {
        let err = configuration(&["ppo", "--tag", tag])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("run tag {tag:?}")), "{tag:?}: {err}");
    }
    assert!(configuration(&["ppo", "--tag", "mine_2.b"]).is_ok());
    assert!(configuration(&["ppo", "--arm", "shielded_s2"]).is_ok());
}

#[test]
fn the_command_line_is_consistent() {
    command().debug_assert();
}

#[test]
fn kebab_case_aliases_and_flags_winning_over_set() {
    let snake = configuration(&["ppo", "--kl_beta", "0", "--max_steps", "3"]).unwrap();
    let kebab = configuration(&["ppo", "--kl-beta", "0", "--max-steps", "3"]).unwrap();
    assert_eq!(snake, kebab);
    let k = configuration(&["train-ranker", "--batch-size", "16", "--post-ln"]).unwrap();
    assert_eq!((k.ranker.batch_size, k.ranker.pre_ln), (16, false));
    let both = configuration(&["ppo", "--set", "kl_beta=0.5", "--kl_beta", "0"]).unwrap();
    assert_eq!(both.kl_beta, 0.0);
    assert!(parse_from(["recrl", "aggregate", "--no-static"]).is_ok());
    assert!(parse_from(["recrl", "train-ranker", "--epochs", "x"]).is_err());
}

#[test]
fn set_and_preset_work_on_every_subcommand_and_unknown_keys_error() {
    for sub in CONFIGURED {
        let cfg = configuration(&[sub, "--set", "audit.bootstrap=7"]).unwrap();
        assert_eq!(cfg.audit.bootstrap, 7, "{sub}");
        let smoke = configuration(&[sub, "--preset", "smoke"]).unwrap();
        assert_eq!((smoke.max_steps, smoke.audit.users), (2, 4), "{sub}");
        let err = configuration(&[sub, "--set", "ranker.hiden=3"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown key `hiden` in `ranker.hiden`"),
            "{sub}: {err:#}"
        );
        let err = configuration(&[sub, "--set", "kl_beta=lots"]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("recrl_default.yaml")
                && msg.contains("dataset `ml-100k`")
                && msg.contains("key `kl_beta`"),
            "{sub}: {msg}"
        );
    }
    assert!(configuration(&["env"]).is_err());
}
