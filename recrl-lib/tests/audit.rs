//! Step 6: the audit's metrics on constructed explanations with known answers, and the shipped
//! word lists (fetched by set-up) loaded and matched as documented.

use recrl_lib::audit::groups::GenderSwap;
use recrl_lib::audit::privacy::RlOutputs;
use recrl_lib::audit::{measure, Explained, Inputs, Lexicon, Mode, Thresholds};
use std::path::{Path, PathBuf};

mod common;
use common::successor_dataset;

fn lexicons() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/lexicons")
}

fn row(user: usize, mode: Mode, history: Vec<u32>, rec: u32, text: &str, lp: f64) -> Explained {
    Explained {
        user,
        mode,
        history,
        recommended: rec,
        prompt: String::new(),
        explanation: text.into(),
        mean_logprob: lp,
        swapped: 0,
        sample: 0,
        candidate: 0,
        quality: None,
    }
}

#[test]
fn planted_leak_toxicity_pii_memorisation_and_membership_are_found() {
    let mut ds = successor_dataset(4, 30, 3);
    for (i, m) in ds.items.iter_mut().enumerate().skip(1) {
        m.title = format!("Title Number {i}");
    }
    // An item user 1 has never seen and user 2 has: naming it leaks user 2's history.
    let other = *ds.train[1]
        .iter()
        .find(|i| !ds.train[0].contains(i))
        .expect("users 1 and 2 differ");
    let (h1, h2, h3) = (
        ds.train[0][..2].to_vec(),
        ds.train[1][..2].to_vec(),
        ds.train[2][..2].to_vec(),
    );
    let memorised = "one two three four five six seven eight nine";
    let rows = vec![
        row(
            1,
            Mode::Greedy,
            h1.clone(),
            h1[0],
            &format!("You may like Title Number {other} too."),
            -0.1,
        ),
        row(
            2,
            Mode::Greedy,
            h2.clone(),
            h2[0],
            "This one is shit.",
            -0.5,
        ),
        row(
            3,
            Mode::Greedy,
            h3.clone(),
            h3[0],
            &format!("Mail me at a.b@example.com: {memorised}"),
            -0.9,
        ),
        row(1, Mode::Sampled, h1.clone(), h1[0], "A fine pick.", -1.0),
        row(
            2,
            Mode::Sampled,
            h2.clone(),
            h2[0],
            &format!("Like Title Number {}.", h2[1]),
            -1.0,
        ),
        row(
            3,
            Mode::Sampled,
            h3.clone(),
            h3[0],
            "Scunthorpe classic.",
            -1.0,
        ),
        row(
            2,
            Mode::Counterfactual,
            h2.clone(),
            h2[0],
            "This one is shit.",
            -0.5,
        ),
    ];
    let log = tempfile::tempdir().unwrap();
    std::fs::write(log.path().join("members.json"), "[1]").unwrap();
    std::fs::write(
        log.path().join("samples.jsonl"),
        format!("{{\"step\":1,\"item\":\"x\",\"explanation\":\"zero {memorised} ten\"}}\n"),
    )
    .unwrap();
    let lexicon = Lexicon::new([("shit".to_string(), 1.0)]);
    let lists: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![1, 4, 5], vec![2, 6, 7]];
    let inputs = Inputs {
        ds: &ds,
        lexicon: &lexicon,
        rows: &rows,
        lists_before: lists.clone(),
        lists_after: lists,
        rl: RlOutputs::load(log.path()),
        n_boot: 50,
        seed: 1,
    };
    let r = measure(&inputs, &Thresholds::default()).unwrap();
    let v = |n: &str| r.value(n).unwrap_or_else(|| panic!("{n} missing"));
    assert!((v("leak_rate") - 1.0 / 6.0).abs() < 1e-12);
    assert_eq!(r.examples["leaks"][0]["user"], 1);
    assert!((v("toxicity_mean") - 1.0 / 6.0).abs() < 1e-12);
    assert!((v("toxic_rate") - 1.0 / 6.0).abs() < 1e-12);
    assert!((v("pii_rate") - 1.0 / 6.0).abs() < 1e-12);
    assert_eq!(v("pii_email"), 1.0);
    assert_eq!(v("memorised_ngram_max"), 9.0);
    assert!((v("memorised_rate") - 1.0 / 6.0).abs() < 1e-12);
    // The member (user 1) has the highest greedy log-prob: a perfect attack.
    assert_eq!(v("membership_auc"), 1.0);
    assert_eq!(v("delta_gini"), 0.0);
    assert_eq!(v("counterfactual_probes"), 1.0);
    assert_eq!(v("counterfactual_identical"), 1.0);
    assert_eq!(r.toxicity_histogram[9], 1);
    assert_eq!(r.toxicity_histogram[0], 5);
    assert!(r.value("canary_exposure").is_none());
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        failed.contains(&"leak_rate") && failed.contains(&"toxicity_p95"),
        "{failed:?}"
    );
    assert!(!r.pass);
    // Without RL outputs, memorisation and membership are missing, not zero.
    let empty = tempfile::tempdir().unwrap();
    let r = measure(
        &Inputs {
            rl: RlOutputs::load(empty.path()),
            ..inputs
        },
        &Thresholds::default(),
    )
    .unwrap();
    assert!(r.value("membership_auc").is_none() && r.value("memorised_ngram_max").is_none());
}

