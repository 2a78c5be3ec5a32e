//! E-mail addresses: a practical RFC 5322 `addr-spec` — a dot-atom local part (letters, digits
//! and ``!#$%&'*+/=?^_`{|}~-``, plus tags included, no leading, trailing or doubled dot) and a
//! domain of at least two labels whose last is a 2–63 letter TLD or an IDN (`xn--…` or Unicode
//! letters). Quoted local parts and IP-literal domains are not matched, nor asset names whose
//! "TLD" is a file extension (`logo@2x.png`). Sentence punctuation around the address (`<…>`,
//! `(…)`, a final `.` or `,`, quotes) stays outside the span.

use regex::Regex;

/// Label lengths (at most 63) are checked in code: bounded repetitions of Unicode classes
/// (`\p{L}{2,63}`) make the compiled automaton, and the scanner's construction, 50 times bigger.
pub(crate) const PATTERN: &str = concat!(
    r"[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(?:\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*",
    r"@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?\.)+",
    r"(?:xn--[a-zA-Z0-9-]+|\p{L}\p{L}+)",
);

/// Longest DNS label (RFC 1035).
const MAX_LABEL: usize = 63;

/// Characters allowed in a local part that, at its start, are quoting or punctuation of the
/// sentence rather than part of the address.
const LEADING_PUNCT: &[char] = &[
    '\'', '`', '{', '|', '}', '~', '!', '#', '$', '%', '&', '*', '/', '=', '?', '^', '-', '+',
];

/// How far from an `@` an address can reach: 64 bytes of local part, 253 of domain (RFC 5321).
const REACH: usize = 256;

/// Addresses in `text`. The regex runs only on the whitespace-delimited stretch around each `@`
/// (at most [`REACH`] bytes either side), not over the whole string: an address holds no
/// whitespace, and scanning a short window is much cheaper than scanning the text.
pub(crate) fn find(re: &Regex, text: &str, out: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut next = 0;
    for (at, _) in text.match_indices('@') {
        if at < next {
            continue;
        }
        let floor = at.saturating_sub(REACH);
        let mut lo = bytes[floor..at]
            .iter()
            .rposition(u8::is_ascii_whitespace)
            .map_or(floor, |i| floor + i + 1);
        while !text.is_char_boundary(lo) {
            lo += 1;
        }
        let ceil = (at + REACH).min(bytes.len());
        let mut hi = bytes[at..ceil]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(ceil, |i| at + i);
        while !text.is_char_boundary(hi) {
            hi -= 1;
        }
        for m in re.find_iter(&text[lo..hi]) {
            accept(text, lo + m.start(), lo + m.end(), out);
        }
        next = hi;
    }
}

fn accept(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let s = &text[start..end];
    let trimmed = s.trim_start_matches(LEADING_PUNCT);
    if trimmed.starts_with('@') {
        return;
    }
    // The domain ran into a word (`a@b.com2`): no TLD ends there.
    if super::text::char_at(text, end).is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return;
    }
    if file_name(s) {
        return;
    }
    let domain = s.rsplit('@').next().unwrap_or_default();
    if domain
        .split('.')
        .any(|label| label.chars().count() > MAX_LABEL)
    {
        return;
    }
    out.push((end - trimmed.len(), end));
}

/// File extensions that are not top-level domains: `logo@2x.png`, `icon@3x.webp` are asset
/// names. Only extensions that are no TLD: `.zip`, `.mov`, `.md`, `.rs`, `.py` are domains.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "heic", "pdf", "css",
    "js", "mjs", "ts", "json", "xml", "htm", "html", "txt", "csv", "log", "gz", "tgz", "wav",
    "avi", "mkv", "exe", "dll", "jar", "bin", "rb",
];

fn file_name(address: &str) -> bool {
    let tld = address.rsplit('.').next().unwrap_or_default();
    FILE_EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<&str> {
        let re = Regex::new(PATTERN).unwrap();
        let mut out = Vec::new();
        find(&re, text, &mut out);
        out.iter().map(|&(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn finds_dot_atoms_plus_tags_and_subdomains() {
        assert_eq!(
            spans("mail jane.doe+news@mail.example.co.uk."),
            ["jane.doe+news@mail.example.co.uk"]
        );
        assert_eq!(spans("<o'brien@example.ie>"), ["o'brien@example.ie"]);
        assert_eq!(
            spans("(j_smith@exa-mple.com), or"),
            ["j_smith@exa-mple.com"]
        );
        assert_eq!(spans("'bob@example.org'"), ["bob@example.org"]);
    }

    #[test]
    fn finds_idn_domains() {
        assert_eq!(spans("anna@münchen.de"), ["anna@münchen.de"]);
        assert_eq!(spans("x@example.xn--p1ai"), ["x@example.xn--p1ai"]);
    }

    #[test]
    fn ignores_labels_longer_than_63() {
        let long = "a".repeat(64);
        assert!(spans(&format!("x@{long}.com")).is_empty());
        assert!(spans(&format!("x@example.{long}")).is_empty());
        let ok = "a".repeat(63);
        assert_eq!(spans(&format!("x@{ok}.com")).len(), 1);
    }

    #[test]
    fn ignores_handles_and_bare_at_signs() {
        assert!(spans("@jane and a @ b").is_empty());
        assert!(spans("user@localhost").is_empty());
        assert!(spans("ping me @ 10.0.0.1").is_empty());
        assert!(spans("see logo@2x.png and icon@3x.WEBP").is_empty());
        assert_eq!(spans("files@example.zip"), ["files@example.zip"]);
    }
}
