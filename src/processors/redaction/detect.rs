//! Finding sensitive values: the user's `blocked_values` and the built-in detectors compiled
//! into one `RegexSet`, so a value is scanned once and untouched values cost no allocation.
//! Detectors whose regex over-matches (card numbers, SSNs, IPs, phones) confirm each match
//! with a validator: a Luhn check, SSN ranges, a real IPv6 parse, digit counts.

use std::ops::Range;

use regex::{Regex, RegexSet};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    Email,
    CreditCard,
    UsSsn,
    Ipv4,
    Ipv6,
    Jwt,
    BearerToken,
    Phone,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::CreditCard => "credit_card",
            Builtin::UsSsn => "us_ssn",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
            Builtin::Jwt => "jwt",
            Builtin::BearerToken => "bearer_token",
            Builtin::Phone => "phone",
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Builtin::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            Builtin::CreditCard => r"\b\d(?:[ -]?\d){12,18}\b",
            Builtin::UsSsn => r"\b\d{3}-\d{2}-\d{4}\b",
            Builtin::Ipv4 => {
                r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b"
            }
            Builtin::Ipv6 => r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}",
            Builtin::Jwt => r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            Builtin::BearerToken => r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*",
            Builtin::Phone => {
                r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}"
            }
        }
    }

    /// The part of a regex match to replace, or `None` when the match is a look-alike.
    fn confirm(self, text: &str, m: Range<usize>) -> Option<Range<usize>> {
        let s = &text[m.clone()];
        let before = text[..m.start].chars().next_back();
        let after = text[m.end..].chars().next();
        match self {
            Builtin::CreditCard => luhn(s).then_some(m),
            Builtin::UsSsn => {
                // `\d` is Unicode: a match of other scripts' digits is no SSN, and slicing
                // it by byte offsets below would split a character.
                if !s.is_ascii() {
                    return None;
                }
                let area: u32 = s[0..3].parse().ok()?;
                let group: u32 = s[4..6].parse().ok()?;
                let serial: u32 = s[7..11].parse().ok()?;
                let valid = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
                valid.then_some(m)
            }
            // Not part of a longer dotted sequence (OIDs, versions like 1.2.3.4.5).
            Builtin::Ipv4 => {
                let dotted = |c: Option<char>| c.is_some_and(|c| c == '.' || c.is_ascii_digit());
                (!dotted(before) && !dotted(after)).then_some(m)
            }
            Builtin::Ipv6 => {
                let hexy = |c: Option<char>| c.is_some_and(|c| c.is_ascii_hexdigit() || c == ':');
                if hexy(before) || hexy(after) {
                    return None;
                }
                s.parse::<std::net::Ipv6Addr>().ok().map(|_| m)
            }
            // Keep the scheme word: `Bearer ****` still says what it was. A token looks like
            // one: long, or with a digit (not "the bearer of news").
            Builtin::BearerToken => {
                let token_start = s.find(|c: char| c.is_whitespace())?;
                let skip = s[token_start..].find(|c: char| !c.is_whitespace())? + token_start;
                let token = &s[skip..];
                let looks_like = token.len() >= 16
                    || (token.len() >= 8 && token.bytes().any(|b| b.is_ascii_digit()));
                looks_like.then_some(m.start + skip..m.end)
            }
            Builtin::Phone => {
                let digits = s.bytes().filter(u8::is_ascii_digit).count();
                let word = |c: Option<char>| {
                    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == ':')
                };
                // Dates (2024-01-15) and times have too few digits; ids glued to words are not phones.
                ((10..=15).contains(&digits) && !word(before) && !word(after)).then_some(m)
            }
            Builtin::Email | Builtin::Jwt => Some(m),
        }
    }
}

/// The Luhn checksum over the digits of `s` (13 to 19 of them).
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What a pattern is, for counting and for choosing how to replace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Blocked,
    Builtin(Builtin),
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Blocked => "blocked_value",
            Kind::Builtin(b) => b.name(),
        }
    }
}

pub struct Detector {
    set: RegexSet,
    regexes: Vec<(Kind, Regex)>,
}

/// One replacement made in a value.
pub struct Hit {
    pub kind: Kind,
}

impl Detector {
    pub fn new(blocked: &[String], builtins: &[Builtin]) -> Result<Self, regex::Error> {
        let mut patterns: Vec<(Kind, String)> =
            blocked.iter().map(|p| (Kind::Blocked, p.clone())).collect();
        patterns.extend(
            builtins
                .iter()
                .map(|b| (Kind::Builtin(*b), b.pattern().to_string())),
        );
        let set = RegexSet::new(patterns.iter().map(|(_, p)| p.as_str()))?;
        let regexes = patterns
            .into_iter()
            .map(|(k, p)| Regex::new(&p).map(|r| (k, r)))
            .collect::<Result<_, _>>()?;
        Ok(Detector { set, regexes })
    }