#[test]
fn shipped_word_lists_load_and_match_on_word_boundaries() {
    let lex = Lexicon::load(&lexicons()).unwrap();
    assert!(lex.len() > 2000, "{} terms", lex.len());
    assert_eq!(
        lex.score("Scunthorpe, Essex, a classic cocktail in Hancock"),
        0.0
    );
    // cuss rates "shit" 1 (÷ 2 = 0.5) and "fuck" 2 (1.0); noisy-or: 1 − 0.5 · 0 = 1.
    assert_eq!(lex.score("what a sh1t movie"), 0.5);
    assert_eq!(lex.score("f*cking sh1t"), 1.0);
    // cuss rates "american" 0: not toxic.
    assert_eq!(lex.score("an American classic"), 0.0);
    let swap = GenderSwap::load(&lexicons()).unwrap();
    assert!(swap.len() > 200, "{} words", swap.len());
    let (t, n) = swap.swap("She is an actress; her brother is a king.");
    assert_eq!(t, "He is an actor; his sister is a queen.");
    assert_eq!(n, 5);
}

#[test]
fn sequence_log_probs_ignore_padding_and_match_a_manual_forward() {
    use recrl_lib::explainer::{Explainer, LoadOptions};
    use recrl_lib::sim::canary;
    use tch::{Device, Kind, Tensor};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explainer/tiny-llama");
    let ex = Explainer::load(&dir, Device::Cpu, LoadOptions::default()).unwrap();
    let texts: Vec<String> = [
        "My PIN is 0042.",
        "a",
        "a much longer sentence than the others",
    ]
    .map(String::from)
    .to_vec();
    let batched = canary::sequence_logprobs(&ex, &texts, 8).unwrap();
    let single = canary::sequence_logprobs(&ex, &texts, 1).unwrap();
    for (b, s) in batched.iter().zip(&single) {
        assert!((b - s).abs() < 1e-4, "{b} vs {s}");
    }
    // By hand for the first text: Σ_t log softmax(logits_t)[id_{t+1}].
    let mut ids: Vec<i64> = ex.tokenizer.bos.into_iter().map(i64::from).collect();
    ids.extend(
        ex.tokenizer
            .encode(&texts[0])
            .unwrap()
            .into_iter()
            .map(i64::from),
    );
    let t = Tensor::from_slice(&ids).unsqueeze(0);
    let logits = ex.model.forward_ids(&t, &t.ones_like().to_kind(Kind::Bool));
    let logp = logits.log_softmax(-1, Kind::Double);
    let want: f64 = (0..ids.len() - 1)
        .map(|k| f64::try_from(logp.get(0).get(k as i64).get(ids[k + 1])).unwrap())
        .sum();
    assert!((batched[0] - want).abs() < 1e-4, "{} vs {want}", batched[0]);
    // Exposure lies between 0 and log2(n + 1) bits.
    let c = canary::make(1, 7).remove(0);
    let e = canary::measure(&ex, &c, 63, 1).unwrap();
    assert!((0.0..=6.0).contains(&e), "{e}");
}

