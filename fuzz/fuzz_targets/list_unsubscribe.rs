//! libFuzzer entry point of [`quietbox_fuzz::list_unsubscribe`] (built by `fuzz/run.sh`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quietbox_fuzz::list_unsubscribe::run(data));