    /// Replaces what the patterns find, in pattern order (as contrib applies `blocked_values`
    /// one after another). `None` when nothing matched: the common case allocates nothing.
    pub fn redact(
        &self,
        value: &str,
        replace: &mut dyn FnMut(Kind, &str) -> String,
        hits: &mut Vec<Hit>,
    ) -> Option<String> {
        if self.regexes.is_empty() {
            return None;
        }
        // Most values hold nothing: a search that stops at the first match rules them out
        // for less than the overlapping search that says which patterns matched.
        if !self.set.is_match(value) {
            return None;
        }
        let matched = self.set.matches(value);
        let mut current: Option<String> = None;
        for i in matched.iter() {
            let (kind, re) = &self.regexes[i];
            let text = current.as_deref().unwrap_or(value);
            let mut out = String::new();
            let mut last = 0;
            let mut changed = false;
            for m in re.find_iter(text) {
                let range = match kind {
                    Kind::Blocked => Some(m.range()),
                    Kind::Builtin(b) => b.confirm(text, m.range()),
                };
                let Some(r) = range else { continue };
                if r.is_empty() {
                    continue;
                }
                out.push_str(&text[last..r.start]);
                out.push_str(&replace(*kind, &text[r.clone()]));
                last = r.end;
                changed = true;
                hits.push(Hit { kind: *kind });
            }
            if changed {
                out.push_str(&text[last..]);
                current = Some(out);
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Detector {
        use Builtin::*;
        Detector::new(
            &[],
            &[
                Email,
                CreditCard,
                UsSsn,
                Ipv4,
                Ipv6,
                Jwt,
                BearerToken,
                Phone,
            ],
        )
        .unwrap()
    }

    fn mask(d: &Detector, s: &str) -> String {
        let mut hits = Vec::new();
        d.redact(s, &mut |_, _| "****".into(), &mut hits)
            .unwrap_or_else(|| s.to_string())
    }

    #[test]
    fn finds_pii_of_every_kind() {
        let d = all();
        for (input, want) in [
            ("mail jane.doe+x@example.co.uk now", "mail **** now"),
            ("card 4111 1111 1111 1111 ok", "card **** ok"),
            ("card 4111-1111-1111-1111", "card ****"),
            ("ssn 123-45-6789", "ssn ****"),
            ("from 192.168.1.20:8080", "from ****:8080"),
            ("peer 2001:db8::8a2e:370:7334 x", "peer **** x"),
            ("fe80::1", "****"),
            (
                "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig-_x",
                "tok ****",
            ),
            (
                "Authorization: Bearer abc.DEF-123_~+/==",
                "Authorization: Bearer ****",
            ),
            ("bearer 9f86d081884c7d659a2feaa0c55ad015", "bearer ****"),
            ("call +1 415-555-2671 today", "call **** today"),
            ("call (415) 555-2671", "call ****"),
        ] {
            assert_eq!(mask(&d, input), want, "{input}");
        }
    }

    #[test]
    fn leaves_look_alikes_alone() {
        let d = all();
        for s in [
            "order 4111 1111 1111 1112", // Luhn-invalid
            "order id 1234567890123",    // Luhn-invalid 13 digits
            "version 1.42.0",
            "libfoo 1.2.3.4.5",            // dotted, not an IP
            "at 2024-01-15T10:30:45.123Z", // timestamp
            "time 12:30:45",               // not IPv6
            "mac aa:bb:cc:dd:ee:ff",       // not IPv6
            "epoch 1700000000123",         // 13 digits, Luhn-invalid
            "ssn-like 000-12-3456",        // invalid area
            "span 7f3a9c1e2b4d5a6f",       // hex id
            "GET /api/v1/users",
            "bearer of news",
            "user@localhost", // no TLD
        ] {
            assert_eq!(mask(&d, s), s, "{s}");
        }
    }

    #[test]
    fn unicode_digits_are_no_ssn_and_no_panic() {
        let d = all();
        let s = "ssn \u{0661}\u{0662}\u{0663}-\u{0664}\u{0665}-\u{0666}\u{0667}\u{0668}\u{0669}";
        assert_eq!(mask(&d, s), s);
    }

    #[test]
    fn luhn_check() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("5500 0000 0000 0004"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("411111111111"));
    }

    #[test]
    fn blocked_values_apply_in_order_before_builtins() {
        let d = Detector::new(&["secret-\\w+".into()], &[Builtin::Email]).unwrap();
        let mut hits = Vec::new();
        let out = d
            .redact(
                "secret-abc to a@b.io",
                &mut |k, _| format!("<{}>", k.label()),
                &mut hits,
            )
            .unwrap();
        assert_eq!(out, "<blocked_value> to <email>");
        assert_eq!(hits.len(), 2);
        assert!(d
            .redact("nothing here", &mut |_, _| unreachable!(), &mut hits)
            .is_none());
    }
}
