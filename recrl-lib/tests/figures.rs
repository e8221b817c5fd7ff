//! Figures are written offline: standalone HTML with plotly.js inside, SVG and PNG by kaleido.
use recrl_lib::display::{render_static, save_figure, FigureFormat};
use recrl_lib::plotly::{common::Title, Layout, Plot, Scatter};

fn line_plot() -> Plot {
    let mut plot = Plot::new();
    plot.add_trace(Scatter::new(vec![0, 1, 2, 3], vec![0.0, 1.0, 4.0, 9.0]).name("squares"));
    plot.set_layout(Layout::new().title(Title::with_text("Squares of n")));
    plot
}

#[test]
fn save_figure_writes_offline_html_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let formats = [FigureFormat::Html, FigureFormat::Svg, FigureFormat::Png];
    let paths = save_figure(&line_plot(), dir.path(), "squares", &formats).unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["squares.html", "squares.svg", "squares.png"]);

    let html = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(
        !html.contains("<script src=\"http"),
        "HTML must not load scripts from the network"
    );
    assert!(
        html.len() > 1_000_000,
        "plotly.js must be embedded ({} bytes)",
        html.len()
    );
    assert!(html.contains("squares"));

    let svg = std::fs::read_to_string(&paths[1]).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("Squares of n"),
        "{}",
        &svg[..svg.len().min(200)]
    );

    let png = std::fs::read(&paths[2]).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height as requested
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (900, 500));
}

#[test]
fn static_render_of_two_figures_differs() {
    let mut other = line_plot();
    other.add_trace(Scatter::new(vec![0, 1], vec![5.0, 5.0]).name("flat"));
    let a = render_static(&line_plot(), &[FigureFormat::Svg], 400, 300).unwrap();
    let b = render_static(&other, &[FigureFormat::Svg], 400, 300).unwrap();
    assert_ne!(a, b);
    assert!(String::from_utf8_lossy(&b[0]).contains("flat"));
}
