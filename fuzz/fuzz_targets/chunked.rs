//! A chunked body: the verdict does not depend on how the bytes arrive.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| komainu_native::fuzzing::chunked(data));
