//! Config problems, each with the field path and (when known) the file and line.

use std::fmt;

use super::yaml::{LineMap, Location};

/// A component config's problems: (field path inside the component, problem), before the
/// loader prefixes the component's path and finds the line.
pub type Problems = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Dotted field path, e.g. `processors.batch.timeout`; empty for whole-file problems.
    pub path: String,
    pub message: String,
    pub location: Option<Location>,
}

/// Every problem found in a config, in the order found. Rendered one per line.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
    /// File names, so a location in a second `--config` file can name it.
    pub files: Vec<String>,
}

impl Diagnostics {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>, lines: &LineMap) {
        let path = path.into();
        let location = lines.find(&path);
        self.items.push(Diagnostic {
            path,
            message: message.into(),
            location,
        });
    }

    pub fn push_at(&mut self, path: impl Into<String>, message: impl Into<String>, loc: Location) {
        self.items.push(Diagnostic {
            path: path.into(),
            message: message.into(),
            location: Some(loc),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: ")?;
            if !d.path.is_empty() {
                write!(f, "{}: ", d.path)?;
            }
            write!(f, "{}", d.message)?;
            if let Some(loc) = d.location {
                match self.files.get(loc.file) {
                    Some(name) if self.files.len() > 1 => write!(f, " ({name} line {})", loc.line)?,
                    _ => write!(f, " (line {})", loc.line)?,
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
