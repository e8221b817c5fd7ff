//! Writing plotly figures to files, offline.
//!
//! * HTML: a standalone page with plotly.js embedded (no CDN), from the plotly crate.
//! * SVG / PNG: rendered by kaleido 0.2.1 (PyPI; it ships its own headless Chromium) given a
//!   local plotly.js, so nothing is downloaded at run time. Kaleido comes with the project's
//!   notebook venv (`scripts/setup.sh notebooks`); `$KALEIDO_DIR` and `$PLOTLYJS` point
//!   elsewhere.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use plotly::Plot;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A file format for [`save_figure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureFormat {
    /// Standalone interactive page, plotly.js embedded.
    Html,
    /// Static vector image (kaleido).
    Svg,
    /// Static raster image (kaleido).
    Png,
}

impl FigureFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            FigureFormat::Html => "html",
            FigureFormat::Svg => "svg",
            FigureFormat::Png => "png",
        }
    }
}

/// Default static image size (pixels).
pub const WIDTH: usize = 900;
/// Default static image height (pixels).
pub const HEIGHT: usize = 500;

/// Writes `plot` as `<dir>/<name>.<ext>` for each format (atomically) and returns the paths.
/// Static formats share one kaleido process.
pub fn save_figure(
    plot: &Plot,
    dir: &Path,
    name: &str,
    formats: &[FigureFormat],
) -> Result<Vec<PathBuf>> {
    let statics: Vec<FigureFormat> = formats
        .iter()
        .copied()
        .filter(|f| *f != FigureFormat::Html)
        .collect();
    let mut images = render_static(plot, &statics, WIDTH, HEIGHT)?.into_iter();
    let mut paths = Vec::new();
    for &format in formats {
        let path = dir.join(format!("{name}.{}", format.extension()));
        let bytes = match format {
            FigureFormat::Html => plot.to_html().into_bytes(),
            _ => images.next().expect("one image per static format"),
        };
        crate::io::write_atomic(&path, &bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Renders `plot` once per format (SVG or PNG) with kaleido and returns the file bytes.
pub fn render_static(
    plot: &Plot,
    formats: &[FigureFormat],
    width: usize,
    height: usize,
) -> Result<Vec<Vec<u8>>> {
    if formats.is_empty() {
        return Ok(Vec::new());
    }
    let (kaleido, plotly_js) = kaleido_paths()?;
    let mut child = Command::new(&kaleido)
        .args([
            "plotly",
            "--disable-gpu",
            "--no-sandbox",
            "--allow-file-access-from-files",
            "--disable-dev-shm-usage",
            &format!("--plotlyjs=file://{}", plotly_js.display()),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", kaleido.display()))?;
    let figure = plot.to_json();
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for format in formats {
            let fmt = match format {
                FigureFormat::Svg => "svg",
                FigureFormat::Png => "png",
                FigureFormat::Html => bail!("HTML is not a static format"),
            };
            writeln!(
                stdin,
                r#"{{"data":{figure},"format":"{fmt}","width":{width},"height":{height},"scale":1}}"#
            )?;
        }
    } // closing stdin lets kaleido exit after the last answer
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    // kaleido 0.2.1 prints one start-up JSON line, then one JSON line per request
    let mut lines = stdout.lines().skip(1);
    let mut out = Vec::new();
    for format in formats {
        let line = lines
            .next()
            .ok_or_else(|| anyhow!("kaleido exited without rendering the figure"))??;
        let v: serde_json::Value = serde_json::from_str(&line).context("kaleido's answer")?;
        if v["code"].as_i64() != Some(0) {
            bail!("kaleido failed: {}", v["message"]);
        }
        let result = v["result"]
            .as_str()
            .ok_or_else(|| anyhow!("kaleido gave no image"))?;
        out.push(match format {
            FigureFormat::Png => base64::engine::general_purpose::STANDARD
                .decode(result.trim())
                .context("kaleido's PNG")?,
            _ => result.as_bytes().to_vec(),
        });
    }
    child.wait()?;
    Ok(out)
}

/// The kaleido executable and a local plotly.js: `$KALEIDO_DIR/kaleido` and `$PLOTLYJS`, else
/// the project's notebook venv (`.venv-nb`).
fn kaleido_paths() -> Result<(PathBuf, PathBuf)> {
    if let (Some(dir), Some(js)) = (
        std::env::var_os("KALEIDO_DIR"),
        std::env::var_os("PLOTLYJS"),
    ) {
        let exe = Path::new(&dir).join("kaleido");
        if exe.is_file() && Path::new(&js).is_file() {
            return Ok((exe, PathBuf::from(js)));
        }
    }
    let lib = crate::paths::project_root().join(".venv-nb/lib");
    let site = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.join("kaleido/executable/kaleido").is_file());
    match site {
        Some(site) => Ok((
            site.join("kaleido/executable/kaleido"),
            site.join("plotly/package_data/plotly.min.js"),
        )),
        None => bail!(
            "static figure export needs kaleido 0.2.1: run `scripts/setup.sh notebooks` \
             (the project's notebook venv) or set KALEIDO_DIR and PLOTLYJS"
        ),
    }
}
