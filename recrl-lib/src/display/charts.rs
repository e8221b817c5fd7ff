//! Small chart builders shared by the notebooks and the figures of step 7. Each returns a
//! plotly [`Plot`] for [`crate::display::show`] or [`super::save_figure`].

use plotly::common::{Mode, Title};
use plotly::layout::{Axis, AxisType, Layout};
use plotly::{Bar, Histogram, Plot, Scatter};

/// One named series of (x, y) points.
pub struct Series {
    /// Legend name.
    pub name: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values.
    pub y: Vec<f64>,
}

impl Series {
    /// A named series.
    pub fn new(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            x,
            y,
        }
    }

    /// A series from integer (x, y) pairs, e.g. a frequency count (value, how often).
    pub fn from_pairs(name: impl Into<String>, pairs: &[(usize, usize)]) -> Self {
        let (x, y) = pairs.iter().map(|&(a, b)| (a as f64, b as f64)).unzip();
        Series::new(name, x, y)
    }
}

fn layout(title: &str, x: &str, y: &str, log_x: bool, log_y: bool) -> Layout {
    let axis = |t: &str, log: bool| {
        let a = Axis::new().title(Title::with_text(t));
        if log {
            a.type_(AxisType::Log)
        } else {
            a
        }
    };
    Layout::new()
        .title(Title::with_text(title))
        .x_axis(axis(x, log_x))
        .y_axis(axis(y, log_y))
}

/// Bars with category labels.
pub fn bar(title: &str, x: &str, y: &str, labels: Vec<String>, values: Vec<f64>) -> Plot {
    let mut plot = Plot::new();
    plot.add_trace(Bar::new(labels, values));
    plot.set_layout(layout(title, x, y, false, false));
    plot
}

/// A histogram of `values` (plotly picks the bins).
pub fn histogram(title: &str, x: &str, values: Vec<f64>) -> Plot {
    let mut plot = Plot::new();
    plot.add_trace(Histogram::new(values));
    plot.set_layout(layout(title, x, "count", false, false));
    plot
}

/// Markers per series, optionally on log axes.
pub fn scatter(
    title: &str,
    x: &str,
    y: &str,
    series: Vec<Series>,
    log_x: bool,
    log_y: bool,
) -> Plot {
    traces(title, x, y, series, Mode::Markers, log_x, log_y)
}

/// Lines per series, optionally on log axes.
pub fn lines(title: &str, x: &str, y: &str, series: Vec<Series>, log_x: bool, log_y: bool) -> Plot {
    traces(title, x, y, series, Mode::Lines, log_x, log_y)
}

fn traces(
    title: &str,
    x: &str,
    y: &str,
    series: Vec<Series>,
    mode: Mode,
    log_x: bool,
    log_y: bool,
) -> Plot {
    let mut plot = Plot::new();
    for s in series {
        plot.add_trace(Scatter::new(s.x, s.y).mode(mode.clone()).name(s.name));
    }
    plot.set_layout(layout(title, x, y, log_x, log_y));
    plot
}
