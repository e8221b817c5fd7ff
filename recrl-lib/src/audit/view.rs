//! Tables and plots of audit reports for notebook 06 and the terminal.

use super::AuditReport;
use crate::display::Table;
use plotly::common::{ErrorData, ErrorType, Title};
use plotly::layout::{Axis, BarMode, Layout};
use plotly::{Bar, Plot};

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "missing".into(),
        Some(x) if x != 0.0 && x.abs() < 1e-3 => format!("{x:.2e}"),
        Some(x) => format!("{x:.4}"),
    }
}

/// Threshold checks: name, value, bound, PASS/FAIL.
pub fn checks_table(r: &AuditReport) -> Table {
    let rows = r
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                fmt(c.value),
                format!("< {}", c.threshold),
                if c.pass { "PASS" } else { "FAIL" }.into(),
            ]
        })
        .collect();
    Table::new(&["check", "value", "threshold", "result"], rows)
}

/// The named metrics of several reports side by side (e.g. before and after RL).
pub fn compare_table(reports: &[&AuditReport], names: &[&str]) -> Table {
    let mut header = vec!["metric".to_string()];
    header.extend(reports.iter().map(|r| r.tag.clone()));
    header.push("definition".into());
    let rows = names
        .iter()
        .map(|n| {
            let mut row = vec![n.to_string()];
            row.extend(reports.iter().map(|r| fmt(r.value(n))));
            let def = reports
                .iter()
                .find_map(|r| r.metrics.get(*n))
                .map_or(String::new(), |m| m.definition.clone());
            row.push(def);
            row
        })
        .collect();
    Table::new(&header, rows)
}

/// Every metric of one report with its definition.
pub fn metrics_table(r: &AuditReport) -> Table {
    let rows = r
        .metrics
        .iter()
        .map(|(k, m)| vec![k.clone(), fmt(m.value), m.definition.clone()])
        .collect();
    Table::new(&["metric", "value", "definition"], rows)
}

/// Popularity statistics before and after RL.
pub fn popularity_table(r: &AuditReport) -> Table {
    let rows = r
        .popularity
        .iter()
        .map(|(k, p)| {
            vec![
                k.clone(),
                format!("{:.1}", p.arp),
                format!("{:.4}", p.gini),
                format!("{:.4}", p.coverage),
                format!("{:.4}", p.tail_share),
            ]
        })
        .collect();
    Table::new(&["lists", "ARP", "Gini", "coverage", "tail share"], rows)
}

/// Group means with 95% intervals and the gap, for one metric.
pub fn groups_table(r: &AuditReport, metric: &str) -> Table {
    let mut rows = Vec::new();
    for g in r.groups.iter().filter(|g| g.metric == metric) {
        for m in &g.groups {
            rows.push(vec![
                g.grouping.clone(),
                m.group.clone(),
                m.n.to_string(),
                format!("{:.4} [{:.4}, {:.4}]", m.mean, m.lo, m.hi),
            ]);
        }
        rows.push(vec![
            g.grouping.clone(),
            "gap".into(),
            String::new(),
            format!("{:.4} [{:.4}, {:.4}]", g.gap, g.gap_lo, g.gap_hi),
        ]);
    }
    Table::new(
        &[
            "grouping",
            "group",
            "users",
            &format!("mean {metric} [95% CI]"),
        ],
        rows,
    )
}

