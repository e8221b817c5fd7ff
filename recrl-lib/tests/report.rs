//! Step 7: text metrics against sacrebleu / rouge-score, MiniLM against sentence-transformers
//! (fixture: scripts/fixtures/text_reference.py), scoring a run's explanations, aggregation of
//! two fake run folders into the CSV and LaTeX table, and the figures written to disk.

use recrl_lib::audit::{Explained, Mode};
use recrl_lib::data::ReviewKind;
use recrl_lib::minilm;
use recrl_lib::ppo::{Drift, StepLog};
use recrl_lib::report::{aggregate, results, scores, text};
use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;
use common::successor_dataset;

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/text_reference.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn pairs(fx: &Value) -> (Vec<String>, Vec<String>) {
    fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["hypothesis"].as_str().unwrap().to_string(),
                p["reference"].as_str().unwrap().to_string(),
            )
        })
        .unzip()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs reference {b}");
}

#[test]
fn bleu_and_tokens_match_sacrebleu() {
    let fx = fixture();
    let (h, r) = pairs(&fx);
    for (k, hyp) in h.iter().enumerate() {
        let want: Vec<String> = serde_json::from_value(fx["tokens_13a"][k].clone()).unwrap();
        assert_eq!(text::tokenize_13a(hyp), want, "13a tokens of {hyp:?}");
    }
    for (key, range, order) in [
        ("bleu1", 0..h.len(), 1),
        ("bleu4", 0..h.len(), 4),
        ("bleu4_first3", 0..3, 4),
        ("bleu4_last3", 5..h.len(), 4),
    ] {
        let b = text::corpus_bleu(&strs(&h[range.clone()]), &strs(&r[range]), order);
        let want = &fx[key];
        close(b.score, want["score"].as_f64().unwrap(), 1e-9, key);
        close(b.bp, want["bp"].as_f64().unwrap(), 1e-12, key);
        assert_eq!(
            b.sys_len as u64,
            want["sys_len"].as_u64().unwrap(),
            "{key} sys_len"
        );
        assert_eq!(
            b.ref_len as u64,
            want["ref_len"].as_u64().unwrap(),
            "{key} ref_len"
        );
        for (p, w) in b
            .precisions
            .iter()
            .zip(want["precisions"].as_array().unwrap())
        {
            close(*p, w.as_f64().unwrap(), 1e-9, key);
        }
    }
}

#[test]
fn rouge_matches_rouge_score() {
    let fx = fixture();
    let (h, r) = pairs(&fx);
    for (k, (hyp, reference)) in h.iter().zip(&r).enumerate() {
        let s = text::rouge(hyp, reference);
        let want = &fx["rouge"][k];
        for (name, got) in [
            ("rouge1", s.rouge1),
            ("rouge2", s.rouge2),
            ("rougeL", s.rouge_l),
        ] {
            let w = &want[name];
            let what = format!("{name} of pair {k}");
            close(got.p, w["p"].as_f64().unwrap(), 1e-12, &what);
            close(got.r, w["r"].as_f64().unwrap(), 1e-12, &what);
            close(got.f, w["f"].as_f64().unwrap(), 1e-12, &what);
        }
    }
}

fn minilm_dir() -> PathBuf {
    minilm::default_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let fx = fixture();
    let enc = minilm::MiniLm::load(&minilm_dir(), tch::Device::Cpu)
        .expect("all-MiniLM-L6-v2 (fetched by scripts/setup.sh)");
    let sentences: Vec<String> = serde_json::from_value(fx["embed"]["sentences"].clone()).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(fx["embed"]["embeddings"].clone()).unwrap();
    let got = enc.embed(&strs(&sentences)).unwrap();
    assert_eq!(got.size(), [sentences.len() as i64, 384]);
    for (k, w) in want.iter().enumerate() {
        let g = Vec::<f64>::try_from(got.get(k as i64).to_kind(tch::Kind::Double)).unwrap();
        let diff = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            diff < 1e-4,
            "sentence {k} {:?}: max |diff| {diff}",
            sentences[k]
        );
    }
    // Similarities: an identical pair scores 1 on both measures; a related pair beats an
    // unrelated one.
    let same = enc.cosine(&[&sentences[0]], &[&sentences[0]]).unwrap()[0];
    close(same, 1.0, 1e-5, "cosine of a sentence with itself");
    let bs = enc
        .bertscore_f1(
            &[&sentences[1], &sentences[1]],
            &[&sentences[1], &sentences[3]],
        )
        .unwrap();
    close(
        bs[0],
        1.0,
        1e-5,
        "BERTScore-style F1 of a sentence with itself",
    );
    let c = enc
        .cosine(
            &[&sentences[0], &sentences[0]],
            &[&sentences[1], &sentences[2]],
        )
        .unwrap();
    assert!(
        c[0] > c[1] && bs[1] < 0.9,
        "related {c:?}, unrelated F1 {}",
        bs[1]
    );
}

