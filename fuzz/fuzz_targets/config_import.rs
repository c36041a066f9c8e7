//! A configuration document from outside: loaded, sealed, compiled,
//! exported; an export loads back to the same document.
#![no_main]
use komainu_core::secret::SealingKey;
use komainu_core::{Document, Gateway};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut doc) = Document::load(data) else {
        return;
    };
    let key = SealingKey::from_text("fuzz-deployment-key-0123456789abcdef").expect("a valid key");
    doc.seal_secrets(Some(&key));
    let _ = Gateway::compile(&doc, b"claim", Some(&key));
    let export = doc.to_export();
    let again = Document::load(export.to_json().as_bytes()).expect("an export loads back");
    assert_eq!(again, export);
});
