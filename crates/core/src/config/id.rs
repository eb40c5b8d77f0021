//! Component ids: `type` or `type/name`, as in the OpenTelemetry Collector.

use std::fmt;

/// A parsed `type[/name]` id. The type must match `^[a-zA-Z][0-9a-zA-Z_]{0,62}$`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    kind: String,
    name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kind, name) = match text.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (text, None),
        };
        let mut chars = kind.chars();
        let kind_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
            && kind.len() <= 63
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !kind_ok {
            return Err(format!(
                "invalid component id `{text}`: the type must start with a letter and hold only letters, digits and `_`"
            ));
        }
        if let Some(n) = name {
            let ok = !n.is_empty()
                && n.len() <= 1024
                && n.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
            if !ok {
                return Err(format!(
                    "invalid component id `{text}`: the name after `/` must be non-empty letters, digits, `_`, `-`, `.`"
                ));
            }
        }
        Ok(ComponentId {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.kind, n),
            None => f.write_str(&self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ids() {
        let id = ComponentId::parse("otlp/tempo").unwrap();
        assert_eq!(id.kind(), "otlp");
        assert_eq!(id.name(), Some("tempo"));
        assert_eq!(id.to_string(), "otlp/tempo");
        assert!(ComponentId::parse("otlp").unwrap().name().is_none());
        for bad in ["", "1otlp", "ot-lp", "otlp/", "/x"] {
            assert!(ComponentId::parse(bad).is_err(), "{bad}");
        }
    }
}
