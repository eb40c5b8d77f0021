//! `${env:NAME}`, `${NAME}` and `${env:NAME:-default}` substitution in config values.
//!
//! A variable's value can never add structure (`X=$'host:4317\n  headers: {a: b}'` stays one
//! string), as in the OpenTelemetry Collector, which expands after parsing. References are
//! still found in the raw text, so they work where YAML would not take `${` (inside a flow
//! mapping), errors keep their lines, and references in comments are ignored: each one becomes
//! a placeholder the YAML reader takes as plain text, and the reader puts each variable's value
//! in place of its placeholder inside the scalar it ends up in ([`unmask`]). `$$` is a literal
//! `$`.

use std::borrow::Cow;

/// Placeholder `\u{E000}<index>\u{E001}`: private-use characters, plain text to YAML anywhere.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{message} (line {line})")]
pub struct EnvError {
    pub message: String,
    pub line: usize,
}

/// Where the YAML comment of `line` starts: a `#` at the start or after a blank, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && (prev == ' ' || prev == '\t') => return Some(i),
            None => {}
        }
        prev = c;
    }
    None
}

/// The text with every reference replaced by a placeholder, and the values (looked up with
/// `lookup`) the placeholders stand for. References inside comments are left alone (so
/// commented-out examples may name variables that are not set); one error per bad reference.
pub fn mask(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), Vec<EnvError>> {
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = raw.split_at(comment_start(raw).unwrap_or(raw.len()));
        expand_line(code, i + 1, &lookup, &mut out, &mut values, &mut errors);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok((out, values))
    } else {
        Err(errors)
    }
}

/// A scalar read from masked text, with each placeholder replaced by its value.
pub fn unmask<'a>(scalar: &'a str, values: &[String]) -> Cow<'a, str> {
    if !scalar.contains(OPEN) {
        return Cow::Borrowed(scalar);
    }
    let mut out = String::with_capacity(scalar.len());
    let mut rest = scalar;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let value = after.find(CLOSE).and_then(|end| {
            let v = values.get(after[..end].parse::<usize>().ok()?)?;
            Some((v, end))
        });
        match value {
            Some((v, end)) => {
                out.push_str(v);
                rest = &after[end + CLOSE.len_utf8()..];
            }
            // Not one of ours (the file had the character itself): kept as written.
            None => {
                out.push(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn expand_line(
    text: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    values: &mut Vec<String>,
    errors: &mut Vec<EnvError>,
) {
    let mut placeholder = |out: &mut String, value: String| {
        out.push(OPEN);
        out.push_str(&values.len().to_string());
        out.push(CLOSE);
        values.push(value);
    };
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("$$") {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_and_tail.find('}') else {
            errors.push(EnvError {
                message: "unterminated `${`".into(),
                line,
            });
            rest = "";
            break;
        };
        let body = &body_and_tail[..end];
        rest = &body_and_tail[end + 1..];
        let reference = body.strip_prefix("env:").unwrap_or(body);
        let (name, default) = match reference.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        let valid_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            errors.push(EnvError {
                message: format!("`${{{body}}}` is not a valid environment reference"),
                line,
            });
            continue;
        }
        match (lookup(name), default) {
            (Some(v), _) if !v.is_empty() || default.is_none() => placeholder(out, v),
            (_, Some(d)) => placeholder(out, d.to_string()),
            (None, None) => errors.push(EnvError {
                message: format!("environment variable `{name}` is not set and has no default"),
                line,
            }),
            (Some(v), None) => placeholder(out, v),
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expand(text: &str) -> Result<String, Vec<EnvError>> {
        let (masked, values) = mask(text, env)?;
        Ok(unmask(&masked, &values).into_owned())
    }

    #[test]
    fn forms() {
        assert_eq!(expand("a: ${env:TOKEN}").unwrap(), "a: s3cret");
        assert_eq!(expand("a: ${TOKEN}").unwrap(), "a: s3cret");
        assert_eq!(expand("a: ${env:NOPE:-x:y}").unwrap(), "a: x:y");
        assert_eq!(expand("a: ${env:EMPTY:-d}").unwrap(), "a: d");
        assert_eq!(expand("a: ${EMPTY}").unwrap(), "a: ");
        assert_eq!(expand("a: $$HOME $5").unwrap(), "a: $HOME $5");
    }

    #[test]
    fn values_stay_out_of_the_masked_text() {
        let (masked, values) = mask("a: ${TOKEN}\n", env).unwrap();
        assert!(!masked.contains("s3cret"), "{masked:?}");
        assert_eq!(values, ["s3cret"]);
        assert_eq!(unmask("x\u{E000}9\u{E001}", &values), "x\u{E000}9\u{E001}");
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "# ${NOPE}\na: ${TOKEN} # ${NOPE}\nb: \"x # ${TOKEN}\"\nc: a#${TOKEN}\n";
        assert_eq!(
            expand(text).unwrap(),
            "# ${NOPE}\na: s3cret # ${NOPE}\nb: \"x # s3cret\"\nc: a#s3cret\n"
        );
    }

    #[test]
    fn errors_name_variable_and_line() {
        let errs = mask("a: 1\nb: ${env:MISSING}\nc: ${bad name}\n", env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("`MISSING`"));
        assert_eq!(errs[1].line, 3);
    }
}
