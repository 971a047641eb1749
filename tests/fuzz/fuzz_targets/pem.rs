//! libFuzzer target `pem`: see `tests/src/fuzz.rs`, fn `pem`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm_fuzz::pem(data));