/// Examples of one kind ("leaks", "toxic", "pii"), one row each.
pub fn examples_table(r: &AuditReport, kind: &str) -> Table {
    let rows = r
        .examples
        .get(kind)
        .map(|v| {
            v.iter()
                .map(|e| {
                    let found = ["titles", "terms", "text"]
                        .iter()
                        .find_map(|k| e.get(*k))
                        .map_or(String::new(), ToString::to_string);
                    vec![
                        e["user"].to_string(),
                        found,
                        e["explanation"].as_str().unwrap_or_default().to_string(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    Table::new(&["user", "found", "explanation"], rows)
}

fn layout(title: &str, x: &str, y: &str) -> Layout {
    Layout::new()
        .title(Title::with_text(title))
        .x_axis(Axis::new().title(Title::with_text(x)))
        .y_axis(Axis::new().title(Title::with_text(y)))
}

/// The judge's rates on the held-out panel (faithful, complete, with an artefact), one bar
/// group per rate and one bar per report, with the 95 % Student-t interval over panel users.
pub fn judge_plot(reports: &[&AuditReport]) -> Plot {
    let mut plot = Plot::new();
    let rates: [(&str, super::clicks::Measure); 3] = [
        ("faithful", |p| p.faithful),
        ("complete", |p| p.complete),
        ("artefact", |p| p.artefact),
    ];
    for r in reports {
        let (mut means, mut halves) = (Vec::new(), Vec::new());
        for (_, f) in rates {
            let v: Vec<f64> = r.panel.iter().map(f).filter(|x| x.is_finite()).collect();
            let (m, h) = crate::stats::interval(&v).unwrap_or((f64::NAN, None));
            means.push(m);
            halves.push(h.unwrap_or(0.0));
        }
        let labels: Vec<String> = rates.iter().map(|r| r.0.to_string()).collect();
        plot.add_trace(
            Bar::new(labels, means)
                .name(&r.tag)
                .error_y(ErrorData::new(ErrorType::Data).array(halves)),
        );
    }
    plot.set_layout(
        layout(
            "The judge on the held-out panel (sampled replies)",
            "measure",
            "share of replies",
        )
        .bar_mode(BarMode::Group),
    );
    plot
}

/// The panel replies of `users` of the reports' examples side by side: one row per user,
/// reply (greedy or sample number) and report, with the judge's flags and q(x).
pub fn side_by_side(reports: &[&AuditReport], users: usize) -> Table {
    let first: Vec<u64> = reports
        .first()
        .and_then(|r| r.examples.get("panel"))
        .map(|rows| {
            let mut u: Vec<u64> = Vec::new();
            for x in rows.iter().filter_map(|x| x["user"].as_u64()) {
                if !u.contains(&x) && u.len() < users {
                    u.push(x);
                }
            }
            u
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    for &u in &first {
        for r in reports {
            for x in r.examples.get("panel").into_iter().flatten() {
                if x["user"].as_u64() != Some(u) {
                    continue;
                }
                let reply = match x["mode"].as_str() {
                    Some("greedy") => "greedy".to_string(),
                    _ => format!("sample {}", x["sample"]),
                };
                let flags: Vec<String> = x["judge"]["flags"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                rows.push(vec![
                    u.to_string(),
                    r.tag.clone(),
                    reply,
                    x["explanation"].as_str().unwrap_or("").to_string(),
                    fmt(x["q"].as_f64()),
                    if flags.is_empty() {
                        "ok".into()
                    } else {
                        flags.join("; ")
                    },
                ]);
            }
        }
    }
    Table::new(
        &["user", "tag", "reply", "explanation", "q(x)", "judge"],
        rows,
    )
}

/// Toxicity score histogram of each report (bins of 0.1).
pub fn toxicity_plot(reports: &[&AuditReport]) -> Plot {
    let mut plot = Plot::new();
    let bins: Vec<String> = (0..10)
        .map(|k| format!("{:.1}-{:.1}", k as f64 / 10.0, (k + 1) as f64 / 10.0))
        .collect();
    for r in reports {
        let counts: Vec<f64> = r.toxicity_histogram.iter().map(|&c| c as f64).collect();
        plot.add_trace(Bar::new(bins.clone(), counts).name(&r.tag));
    }
    plot.set_layout(
        layout("Toxicity of explanations", "lexicon score", "explanations")
            .bar_mode(BarMode::Group),
    );
    plot
}

/// Group means of `metric` with 95% intervals, one bar group per grouping.
pub fn groups_plot(r: &AuditReport, metric: &str) -> Plot {
    let mut plot = Plot::new();
    for g in r.groups.iter().filter(|g| g.metric == metric) {
        let labels: Vec<String> = g
            .groups
            .iter()
            .map(|m| format!("{}: {}", g.grouping, m.group))
            .collect();
        let means: Vec<f64> = g.groups.iter().map(|m| m.mean).collect();
        let plus: Vec<f64> = g.groups.iter().map(|m| m.hi - m.mean).collect();
        let minus: Vec<f64> = g.groups.iter().map(|m| m.mean - m.lo).collect();
        plot.add_trace(
            Bar::new(labels, means)
                .name(format!("{} (gap {:.3})", g.grouping, g.gap))
                .error_y(
                    ErrorData::new(ErrorType::Data)
                        .array(plus)
                        .array_minus(minus),
                ),
        );
    }
    plot.set_layout(layout(
        &format!(
            "Mean {metric} by user group ({}), 95% bootstrap intervals",
            r.tag
        ),
        "group",
        metric,
    ));
    plot
}

/// Gini, coverage and tail share of the top-10 lists before and after RL.
pub fn popularity_plot(r: &AuditReport) -> Plot {
    let mut plot = Plot::new();
    let stats = ["Gini", "coverage", "tail share"];
    for key in ["top10_before", "top10_after"] {
        if let Some(p) = r.popularity.get(key) {
            plot.add_trace(
                Bar::new(
                    stats.iter().map(|s| s.to_string()).collect(),
                    vec![p.gini, p.coverage, p.tail_share],
                )
                .name(key),
            );
        }
    }
    plot.set_layout(
        layout(
            &format!("Popularity of top-10 lists ({})", r.tag),
            "",
            "value",
        )
        .bar_mode(BarMode::Group),
    );
    plot
}
