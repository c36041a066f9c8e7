//! A client's request head, as the HTTP/1 path parses it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| komainu_native::fuzzing::request_head(data));
