#![no_main]
// The loader and what kpki does after it: kpki::fuzz::age_key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kpki::fuzz::age_key(data));
