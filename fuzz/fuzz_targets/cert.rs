#![no_main]
// The loader and what kpki does after it: kpki::fuzz::cert.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kpki::fuzz::cert(data));
