//! Step 7: results. Text metrics of explanations ([`text`], [`crate::minilm`], [`scores`]), every
//! run gathered into one table ([`aggregate`]) and the paper's figures ([`results`]), written
//! offline as standalone HTML and static SVG/PNG ([`crate::display::figures`]). `recrl aggregate` and notebook
//! 07 call [`run()`].

pub mod aggregate;
pub mod humaneval;
pub mod results;
pub mod run;
pub mod scores;
pub mod seeds;
pub mod text;

pub use aggregate::{discover, RunRecord};
pub use run::{run, Options, Outputs};
pub use scores::TextReport;
