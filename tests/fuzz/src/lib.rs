//! The fuzz targets' bodies, shared with the stable test suite (`tests::fuzz`).

#[path = "../../src/fuzz.rs"]
mod checks;

pub use checks::*;