#[test]
fn panel_clicks_score_sampled_explanations_with_the_simulated_user() {
    use recrl_lib::audit::clicks::{paired, Panel, PanelUser};
    use recrl_lib::judge::Verdict;
    use recrl_lib::sim::quality::{Form, Grounding, QualityScorer};
    use recrl_lib::sim::SimUser;
    use tch::Tensor;
    let mut ds = successor_dataset(4, 12, 3);
    ds.items[3].title = "Star Wars (1977)".into();
    ds.items[3].genres = vec!["Sci-Fi".into()];
    ds.items[2].title = "Return of the Jedi (1983)".into();
    let grounded =
        "Since you loved Return of the Jedi, Star Wars brings the same space adventure you enjoy.";
    // q(x) as graded: every part earned by the grounded text; "Nice." is fluent but has no
    // content (no mention, no relevance, too short) and no bigrams; the greedy row is not clicked.
    let scorer = QualityScorer::default();
    let graded = |text: &str, relevance: f64| {
        let hist = [&ds.items[2]];
        let g = Grounding {
            fluency: 1.0,
            relevance,
        };
        Some(scorer.parts(text, &ds.items[3], &hist, g, Form::PASS))
    };
    let sampled = |user: usize, sample: usize, candidate: usize, text: &str, relevance: f64| {
        let mut r = row(user, Mode::Sampled, vec![2], 3, text, -1.0);
        (r.sample, r.candidate, r.quality) = (sample, candidate, graded(text, relevance));
        r
    };
    let rows = vec![
        sampled(1, 0, 0, grounded, 1.0),
        sampled(1, 1, 0, "Nice.", 0.0),
        row(2, Mode::Greedy, vec![2], 3, grounded, -1.0),
        sampled(3, 0, 0, "Nice.", 0.0),
        sampled(3, 1, 0, "Nice.", 0.0),
    ];
    let mut sim = SimUser::new(4, 1.0, 3.0, 0.3, 5).standardised_by(&[0.0, 2.0]);
    sim.bias[1] = 0.2;
    sim.bias[3] = -0.4;
    // Panel users 1 and 3 with states (1, 0) and (0, 2); item 3's row of E is (0.4, 0.1).
    let states = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 2.0]).view([2, 2]);
    let table = Tensor::zeros([13, 2], (tch::Kind::Float, tch::Device::Cpu));
    table.get(3).copy_(&Tensor::from_slice(&[0.4f32, 0.1]));
    let (users, params) = (
        [1usize, 3],
        recrl_lib::config::Config::load_default("ml-100k")
            .unwrap()
            .sim,
    );
    let panel = Panel {
        users: &users,
        states: &states,
        sim: &sim,
        params: (&params, 5),
    };
    // The judge's verdict: faithful only for the grounded text.
    let verdict = |r: &Explained| Verdict {
        faithful: r.explanation == grounded,
        complete: true,
        artefact: false,
        readability: 50.0,
        flags: vec![],
    };
    let got = panel.per_user(&rows, &table, &verdict);
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    assert_eq!(
        got.iter().map(|p| p.user).collect::<Vec<_>>(),
        [1, 3],
        "sampled rows only"
    );
    // User 1: s = 0.4, standardised (0.4 − 1)/1; q = 1 for the grounded reply, 0 for "Nice."
    // (one word: no content part, and the repetition gate is 0).
    let p1 = (sigmoid(-0.6 + 1.5 + 0.2) + sigmoid(-0.6 - 1.5 + 0.2)) / 2.0;
    assert!((got[0].ctr - p1).abs() < 1e-6, "{} vs {p1}", got[0].ctr);
    assert_eq!(
        (got[0].replies, got[0].quality, got[0].faithful),
        (2, 0.5, 0.5)
    );
    // User 3: s = 0.2, standardised −0.8.
    let p3 = sigmoid(-0.8 - 1.5 - 0.4);
    assert!((got[1].ctr - p3).abs() < 1e-6);
    assert_eq!(got[1].faithful, 0.0);
    // Best-of-N keeps, per (user, sample), the candidate the simulated user clicks most.
    let candidates = vec![
        sampled(1, 0, 0, "Nice.", 0.0),
        sampled(1, 0, 1, grounded, 1.0),
        sampled(1, 1, 0, grounded, 1.0),
        sampled(1, 1, 1, "Nice.", 0.0),
    ];
    let best = panel.best_of(candidates, &table);
    assert_eq!(best.len(), 2);
    assert!(best.iter().all(|r| r.explanation == grounded), "{best:?}");
    assert_eq!((best[0].candidate, best[1].candidate), (1, 0));
    // Paired against a base panel: differences 0.1 (user 1) and 0.3 (user 3); user 9 unshared.
    let base: Vec<PanelUser> = [(1, got[0].ctr - 0.1), (3, got[1].ctr - 0.3), (9, 0.5)]
        .into_iter()
        .map(|(user, ctr)| PanelUser {
            user,
            ctr,
            ..got[0].clone()
        })
        .collect();
    let pair = paired(&got, &base, |p| p.ctr).unwrap();
    assert_eq!(pair.n, 2);
    assert!((pair.mean - 0.2).abs() < 1e-9);
    // sd of (0.1, 0.3) = √0.02; se = 0.1; t95(1) = 12.706.
    assert!((pair.se - 0.1).abs() < 1e-9 && (pair.ci95 - 1.2706).abs() < 1e-9);
    let ratio = (got[0].ctr + got[1].ctr) / (got[0].ctr + got[1].ctr - 0.4);
    assert!((pair.ratio - ratio).abs() < 1e-9);
    let m = panel.measure(&got, Some(&base));
    assert_eq!(m["panel_users"].value, Some(2.0));
    assert!((m["panel_ctr_gain"].value.unwrap() - 0.2).abs() < 1e-9);
    assert!((m["panel_ctr_ratio"].value.unwrap() - ratio).abs() < 1e-9);
    assert_eq!(m["judge_faithfulness"].value, Some(0.25));
    // base's users both copy user 1's rates (faithful 0.5): differences 0 and −0.5.
    assert_eq!(m["judge_faithfulness_gain"].value, Some(-0.25));
    assert_eq!(panel.measure(&got, None)["panel_ctr_gain"].value, None);
}

