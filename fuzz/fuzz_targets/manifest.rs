#![no_main]
// The loader and what kpki does after it: kpki::fuzz::manifest.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kpki::fuzz::manifest(data));
