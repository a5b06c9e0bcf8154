#![no_main]
// The loader and what kpki does after it: kpki::fuzz::csr.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kpki::fuzz::csr(data));
