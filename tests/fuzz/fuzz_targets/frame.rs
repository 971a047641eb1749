//! libFuzzer target `frame`: see `tests/src/fuzz.rs`, fn `frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm_fuzz::frame(data));