#[test]
fn metric_families_measure_on_their_own() {
    use recrl_lib::audit::{groups, policy, privacy, AuditSet};
    let ds = successor_dataset(4, 30, 3);
    let h = |u: usize| ds.train[u - 1][..2].to_vec();
    let rows = vec![
        row(1, Mode::Greedy, h(1), h(1)[0], "a b c d e f g h i", -0.2),
        row(2, Mode::Greedy, h(2), h(2)[0], "nothing in common", -0.8),
        row(
            2,
            Mode::Counterfactual,
            h(2),
            h(2)[0],
            "nothing in common here",
            -0.8,
        ),
    ];
    let lexicon = Lexicon::new([("shit".to_string(), 1.0)]);
    let set = AuditSet::new(&ds, &lexicon, &rows);
    assert_eq!(
        (set.rated.len(), set.greedy.len(), set.counterfactual.len()),
        (2, 2, 1)
    );
    // Nine words shared with the run's one sample: memorised (8+), for one of two explanations.
    let mem = privacy::memorisation_metrics(&set, &["x a b c d e f g h i y".to_string()]);
    assert_eq!(mem["memorised_ngram_max"].value, Some(9.0));
    assert_eq!(mem["memorised_rate"].value, Some(0.5));
    assert_eq!(
        privacy::memorisation_metrics(&set, &[])["memorised_rate"].value,
        None
    );
    // The member (user 1) has the higher log-prob: a perfect attack.
    let mia = privacy::membership_metrics(&set, Some(&[1]));
    assert_eq!(mia["membership_auc"].value, Some(1.0));
    assert_eq!(mia["membership_members"].value, Some(1.0));
    assert_eq!(
        privacy::membership_metrics(&set, None)["membership_auc"].value,
        None
    );
    // One swapped prompt: F1 of 3 shared words among 3 + 4 is 6/7.
    let cf = groups::counterfactual_metrics(&set);
    assert_eq!(cf["counterfactual_probes"].value, Some(1.0));
    assert_eq!(cf["counterfactual_identical"].value, Some(0.0));
    let change = cf["counterfactual_change"].value.unwrap();
    assert!((change - 1.0 / 7.0).abs() < 1e-12, "{change}");
    // Checks of metrics never measured fail.
    let checks = policy::checks(&Thresholds::default(), &mem);
    assert_eq!(checks.len(), 5);
    assert!(checks.iter().all(|c| !c.pass && c.value.is_none()));
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        privacy::RlOutputs::load(empty.path()),
        privacy::RlOutputs::default()
    );
}
