//! Runtime integration tests: one test binary (`cargo test --test runtime`), one module per area.

mod cli;
mod eval;
mod gallery;
