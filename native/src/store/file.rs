//! The `file:` store: the configuration in memory, persisted to a local
//! file written atomically (temporary file, fsync, rename, fsync of the
//! directory). The file is read once, at the first load; this process is
//! its only writer.
//!
//! The event log (audit events and alerts) is a second file beside it,
//! `<file>.events`: JSON lines, appended, compacted to the most recent
//! [`EVENT_LOG_KEEP`] when it holds twice as many.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use std::collections::VecDeque;

use komainu_core::store::{ConfigStore, StoreError, EVENT_LOG_KEEP};
use komainu_core::Document;

/// A configuration document kept in one JSON file.
pub struct FileConfigStore {
    path: PathBuf,
    /// The document as last loaded or saved; the lock also serializes writers.
    current: tokio::sync::Mutex<Option<Document>>,
    /// The event log as read at first use, and the lines its file holds.
    events: tokio::sync::Mutex<Option<(VecDeque<String>, usize)>>,
}

impl FileConfigStore {
    /// A store at `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            current: tokio::sync::Mutex::new(None),
            events: tokio::sync::Mutex::new(None),
        }
    }

    /// The event log's file.
    pub fn events_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".events");
        PathBuf::from(name)
    }

    /// The event log, read from its file at first use.
    async fn events_loaded<'a>(
        &self,
        slot: &'a mut Option<(VecDeque<String>, usize)>,
    ) -> Result<&'a mut (VecDeque<String>, usize), StoreError> {
        if slot.is_none() {
            let path = self.events_path();
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )))
                }
            };
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            let skip = lines.len().saturating_sub(EVENT_LOG_KEEP);
            let kept = lines[skip..].iter().map(|l| (*l).to_owned()).collect();
            *slot = Some((kept, lines.len()));
        }
        slot.as_mut()
            .ok_or_else(|| StoreError::Unavailable("the event log is not loaded".into()))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ConfigStore for FileConfigStore {
    async fn load(&self) -> Result<Option<Document>, StoreError> {
        let mut current = self.current.lock().await;
        if current.is_some() {
            return Ok(current.clone());
        }
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot read {}: {e}",
                    self.path.display()
                )))
            }
        };
        let doc = Document::load(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.path.display())))?;
        *current = Some(doc);
        Ok(current.clone())
    }

    async fn save(&self, doc: &Document, expected_revision: u64) -> Result<(), StoreError> {
        let mut current = self.current.lock().await;
        let found = current.as_ref().map_or(0, |d| d.revision);
        if found != expected_revision {
            return Err(StoreError::Conflict {
                expected: expected_revision,
                found,
            });
        }
        let mut text = doc.to_json();
        text.push('\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes()))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the writer task failed: {e}")))?
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot write {}: {e}", self.path.display()))
            })?;
        *current = Some(doc.clone());
        Ok(())
    }

    async fn append_events(&self, entries: &[String]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut slot = self.events.lock().await;
        let (log, in_file) = self.events_loaded(&mut slot).await?;
        let path = self.events_path();
        let failed = |e: std::io::Error| {
            StoreError::Unavailable(format!("cannot write {}: {e}", path.display()))
        };
        let mut text = String::new();
        for entry in entries {
            // One entry per line: JSON text never holds a raw line feed.
            text.push_str(&entry.replace('\n', " "));
            text.push('\n');
        }
        if *in_file + entries.len() > 2 * EVENT_LOG_KEEP {
            // Compaction: the most recent entries, written atomically.
            let mut all: Vec<&str> = log.iter().map(String::as_str).collect();
            all.extend(text.lines());
            let skip = all.len().saturating_sub(EVENT_LOG_KEEP);
            let mut kept = all[skip..].join("\n");
            kept.push('\n');
            let target = path.clone();
            tokio::task::spawn_blocking(move || write_atomically(&target, kept.as_bytes()))
                .await
                .map_err(|e| StoreError::Unavailable(format!("the writer task failed: {e}")))?
                .map_err(failed)?;
            *in_file = EVENT_LOG_KEEP.min(log.len() + entries.len());
        } else {
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            options.mode(0o600);
            let mut file = options.open(&path).await.map_err(failed)?;
            tokio::io::AsyncWriteExt::write_all(&mut file, text.as_bytes())
                .await
                .map_err(failed)?;
            file.sync_data().await.map_err(failed)?;
            *in_file += entries.len();
        }
        log.extend(entries.iter().cloned());
        let excess = log.len().saturating_sub(EVENT_LOG_KEEP);
        log.drain(..excess);
        Ok(())
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut slot = self.events.lock().await;
        let (log, _) = self.events_loaded(&mut slot).await?;
        let skip = log.len().saturating_sub(limit);
        Ok(log.iter().skip(skip).cloned().collect())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("komainu-file-store-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("data.json")
    }

    #[tokio::test]
    async fn round_trip_and_missing_file() {
        let path = temp_path("rt");
        let store = FileConfigStore::new(&path);
        assert_eq!(store.load().await.unwrap(), None);
        let doc = Document {
            revision: 4,
            ..Document::default()
        };
        store.save(&doc, 0).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(doc.clone()));
        assert_eq!(FileConfigStore::new(&path).load().await.unwrap(), Some(doc));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn an_invalid_file_is_reported_and_left_untouched() {
        let path = temp_path("bad");
        let text = r#"{"format":1,"routes":[{"id":"r","paths":["x"],"backend":{}}]}"#;
        std::fs::write(&path, text).unwrap();
        let err = FileConfigStore::new(&path).load().await.unwrap_err();
        assert!(err.to_string().contains("routes[0].paths[0]"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
