//! The configuration stores of the native gateway, chosen by `--store`.

mod file;

use komainu_core::store::{ConfigStore, MemoryConfigStore, StoreError};
use komainu_core::Document;

pub use file::FileConfigStore;

/// The configuration store chosen by configuration (static dispatch).
pub enum ConfigStoreKind {
    /// `memory`: nothing persisted.
    Memory(MemoryConfigStore),
    /// `file:PATH`: persisted to a local file.
    File(FileConfigStore),
}

impl ConfigStoreKind {
    /// Opens the store named by a `--store` value.
    pub fn open(spec: &str) -> Result<Self, String> {
        if spec == "memory" {
            return Ok(Self::Memory(MemoryConfigStore::default()));
        }
        if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err("--store file: needs a path, e.g. file:./komainu-data.json".into());
            }
            return Ok(Self::File(FileConfigStore::new(path)));
        }
        if spec.starts_with("redis://") || spec.starts_with("rediss://") {
            return Err(format!(
                "--store {spec}: the Redis store is not part of this build yet; use file:PATH or memory"
            ));
        }
        Err(format!(
            "--store \"{spec}\" is not a store: use file:PATH (the default, file:./komainu-data.json) or memory"
        ))
    }

    /// A description for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory(_) => "memory (nothing persisted)".into(),
            Self::File(f) => format!("file {}", f.path().display()),
        }
    }
}

impl ConfigStore for ConfigStoreKind {
    async fn load(&self) -> Result<Option<Document>, StoreError> {
        match self {
            Self::Memory(s) => s.load().await,
            Self::File(s) => s.load().await,
        }
    }

    async fn save(&self, doc: &Document, expected_revision: u64) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.save(doc, expected_revision).await,
            Self::File(s) => s.save(doc, expected_revision).await,
        }
    }
}
