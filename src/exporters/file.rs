//! `file`: one OTLP/JSON `ExportTraceServiceRequest` per line (what the contrib file exporter
//! writes), with optional size-based rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BoxFuture, BuildError, ExportError, Exporter, ExporterConfig, ExporterContext,
};
use crate::data::{heavy, json, SpanBatch};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// Rotate when the file would pass this size (default 100).
    #[serde(default = "hundred")]
    pub max_megabytes: u64,
    /// Rotated files kept as `<path>.1` (newest) .. `<path>.N` (default 100).
    #[serde(default = "hundred_usize")]
    pub max_backups: usize,
}

fn hundred() -> u64 {
    100
}
fn hundred_usize() -> usize {
    100
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File to append to; its directory must exist.
    pub path: PathBuf,
    /// Size-based rotation; none by default.
    #[serde(default)]
    pub rotation: Option<Rotation>,
}

impl Check for FileConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            out.push((
                "path".into(),
                format!("directory {} does not exist", dir.display()),
            ));
        }
        if let Some(r) = &self.rotation {
            if r.max_megabytes == 0 {
                out.push(("rotation.max_megabytes".into(), "must be at least 1".into()));
            }
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Ok(Arc::new(parse_config::<FileConfig>(v)?))
}

impl ExporterConfig for FileConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        let file = open(&self.path).map_err(|e| {
            BuildError::new(&ctx.id, format!("cannot open {}: {e}", self.path.display()))
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Arc::new(FileExporter {
            state: Arc::new(Mutex::new(State {
                path: self.path.clone(),
                file,
                size,
                rotation: self.rotation.clone(),
            })),
        }))
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct State {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<Rotation>,
}

impl State {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(r) = &self.rotation {
            let max = r.max_megabytes * 1024 * 1024;
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate(r.max_backups)?;
            }
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, backups: usize) -> std::io::Result<()> {
        self.file.flush()?;
        let numbered = |i: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if backups == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(backups));
            for i in (1..backups).rev() {
                let from = numbered(i);
                if from.exists() {
                    std::fs::rename(&from, numbered(i + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

struct FileExporter {
    state: Arc<Mutex<State>>,
}

impl Exporter for FileExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let mut line =
                heavy(batch.len(), || json::encode_request(batch.resource_spans())).into_bytes();
            line.push(b'\n');
            let state = self.state.clone();
            // File I/O blocks; keep it off the runtime threads. The lock never spans an await.
            tokio::task::spawn_blocking(move || {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.write_line(&line)
            })
            .await
            .map_err(|e| ExportError::Retryable {
                reason: e.to_string(),
                retry_after: None,
            })?
            .map_err(|e| ExportError::Retryable {
                reason: format!("writing file: {e}"),
                retry_after: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spans.jsonl");
        let mut s = State {
            path: path.clone(),
            file: open(&path).unwrap(),
            size: 0,
            rotation: Some(Rotation {
                max_megabytes: 1,
                max_backups: 2,
            }),
        };
        let line = vec![b'x'; 700 * 1024];
        for _ in 0..4 {
            s.write_line(&line).unwrap();
        }
        assert!(path.exists());
        assert!(dir.path().join("spans.jsonl.1").exists());
        assert!(dir.path().join("spans.jsonl.2").exists());
        assert!(!dir.path().join("spans.jsonl.3").exists());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 700 * 1024);
    }
}
