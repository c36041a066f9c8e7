//! The deployment key (`--secret-key`, `KOMAINU_SECRET_KEY`): it seals what
//! HS256 verification needs of each secret, and is kept outside the store,
//! so that a copy of the store lets nobody call as a key.
//!
//! Where it comes from: the flag; else, beside a `file:` store, a key file
//! (`PATH.key`, mode 0600) created at first start; else, for `memory`, one
//! made for this run (nothing is persisted anyway). A Redis store is shared:
//! its instances must be given the same key, so none is made up; without
//! one, HS256 JWTs are checked only for secrets given in clear since start.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use komainu_core::secret::SealingKey;

use crate::random;
use crate::store::ConfigStoreKind;

/// The deployment key for this store, if there is one.
pub fn resolve(flag: Option<&str>, store: &ConfigStoreKind) -> Result<Option<SealingKey>, String> {
    if let Some(text) = flag {
        return SealingKey::from_text(text)
            .map(Some)
            .map_err(|e| format!("--secret-key: {e}"));
    }
    match store {
        ConfigStoreKind::File(file) => key_file(&key_path(file.path())).map(Some),
        ConfigStoreKind::Memory(_) => {
            let text = random::new_secret()?;
            SealingKey::from_text(&text)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        ConfigStoreKind::Redis(_) => {
            tracing::warn!(
                "no deployment key (--secret-key / KOMAINU_SECRET_KEY): API keys' HS256 JWTs cannot be checked \
                 from what the shared store holds; give every instance the same key (openssl rand -base64 32)"
            );
            Ok(None)
        }
    }
}

/// The key file of a data file: `komainu-data.json` → `komainu-data.json.key`.
pub fn key_path(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Reads the key file, or creates it (mode 0600) with a new random key.
fn key_file(path: &Path) -> Result<SealingKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            SealingKey::from_text(text.trim())
                .map_err(|e| format!("the deployment key file {}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = random::new_secret()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| {
                format!(
                    "cannot create the deployment key file {}: {e}",
                    path.display()
                )
            })?;
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| {
                    format!(
                        "cannot write the deployment key file {}: {e}",
                        path.display()
                    )
                })?;
            tracing::info!(
                path = %path.display(),
                "created the deployment key file (mode 0600): back it up with the data file, never with exports"
            );
            SealingKey::from_text(&text).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!(
            "cannot read the deployment key file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the deployment key file is readable by others: chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
