//! `url_query_params`: replaces the values of named query parameters inside URL values, keeping
//! the URL valid (the replacement uses only characters allowed in a query).

/// Attribute keys whose whole value is a query string rather than a URL.
pub fn is_query_key(key: &str) -> bool {
    key == "url.query"
}

/// Replaces the values of `params` (names compared case-insensitively) in the query of `value`
/// (everything after `?` up to `#`, or all of it when `whole_query`). `None` when unchanged.
pub fn scrub(
    value: &str,
    params: &[String],
    whole_query: bool,
    replace: &mut dyn FnMut(&str) -> String,
) -> Option<String> {
    let start = if whole_query { 0 } else { value.find('?')? + 1 };
    let end = value[start..].find('#').map_or(value.len(), |i| start + i);
    let query = &value[start..end];
    if !query.contains('=') {
        return None;
    }
    let mut out = String::with_capacity(value.len());
    out.push_str(&value[..start]);
    let mut changed = false;
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && params.iter().any(|p| p.eq_ignore_ascii_case(k)) => {
                out.push_str(k);
                out.push('=');
                out.push_str(&replace(v));
                changed = true;
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(&value[end..]);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str, whole: bool) -> Option<String> {
        let params = ["token".to_string(), "password".to_string()];
        scrub(v, &params, whole, &mut |_| "****".into())
    }

    #[test]
    fn replaces_named_params_only() {
        assert_eq!(
            s(
                "https://x.io/a/b?token=abc&page=2&Password=p%40ss#frag",
                false
            )
            .as_deref(),
            Some("https://x.io/a/b?token=****&page=2&Password=****#frag")
        );
        assert_eq!(s("token=abc&x=1", true).as_deref(), Some("token=****&x=1"));
        assert_eq!(s("https://x.io/a?page=2", false), None);
        assert_eq!(
            s("https://x.io/token=abc", false),
            None,
            "a path is not a query"
        );
        assert_eq!(s("/a?token=", false), None, "empty values stay");
    }
}
