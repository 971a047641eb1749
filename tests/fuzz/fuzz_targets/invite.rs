//! libFuzzer target `invite`: see `tests/src/fuzz.rs`, fn `invite`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm_fuzz::invite(data));
