//! `${env:NAME}`, `${NAME}` and `${env:NAME:-default}` substitution on the raw config text.
//!
//! Done before YAML parsing (as the OpenTelemetry Collector does), so a variable can hold any
//! scalar; substituted values never contain newlines we add, so line numbers stay true.
//! `$$` is a literal `$`.

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

/// Expands every reference using `lookup`, except inside comments (so commented-out examples
/// may name variables that are not set); collects one error per bad reference.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<EnvError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = raw.split_at(comment_start(raw).unwrap_or(raw.len()));
        expand_line(code, i + 1, &lookup, &mut out, &mut errors);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn expand_line(
    text: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<EnvError>,
) {
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
            (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (None, None) => errors.push(EnvError {
                message: format!("environment variable `{name}` is not set and has no default"),
                line,
            }),
            (Some(v), None) => out.push_str(&v),
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

    #[test]
    fn forms() {
        assert_eq!(expand("a: ${env:TOKEN}", env).unwrap(), "a: s3cret");
        assert_eq!(expand("a: ${TOKEN}", env).unwrap(), "a: s3cret");
        assert_eq!(expand("a: ${env:NOPE:-x:y}", env).unwrap(), "a: x:y");
        assert_eq!(expand("a: ${env:EMPTY:-d}", env).unwrap(), "a: d");
        assert_eq!(expand("a: ${EMPTY}", env).unwrap(), "a: ");
        assert_eq!(expand("a: $$HOME $5", env).unwrap(), "a: $HOME $5");
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "# ${NOPE}\na: ${TOKEN} # ${NOPE}\nb: \"x # ${TOKEN}\"\nc: a#${TOKEN}\n";
        assert_eq!(
            expand(text, env).unwrap(),
            "# ${NOPE}\na: s3cret # ${NOPE}\nb: \"x # s3cret\"\nc: a#s3cret\n"
        );
    }

    #[test]
    fn errors_name_variable_and_line() {
        let errs = expand("a: 1\nb: ${env:MISSING}\nc: ${bad name}\n", env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("`MISSING`"));
        assert_eq!(errs[1].line, 3);
    }
}
