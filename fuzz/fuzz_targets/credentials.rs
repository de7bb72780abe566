//! libFuzzer entry point of [`quietbox_fuzz::credentials`] (built by `fuzz/run.sh`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quietbox_fuzz::credentials::run(data));
