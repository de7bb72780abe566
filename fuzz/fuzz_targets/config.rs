//! libFuzzer entry point of [`quietbox_fuzz::config`] (built by `fuzz/run.sh`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quietbox_fuzz::config::run(data));
