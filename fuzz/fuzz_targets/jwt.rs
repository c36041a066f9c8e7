//! A bearer token, parsed and checked.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        if let Ok(jwt) = komainu_core::auth::jwt::parse(token) {
            let key = komainu_core::secret::SecretHash::from_secret(b"fuzz-secret-0123456789");
            let _ = jwt.signed_by(&key);
            let _ = jwt.is_current(1_800_000_000_000);
        }
        if let Ok(jwt) = komainu_core::auth::jwt::parse_otoroshi(token) {
            let wide = komainu_core::secret::WideHash::from_secret(b"fuzz-secret-0123456789");
            let _ = jwt.signed_by_wide(&wide);
            let _ = jwt.is_current(1_800_000_000_000);
        }
    }
});
