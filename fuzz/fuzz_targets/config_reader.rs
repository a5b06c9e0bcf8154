#![no_main]
// The loader and what kpki does after it: kpki::fuzz::config_reader.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kpki::fuzz::config_reader(data));
