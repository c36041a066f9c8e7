//! Credentials found in request headers (header pair, Basic, Bearer), and
//! Otoroshi's forms on a route with its profile.
#![no_main]
use http::{HeaderMap, HeaderValue};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The bytes, split in three, as the values of the headers read.
    let mut parts = data.splitn(8, |&b| b == 0xff);
    let mut headers = HeaderMap::new();
    for name in [
        "authorization",
        "komainu-client-id",
        "komainu-client-secret",
        "x-api-key",
        "otoroshi-client-id",
        "otoroshi-client-secret",
        "otoroshi-authorization",
        "otoroshi-token",
    ] {
        if let Some(Ok(value)) = parts.next().map(HeaderValue::from_bytes) {
            headers.insert(name, value);
        }
    }
    let _ = komainu_core::auth::credentials::extract(&headers);
    if let Ok(Some(found)) = komainu_core::auth::credentials::extract_otoroshi(
        &headers,
        "otoroshi-client-id",
        "otoroshi-client-secret",
    ) {
        let _ = found.claimed_client_id();
    }
});
