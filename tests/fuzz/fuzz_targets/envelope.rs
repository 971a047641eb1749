//! libFuzzer target `envelope`: see `tests/src/fuzz.rs`, fn `envelope` and `open_on`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sm_fuzz::open_on(&[crypto::Backend::DEFAULT], data));
