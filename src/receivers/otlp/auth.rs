//! Bearer-token check, in constant time so response timing does not leak the token.

use http::HeaderMap;

/// True when no token is configured, or the request carries `Authorization: Bearer <token>`.
pub fn authorized(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return false;
    };
    // `Bearer`, `bearer`, `BEARER`: the scheme is case-insensitive (RFC 7235 §2.1), and any
    // run of spaces may separate it from the token.
    let value = value.as_bytes();
    let Some((scheme, rest)) = value.split_at_checked(6) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return false;
    }
    let token = rest.trim_ascii_start();
    constant_time_eq(token, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret-dependent in a way worth hiding; the content is.
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bearer() {
        let mut h = HeaderMap::new();
        assert!(authorized(None, &h));
        assert!(!authorized(Some("t0k"), &h));
        h.insert("authorization", "Bearer t0k".parse().unwrap());
        assert!(authorized(Some("t0k"), &h));
        assert!(!authorized(Some("t0K"), &h));
        assert!(!authorized(Some("t0k1"), &h));
        h.insert("authorization", "Basic t0k".parse().unwrap());
        assert!(!authorized(Some("t0k"), &h));
        for scheme in ["bearer t0k", "BEARER t0k", "BeArEr  t0k"] {
            h.insert("authorization", scheme.parse().unwrap());
            assert!(authorized(Some("t0k"), &h), "{scheme}");
        }
        for bad in ["Bearert0k", "Bearer", "Bearer ", "Bearerx t0k"] {
            h.insert("authorization", bad.parse().unwrap());
            assert!(!authorized(Some("t0k"), &h), "{bad}");
        }
    }
}
