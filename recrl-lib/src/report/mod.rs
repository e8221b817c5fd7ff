//! Step 7: results. For now, figure output shared by every step: standalone HTML that works
//! offline and static SVG/PNG rendered without any download.

pub mod charts;
pub mod figures;

pub use figures::{render_static, save_figure, FigureFormat};
