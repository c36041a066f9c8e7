//! Path normalization: never panics, and normalizing twice changes nothing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(once) = komainu_core::path::normalize(text) {
            let twice = komainu_core::path::normalize(&once).expect("a normal path stays valid");
            assert_eq!(twice, once);
        }
    }
});
