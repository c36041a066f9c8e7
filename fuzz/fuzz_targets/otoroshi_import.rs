//! An Otoroshi export, mapped onto a document (and the document checked).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = komainu_core::migrate::otoroshi::from_export(data, Some("fuzz-shared-key")) {
        let _ = m.document.validate();
        let _ = serde_json::to_string(&m.report);
    }
});
