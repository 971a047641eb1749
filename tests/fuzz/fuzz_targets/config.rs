//! libFuzzer target `config`: see `tests/src/fuzz.rs`, fn `config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm_fuzz::config(data));
