//! Fast CPU decoding (cargo feature `fast-decode`, on by default). Decoding a token reads every
//! weight once for a handful of rows, so its speed is that of streaming the weights from memory
//! and of the per-operation cost of libtorch's small operations (`BENCHMARKS.md`, step 4):
//!
//! * [`few_rows`]: AVX-512 `x · W` on libtorch's own OpenMP threads (libgomp, found with
//!   `dlopen`), and single-pass rms_norm, SwiGLU, RoPE, one-token attention and KV-cache copy
//!   for up to [`few_rows::MAX_ROWS`] f32 rows;
//! * [`arena`]: the frozen weights in one buffer backed by transparent huge pages;
//! * [`fused`]: `q | k | v` and `gate | up` as one matrix product each;
//! * [`kv_cache`]: KV-cache buffers with spare room, written in place.
//!
//! The model calls into this module at a few marked hooks (`#[cfg(feature = "fast-decode")]`
//! in [`super::model`] and [`super::linear`]). Every hook declines (`None` or `false`) where
//! its kernel does not apply (more rows, gradients, int8 weights, CUDA, no AVX-512 or libgomp),
//! and the model then runs its plain libtorch operations: the same operations that a build
//! without the feature always runs.

pub mod arena;
pub mod few_rows;
pub mod fused;
pub mod kv_cache;

pub use arena::WeightArena;
pub use fused::Fused;
