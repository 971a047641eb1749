//! libFuzzer target `envelope_v2`: see `tests/src/fuzz.rs`, fn `envelope_v2`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm_fuzz::envelope_v2(data));
