//! A backend's response head: its end and its framing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| komainu_native::fuzzing::response_head(data));