fn explained(user: usize, rec: u32, text: &str) -> Explained {
    Explained {
        user,
        mode: Mode::Greedy,
        history: vec![],
        recommended: rec,
        prompt: String::new(),
        explanation: text.into(),
        mean_logprob: -1.0,
        swapped: 0,
        sample: 0,
        candidate: 0,
        quality: None,
    }
}

#[test]
fn ctr_slope_and_its_standard_error_by_hand() {
    // (0,1) (1,3) (2,2) (3,5): x̄ 1.5, ȳ 2.75, Sxx 5, Sxy 5.5 → slope 1.1; residuals
    // −0.1, 0.8, −1.3, 0.6 → SSR 2.7, σ̂² 2.7 / 2, se √(1.35 / 5) = √0.27
    let (b, se) = aggregate::ols_slope(&[0.0, 1.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 5.0]).unwrap();
    close(b, 1.1, 1e-12, "slope");
    close(se, 0.27f64.sqrt(), 1e-12, "standard error");
    assert!(aggregate::ols_slope(&[1.0, 2.0], &[1.0, 2.0]).is_none());
    assert!(aggregate::ols_slope(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
}

#[test]
fn review_texts_are_preferred_as_references_and_named() {
    let mut ds = successor_dataset(3, 10, 1);
    ds.items[3].title = "Dune".into();
    ds.items[3].author = Some("Frank Herbert".into());
    ds.reviews.own.insert((1, 2), "My own words on two.".into());
    ds.reviews.of_item.insert(2, "Someone on two.".into());
    ds.reviews.of_item.insert(4, "Someone on four.".into());
    assert_eq!(
        scores::reference(&ds, 1, 2),
        ("My own words on two.".into(), Some(ReviewKind::Own))
    );
    assert_eq!(
        scores::reference(&ds, 2, 2),
        ("Someone on two.".into(), Some(ReviewKind::OfItem))
    );
    assert_eq!(
        scores::reference(&ds, 1, 3),
        ("Dune is a book by Frank Herbert.".into(), None)
    );
    let rows = [
        explained(1, 2, "My own words on two."),
        explained(2, 2, "Words on two."),
        explained(3, 4, "Words on four."),
        explained(3, 3, "A book by Frank Herbert."),
    ];
    let r = scores::score(&ds, "t", &rows, None).unwrap();
    assert_eq!(
        r.references,
        "review texts (1 own, 2 of the item) and item metadata sentences (1)"
    );
    // the first explanation equals its reference: ROUGE-L F 1 for it
    let expected = [
        1.0,
        text::rouge("Words on two.", "Someone on two.").rouge_l.f,
        text::rouge("Words on four.", "Someone on four.").rouge_l.f,
        text::rouge(
            "A book by Frank Herbert.",
            "Dune is a book by Frank Herbert.",
        )
        .rouge_l
        .f,
    ];
    close(
        r.rouge_l.f,
        100.0 * expected.iter().sum::<f64>() / 4.0,
        1e-9,
        "mean ROUGE-L F over review and metadata references",
    );
    assert_eq!(
        scores::describe_references(&[None, None]),
        scores::METADATA_REFERENCES
    );
    assert_eq!(
        scores::describe_references(&[Some(ReviewKind::Own)]),
        "review texts (1 own, 0 of the item)"
    );
}

#[test]
fn a_runs_explanations_are_scored_against_metadata_references() {
    let mut ds = successor_dataset(3, 10, 1);
    ds.items[1].title = "Heat".into();
    ds.items[1].year = Some(1995);
    ds.items[1].genres = vec!["Action".into(), "Crime".into(), "Thriller".into()];
    ds.items[2].title = "Fargo".into();
    ds.items[2].genres = vec!["Drama".into()];
    assert_eq!(
        ds.reference_sentence(1),
        "Heat is an Action, Crime and Thriller film from 1995."
    );
    assert_eq!(ds.reference_sentence(2), "Fargo is a Drama film.");
    let mut rows = vec![
        explained(
            1,
            1,
            "Heat is an Action, Crime and Thriller film from 1995.",
        ),
        explained(2, 2, "A quiet film you will like."),
    ];
    rows.push(Explained {
        mode: Mode::Sampled,
        ..explained(3, 2, "ignored: not greedy")
    });
    let r = scores::score(&ds, "t", &rows, None).unwrap();
    assert_eq!(r.n, 2);
    assert_eq!(r.references, scores::METADATA_REFERENCES);
    close(
        r.fmr,
        0.5,
        1e-12,
        "FMR: only the first names a feature of its item",
    );
    close(r.usr, 1.0, 1e-12, "USR");
    close(
        r.rouge_l.f,
        50.0 * (1.0
            + text::rouge(&rows[1].explanation, "Fargo is a Drama film.")
                .rouge_l
                .f),
        1e-9,
        "mean ROUGE-L F",
    );
    assert!(r.embedding_cosine.is_none() && r.bertscore_f1.is_none());
    let b = text::corpus_bleu(
        &[&rows[0].explanation, &rows[1].explanation],
        &[
            "Heat is an Action, Crime and Thriller film from 1995.",
            "Fargo is a Drama film.",
        ],
        4,
    );
    close(r.bleu4, b.score, 1e-12, "BLEU-4");
}

fn step(step: usize, ctr: f64, kl: f64, drift: Option<f64>) -> StepLog {
    let mut l = StepLog {
        step,
        ctr,
        seconds: 2.0,
        ..Default::default()
    };
    l.stats.kl = kl;
    l.drift = drift.map(|d| Drift {
        protocol: "full".into(),
        ndcg10: 0.1 + d,
        hr10: 0.2,
        d_ndcg10: d,
        top10_overlap: 1.0,
        ..Default::default()
    });
    l
}

/// An `audit.json` holding only the panel CTR metrics.
fn write_panel_audit(dir: &Path, ctr: f64, gain: f64, se: f64) {
    use recrl_lib::audit::{AuditReport, Metric};
    let metric = |v: f64| Metric {
        value: Some(v),
        definition: String::new(),
    };
    let report = AuditReport {
        format: "recrl-audit/1".into(),
        dataset: "ml-100k".into(),
        tag: "shielded".into(),
        checkpoint: dir.into(),
        protocol: serde_json::Value::Null,
        metrics: [
            ("panel_ctr".to_string(), metric(ctr)),
            ("panel_ctr_gain".to_string(), metric(gain)),
            ("panel_ctr_gain_se".to_string(), metric(se)),
        ]
        .into(),
        toxicity_histogram: vec![],
        groups: vec![],
        popularity: Default::default(),
        examples: Default::default(),
        panel: vec![],
        config: Some("unknown".into()),
        provenance: Some("unknown".into()),
        checks: vec![],
        pass: true,
    };
    std::fs::write(
        dir.join("audit.json"),
        serde_json::to_string(&report).unwrap(),
    )
    .unwrap();
}

fn write_run(dir: &Path, steps: &[StepLog]) {
    std::fs::create_dir_all(dir).unwrap();
    let lines: Vec<String> = steps
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn two_fake_runs_aggregate_into_the_expected_csv_latex_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    // shielded: 12 steps, CTR 0.5 for steps 1-2 then 0.7; drift 0 throughout.
    let mut a = vec![step(0, 0.0, 0.0, Some(0.0))];
    a.extend((1..=12).map(|s| {
        step(
            s,
            if s <= 2 { 0.5 } else { 0.7 },
            0.1,
            (s % 6 == 0).then_some(0.0),
        )
    }));
    write_run(&logs.join("ml-100k/shielded"), &a);
    write_panel_audit(&logs.join("ml-100k/shielded"), 0.71, 0.04, 0.015);
    // no_proj: 3 steps, drifting.
    let b = vec![
        step(0, 0.0, 0.0, Some(0.0)),
        step(1, 0.4, 0.2, None),
        step(2, 0.6, 0.4, None),
        step(3, 0.8, 0.6, Some(-0.002)),
    ];
    write_run(&logs.join("ml-100k/no_proj"), &b);
    std::fs::create_dir_all(logs.join("ml-100k/ranker")).unwrap(); // not a run: skipped
    std::fs::write(logs.join("ml-100k/ranker/train.jsonl"), "{}\n").unwrap();

    let records = aggregate::discover(&logs).unwrap();
    let tags: Vec<&str> = records.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(tags, ["no_proj", "shielded"]);
    let expected = vec![("ml-100k".to_string(), "frozen".to_string())];
    let mut df = aggregate::frame(&records, &expected).unwrap();
    let shown = aggregate::table(&df, &["arm", "d_ndcg10", "bleu4", "missing"]).unwrap();
    assert_eq!(
        shown.rows[0],
        ["no_proj", "-0.0020", "missing", "audit;text"]
    );
    assert_eq!(shown.rows[2][3], "run");
    let csv = tmp.path().join("aggregate_results.csv");
    aggregate::write_csv(&mut df, &csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let names: Vec<&str> = aggregate::COLUMNS.iter().map(|c| c.0).collect();
    assert_eq!(header, names);
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 3);
    let get =
        |row: &[String], col: &str| row[names.iter().position(|n| *n == col).unwrap()].clone();
    let (np, sh, fr) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(get(np, "arm"), "no_proj");
    assert_eq!(get(np, "protocol"), "full");
    assert_eq!(get(np, "d_ndcg10"), "-0.002000");
    assert_eq!(
        get(np, "ctr_start"),
        "0.600000",
        "3 steps: the window is all of them"
    );
    assert_eq!(get(np, "kl_final"), "0.400000");
    // CTR 0.4, 0.6, 0.8 at steps 1-3: 0.2 a step, exactly on the line
    assert_eq!(get(np, "ctr_slope"), "20.000000");
    assert_eq!(get(np, "ctr_slope_se"), "0.000000");
    assert_eq!(get(np, "steps"), "3");
    assert_eq!(get(np, "wall_s"), "6.000000");
    assert_eq!(
        get(np, "bleu4"),
        "",
        "no text metrics: empty, never a default"
    );
    assert_eq!(get(np, "missing"), "audit;text");
    assert_eq!(
        get(sh, "ctr_start"),
        "0.660000",
        "first 10 steps: 2 × 0.5 + 8 × 0.7"
    );
    assert_eq!(get(sh, "ctr_end"), "0.700000");
    assert_eq!(get(sh, "d_ndcg10"), "0.000000");
    assert_eq!(get(sh, "panel_ctr"), "0.710000");
    assert_eq!(get(sh, "panel_ctr_gain"), "0.040000");
    assert_eq!(get(sh, "panel_ctr_gain_se"), "0.015000");
    assert_eq!(get(np, "panel_ctr_gain"), "", "no audit: empty");
    assert_eq!(get(fr, "arm"), "frozen");
    assert_eq!(get(fr, "missing"), "run");
    assert!(
        fr[2..names.len() - 1].iter().all(String::is_empty),
        "{fr:?}"
    );

    let tex = aggregate::latex(&records);
    assert!(tex.contains("\\begin{tabular}") && tex.contains("\\bottomrule"));
    assert!(tex.contains("ml-100k & no\\_proj & 0.1000 & 0.0980 & -0.00200 & 0.600 & 0.600 & -- & 0.400 & -- & -- & -- & --"), "{tex}");
    assert!(
        tex.contains("& 0.040 & "),
        "shielded's panel CTR gain: {tex}"
    );

    let figs = tmp.path().join("figures");
    let files = results::save_all(&records, &figs, false).unwrap();
    assert_eq!(files.len(), 8);
    for f in &files {
        let html = std::fs::read_to_string(f).unwrap();
        assert!(
            html.len() > 1_000_000 && !html.contains("<script src=\"http"),
            "{}",
            f.display()
        );
    }
    let stability = std::fs::read_to_string(figs.join("ranking_stability.html")).unwrap();
    assert!(stability.contains("no_proj") && stability.contains("-0.002"));
    // one point per dataset · arm with its interval: shielded's panel CTR 0.71, one seed, so
    // no interval over seeds (its audit here has no panel users either)
    let arms = std::fs::read_to_string(figs.join("arms_ctr.html")).unwrap();
    assert!(
        arms.contains("ml-100k · shielded (p1, 1 seed(s))") && arms.contains("[0.71]"),
        "the seeded CTR figure: one point for shielded"
    );
    let drift = std::fs::read_to_string(figs.join("arms_drift.html")).unwrap();
    assert!(
        drift.contains("max |δs|") && drift.contains("ml-100k · no_proj (p1, 1 seed(s))"),
        "the seeded drift figure: a point per PPO arm"
    );
}

/// Seeds of one arm pool into mean ± 95 % CI (Student t): three runs of `shielded` (plain and
/// `_s<S>`) with end CTRs 0.6, 0.7, 0.8 give 0.7 ± t95(2)·0.1/√3; `no_proj_s1` stays alone.
#[test]
fn seeds_of_an_arm_pool_into_mean_and_interval() {
    use recrl_lib::report::seeds;
    let run = |tag: &str, ctr: f64, seed: Option<u64>| aggregate::RunRecord {
        dataset: "ml-100k".into(),
        tag: tag.into(),
        steps: (0..=12)
            .map(|s| StepLog {
                step: s,
                ctr: if s == 0 { 0.0 } else { ctr },
                ..Default::default()
            })
            .collect(),
        run: seed.map(|s| serde_json::json!({ "seed": s })),
        audit: None,
        text: None,
    };
    let records = vec![
        run("no_proj_s1", 0.5, None),
        run("shielded", 0.6, Some(42)),
        run("shielded_s2", 0.7, Some(2)),
        run("shielded_s3", 0.8, None),
    ];
    let rows = seeds::pool(&records);
    assert_eq!(rows.len(), 2);
    let (np, sh) = (&rows[0], &rows[1]);
    assert_eq!(
        (np.arm.as_str(), np.seeds.clone()),
        ("no_proj", vec!["1".to_string()])
    );
    assert_eq!(sh.seeds, ["42", "2", "3"]);
    let j = seeds::SEEDED_METRICS
        .iter()
        .position(|(n, _)| *n == "ctr_end")
        .unwrap();
    let (m, h) = sh.cells[j].unwrap();
    assert!((m - 0.7).abs() < 1e-12);
    assert!(
        (h.unwrap() - 4.303 * 0.1 / 3f64.sqrt()).abs() < 1e-9,
        "{h:?}"
    );
    assert_eq!(np.cells[j], Some((0.5, None)), "one seed: no interval");
    let md = seeds::markdown(&rows);
    assert!(md.contains("| ml-100k | 1 | shielded | ppo | 3 |"), "{md}");
    let df = seeds::frame(&rows).unwrap();
    assert_eq!(df.height(), 2);
    assert!(df.column("ctr_end_ci95").is_ok());
}

/// Protocol 2: the baselines are rows of the seeded table next to the arms, never pooled with
/// protocol 1; an arm's gain over best-of-N pairs its panel with best_of_n's user by user, with
/// the interval over users for one seed.
#[test]
fn held_out_panels_pair_with_best_of_n_and_keep_the_protocols_apart() {
    use recrl_lib::audit::clicks::PanelUser;
    use recrl_lib::audit::{AuditReport, Metric};
    use recrl_lib::report::seeds;
    let audit = |tag: &str, version: Option<u64>, ctrs: &[f64], faithful: f64| {
        let panel: Vec<PanelUser> = ctrs
            .iter()
            .enumerate()
            .map(|(k, &ctr)| PanelUser {
                user: k + 1,
                replies: 4,
                ctr,
                quality: 0.5,
                faithful,
                complete: 1.0,
                artefact: 0.0,
                readability: 60.0,
            })
            .collect();
        let metric = |v: f64| Metric {
            value: Some(v),
            definition: String::new(),
        };
        let mean = ctrs.iter().sum::<f64>() / ctrs.len() as f64;
        AuditReport {
            format: "recrl-audit/2".into(),
            dataset: "ml-100k".into(),
            tag: tag.into(),
            checkpoint: tag.into(),
            protocol: version.map_or(
                serde_json::Value::Null,
                |v| serde_json::json!({ "version": v }),
            ),
            metrics: [
                ("panel_ctr".to_string(), metric(mean)),
                ("judge_faithfulness".to_string(), metric(faithful)),
            ]
            .into(),
            toxicity_histogram: vec![],
            groups: vec![],
            popularity: Default::default(),
            examples: Default::default(),
            panel: if version.is_some() { panel } else { vec![] },
            config: Some("unknown".into()),
            provenance: Some("unknown".into()),
            checks: vec![],
            pass: true,
        }
    };
    let record = |tag: &str, steps: usize, a: AuditReport| aggregate::RunRecord {
        dataset: "ml-100k".into(),
        tag: tag.into(),
        steps: (0..=steps)
            .filter(|_| steps > 0)
            .map(|s| StepLog {
                step: s,
                ..Default::default()
            })
            .collect(),
        run: (steps > 0).then(|| serde_json::json!({ "seed": 1 })),
        audit: Some(a),
        text: None,
    };
    let records = vec![
        record("base", 0, audit("base", Some(2), &[0.5, 0.5, 0.5], 0.9)),
        record(
            "best_of_n",
            0,
            audit("best_of_n", Some(2), &[0.6, 0.5, 0.7], 0.8),
        ),
        record(
            "template",
            0,
            audit("template", Some(2), &[0.4, 0.4, 0.4], 1.0),
        ),
        // a protocol-1 base (no version) is no row; a protocol-1 arm is its own row
        record("base", 0, audit("base", None, &[0.5], 0.0)),
        record("shielded_s1", 3, audit("shielded_s1", None, &[0.7], 0.0)),
        record(
            "shielded_s1",
            3,
            audit("shielded_s1", Some(2), &[0.7, 0.6, 0.7], 0.7),
        ),
    ];
    let rows = seeds::pool(&records);
    let names: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|r| (r.protocol, r.arm.as_str(), r.algorithm.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (1, "shielded", "ppo"),
            (2, "base", "none"),
            (2, "best_of_n", "none"),
            (2, "shielded", "ppo"),
            (2, "template", "none"),
        ]
    );
    let col = |name: &str| {
        seeds::SEEDED_METRICS
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap()
    };
    let sh = &rows[3];
    // differences to best_of_n by user: 0.1, 0.1, 0.0 → mean 1/15, sd √(1/300), se 1/30,
    // t95(2) = 4.303
    let (m, h) = sh.cells[col("gain_over_best_of_n")].unwrap();
    assert!((m - 0.2 / 3.0).abs() < 1e-12, "{m}");
    assert!((h.unwrap() - 4.303 / 30.0).abs() < 1e-9, "{h:?}");
    assert_eq!(sh.cells[col("faithfulness")], Some((0.7, None)));
    // its audit has no gains over base (made before base's audit): paired here with base's
    // panel, user by user: differences 0.2, 0.1, 0.2 → mean 1/6, se 1/30; ratio (2/3) / 0.5
    let (m, h) = sh.cells[col("panel_ctr_gain")].unwrap();
    assert!((m - 1.0 / 6.0).abs() < 1e-12, "{m}");
    assert!((h.unwrap() - 4.303 / 30.0).abs() < 1e-9, "{h:?}");
    let (r, _) = sh.cells[col("panel_ctr_ratio")].unwrap();
    assert!((r - 4.0 / 3.0).abs() < 1e-12, "{r}");
    let (f, fh) = sh.cells[col("faithfulness_gain")].unwrap();
    assert!(
        (f + 0.2).abs() < 1e-12 && fh.unwrap().abs() < 1e-12,
        "{f} {fh:?}"
    );
    assert_eq!(
        rows[1].cells[col("panel_ctr_gain")],
        None,
        "base: not against itself"
    );
    assert!((sh.cells[col("panel_ctr")].unwrap().0 - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(
        rows[2].cells[col("gain_over_best_of_n")],
        None,
        "not against itself"
    );
    assert_eq!(
        rows[0].cells[col("gain_over_best_of_n")],
        None,
        "protocol 1 has no panel"
    );
    let md = seeds::markdown(&rows);
    assert!(
        md.contains("| ml-100k | 2 | template | none | 1 | 0.400 |"),
        "{md}"
    );
    let df = seeds::frame(&rows).unwrap();
    for c in [
        "protocol",
        "faithfulness_mean",
        "completeness_ci95",
        "artefact_mean",
        "gain_over_best_of_n_mean",
    ] {
        assert!(df.column(c).is_ok(), "{c}");
    }
}

/// The committed tables are made from the committed run records alone, so they regenerate byte
/// for byte on any machine (`recrl aggregate --records`).
#[test]
fn the_committed_tables_are_made_from_the_committed_records() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().unwrap();
    let opts = recrl_lib::report::Options {
        out_csv: out.path().join("aggregate_results.csv"),
        figures_dir: out.path().join("figures"),
        statics: false,
        ..recrl_lib::report::Options::records(&repo)
    };
    recrl_lib::report::run(&opts, tch::Device::Cpu, |_| {}).unwrap();
    for f in [
        "aggregate_results.csv",
        "seeded_results.csv",
        "seeded_results.md",
        "main_results.tex",
    ] {
        let made = std::fs::read_to_string(out.path().join(f)).unwrap();
        let committed = std::fs::read_to_string(repo.join("experiments").join(f)).unwrap();
        assert!(
            made == committed,
            "{f} differs from what the records make: run `recrl aggregate --records` and commit"
        );
    }
}

/// The blind sheets pair greedy and sampled panel replies by (user, item, reply), and for
/// best-of-N they read the chosen replies, whichever candidate won.
#[test]
fn humaneval_pairs_sampled_replies_and_best_of_n_choices() {
    use recrl_lib::audit::explanations::write_rows;
    use recrl_lib::report::humaneval;
    let ds = successor_dataset(3, 10, 1);
    let runs = tempfile::tempdir().unwrap();
    let reply = |user: usize, mode: Mode, sample: usize, candidate: usize, text: &str| Explained {
        mode,
        sample,
        candidate,
        ..explained(user, 2, text)
    };
    let arm: Vec<Explained> = (1..=2)
        .flat_map(|u| {
            [
                reply(u, Mode::Greedy, 0, 0, "arm greedy."),
                reply(u, Mode::Sampled, 0, 0, "arm sample 0."),
                reply(u, Mode::Sampled, 1, 0, "arm sample 1."),
            ]
        })
        .collect();
    // best-of-N's chosen replies: candidate 1 won three times, candidate 0 once
    let chosen: Vec<Explained> = (1..=2)
        .flat_map(|u| {
            [
                reply(u, Mode::Greedy, 0, 0, "best greedy."),
                reply(u, Mode::Sampled, 0, 1, "best sample 0."),
                reply(u, Mode::Sampled, 1, u - 1, "best sample 1."),
            ]
        })
        .collect();
    let dir = |tag: &str| {
        let d = runs.path().join("ml-100k").join(tag);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    write_rows(&dir("shielded").join("explanations.jsonl"), &arm).unwrap();
    write_rows(
        &dir("best_of_n").join("explanations.selected.jsonl"),
        &chosen,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (pairs, _) = humaneval::export(
        runs.path(),
        &ds,
        ("shielded", "best_of_n"),
        100,
        3,
        out.path(),
    )
    .unwrap();
    assert_eq!(pairs.len(), 6, "2 users × (greedy + 2 samples)");
    for p in &pairs {
        let (mine, theirs) = if p.a_is == "shielded" {
            (&p.a, &p.b)
        } else {
            (&p.b, &p.a)
        };
        assert_eq!(
            mine.replace("arm", ""),
            theirs.replace("best", ""),
            "same reply paired"
        );
    }
}
