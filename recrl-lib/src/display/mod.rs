//! Display, at the bottom of the crate so that every step can use it: tables ([`Table`]),
//! chart builders ([`charts`]), figure files ([`figures`]) and rich output in the evcxr Jupyter
//! kernel ([`show`]).
//!
//! [`show`] emits one display bundle per figure: the plotly JSON (rendered interactively and
//! offline by JupyterLab's plotly extension), an `<img>` PNG fallback (for nbconvert HTML and
//! other viewers, when kaleido is installed) and a text line. [`Table`] renders as an HTML
//! table when it is a cell's final value.

pub mod charts;
pub mod figures;

pub use figures::{render_static, save_figure, FigureFormat};

use plotly::Plot;
use std::fmt::Write;

/// Displays `plot` in the notebook (interactive in JupyterLab, PNG elsewhere).
///
/// evcxr 0.22 folds the rich outputs one cell prints into a single display, so only one plot
/// per cell survives: call `show` once per cell.
pub fn show(plot: &Plot) {
    let json = plot.to_json();
    let mut bundle =
        format!("EVCXR_BEGIN_CONTENT application/vnd.plotly.v1+json\n{json}\nEVCXR_END_CONTENT\n");
    use figures::{HEIGHT, WIDTH};
    if let Ok(png) = render_static(plot, &[FigureFormat::Png], WIDTH, HEIGHT) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png[0]);
        let _ = write!(
            bundle,
            "EVCXR_BEGIN_CONTENT text/html\n<img src=\"data:image/png;base64,{b64}\"/>\nEVCXR_END_CONTENT\n"
        );
    }
    let _ = write!(
        bundle,
        "EVCXR_BEGIN_CONTENT text/plain\n<plotly figure, {} bytes of JSON>\nEVCXR_END_CONTENT",
        json.len()
    );
    println!("{bundle}");
}

/// A small table that renders as HTML in notebooks and as aligned text elsewhere.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given header and rows.
    pub fn new<H: ToString>(header: &[H], rows: Vec<Vec<String>>) -> Self {
        Table {
            header: header.iter().map(ToString::to_string).collect(),
            rows,
        }
    }

    /// A two-column (field, value) table.
    pub fn key_value(rows: Vec<(String, String)>) -> Self {
        Table::new(
            &["field", "value"],
            rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
        )
    }

    /// One row per file: path and size in kB (a missing file shows `-`).
    pub fn files<P: AsRef<std::path::Path>>(paths: &[P]) -> Self {
        let rows = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                let kb = std::fs::metadata(p)
                    .map_or("-".into(), |m| format!("{:.1}", m.len() as f64 / 1e3));
                vec![p.display().to_string(), kb]
            })
            .collect();
        Table::new(&["file", "kB"], rows)
    }

    /// HTML `<table>` with escaped cells.
    pub fn to_html(&self) -> String {
        let mut h = String::from("<table><thead><tr>");
        for c in &self.header {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            h.push_str("<tr>");
            for c in row {
                let _ = write!(h, "<td>{}</td>", escape(c));
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
        h
    }

    /// Called by evcxr when a `Table` is a cell's final value.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT\nEVCXR_BEGIN_CONTENT text/plain\n{self}\nEVCXR_END_CONTENT",
            self.to_html()
        );
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |f: &mut std::fmt::Formatter<'_>, cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            writeln!(f, "{}", parts.join("  ").trim_end())
        };
        line(f, &self.header)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A 20-mark text progress bar with its percentage: `[##########..........]  50%`.
pub fn bar(pct: usize) -> String {
    let filled = pct.min(100) / 5;
    format!(
        "[{}{}] {pct:>3}%",
        "#".repeat(filled),
        ".".repeat(20 - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_escapes_html_and_aligns_text() {
        let t = Table::new(&["a", "bb"], vec![vec!["<x>".into(), "1".into()]]);
        assert_eq!(
            t.to_html(),
            "<table><thead><tr><th>a</th><th>bb</th></tr></thead>\
             <tbody><tr><td>&lt;x&gt;</td><td>1</td></tr></tbody></table>"
        );
        assert_eq!(t.to_string(), "a    bb\n<x>  1\n");
    }

    #[test]
    fn files_table_lists_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, vec![b'x'; 2500]).unwrap();
        let t = Table::files(&[f.clone(), dir.path().join("missing")]);
        assert_eq!(t.rows[0], vec![f.display().to_string(), "2.5".to_string()]);
        assert_eq!(t.rows[1][1], "-");
    }
}
