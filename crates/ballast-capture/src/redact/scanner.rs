//! The [`Scanner`]: the enabled detectors compiled once, run over a string, overlaps resolved.

use std::borrow::Cow;

use regex::Regex;

use super::{Kind, Span, card, email, iban, phone, ssn};

/// Finds and replaces personal data in strings. Build it once per policy (compiling the regexes
/// takes about 10 ms) and share it: it is `Send + Sync` and holds no per-call state.
///
/// Cost: linear in the text (the `regex` crate's automata, plus validation over candidates of
/// bounded length). Strings with neither an `@` nor seven ASCII digits — most free text — are
/// answered by one pass over the bytes without running any regex (~750 MB/s); strings without
/// personal data do not allocate. On the labelled corpus (`tests/pii/corpus.jsonl`: short notes
/// dense with numbers and PII) one core does about 250,000 strings/s (4 ms per 1,000, ~20 MB/s);
/// `cargo run --release -p ballast-capture --example redact_bench` measures it.
#[derive(Debug, Clone)]
pub struct Scanner {
    enabled: [bool; 5],
    email: Option<Regex>,
    phone: Option<Regex>,
    card: Option<Regex>,
    ssn: Option<Regex>,
    /// Always compiled when any digit detector is on: IBAN-shaped tokens shield their digits.
    iban: Option<Regex>,
}

/// The regexes are constants checked by the unit tests; a failure here is a bug in this file.
fn compile(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(re) => re,
        Err(e) => unreachable!("built-in pattern {pattern:?} does not compile: {e}"),
    }
}

impl Scanner {
    /// A scanner for `kinds` (duplicates are ignored; an empty slice finds nothing).
    pub fn new(kinds: &[Kind]) -> Scanner {
        let mut enabled = [false; 5];
        for &k in kinds {
            enabled[k as usize] = true;
        }
        let on = |k: Kind| enabled[k as usize];
        let digits = on(Kind::Phone) || on(Kind::Card) || on(Kind::Ssn) || on(Kind::Iban);
        Scanner {
            enabled,
            email: on(Kind::Email).then(|| compile(email::PATTERN)),
            phone: on(Kind::Phone).then(|| compile(phone::PATTERN)),
            card: on(Kind::Card).then(|| compile(card::PATTERN)),
            ssn: on(Kind::Ssn).then(|| compile(ssn::PATTERN)),
            iban: digits.then(|| compile(iban::PATTERN)),
        }
    }

    /// A scanner with every detector on.
    pub fn all() -> Scanner {
        Scanner::new(&Kind::ALL)
    }

    /// The detectors this scanner runs.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL.into_iter().filter(|&k| self.enabled[k as usize])
    }

    /// Detected spans: byte offsets, sorted, non-overlapping. Where two detections overlap the
    /// checksummed kind wins (IBAN, then card), then e-mail, SSN, phone; within a kind the
    /// longer span.
    pub fn find(&self, text: &str) -> Vec<Span> {
        let (at, digit_count) = quick_stats(text);
        let mut found: Vec<Span> = Vec::new();
        if let (Some(re), true) = (&self.email, at) {
            let mut v = Vec::new();
            email::find(re, text, &mut v);
            found.extend(v.into_iter().map(|(start, end)| Span {
                start,
                end,
                kind: Kind::Email,
            }));
        }
        if digit_count >= 7 {
            self.find_numbers(text, &mut found);
        }
        resolve(found)
    }

    fn find_numbers(&self, text: &str, found: &mut Vec<Span>) {
        let mut shaped = Vec::new();
        if let Some(re) = &self.iban {
            iban::find(re, text, &mut shaped);
        }
        if self.enabled[Kind::Iban as usize] {
            found.extend(shaped.iter().filter(|s| s.valid).map(|s| Span {
                start: s.start,
                end: s.end,
                kind: Kind::Iban,
            }));
        }
        let shielded = |(s, e): &(usize, usize)| shaped.iter().any(|t| *s < t.end && t.start < *e);
        let mut push = |kind: Kind, v: Vec<(usize, usize)>| {
            found.extend(
                v.into_iter()
                    .filter(|r| !shielded(r))
                    .map(|(start, end)| Span { start, end, kind }),
            );
        };
        if let Some(re) = &self.card {
            let mut v = Vec::new();
            card::find(re, text, &mut v);
            push(Kind::Card, v);
        }
        if let Some(re) = &self.ssn {
            let mut v = Vec::new();
            ssn::find(re, text, &mut v);
            push(Kind::Ssn, v);
        }
        if let Some(res) = &self.phone {
            let mut v = Vec::new();
            phone::find(res, text, &mut v);
            push(Kind::Phone, v);
        }
    }

    /// `text` with every detected span replaced by its kind's placeholder; `counts[kind as
    /// usize]` grows by one per span. Borrowed (no allocation) when nothing is found.
    pub fn redact<'a>(&self, text: &'a str, counts: &mut [u64; 5]) -> Cow<'a, str> {
        let spans = self.find(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in &spans {
            out.push_str(&text[at..s.start]);
            out.push_str(s.kind.placeholder());
            counts[s.kind as usize] += 1;
            at = s.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// Whether `text` has an `@`, and how many ASCII digits (counting stops at 7).
fn quick_stats(text: &str) -> (bool, usize) {
    let mut at = false;
    let mut digits = 0;
    for &b in text.as_bytes() {
        if b == b'@' {
            at = true;
        } else if b.is_ascii_digit() && digits < 7 {
            digits += 1;
        }
        if at && digits >= 7 {
            break;
        }
    }
    (at, digits)
}

/// Greedy by rank then length: keep a span unless it overlaps one already kept. The kept spans
/// are disjoint, so only the nearest one starting before a candidate's end can overlap it:
/// O(k log k) for k candidates.
fn resolve(mut found: Vec<Span>) -> Vec<Span> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by_key(|s| {
        (
            std::cmp::Reverse(s.kind.rank()),
            std::cmp::Reverse(s.end - s.start),
            s.start,
        )
    });
    let mut kept: std::collections::BTreeMap<usize, Span> = std::collections::BTreeMap::new();
    for s in found {
        let clash = kept
            .range(..s.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > s.start);
        if !clash {
            kept.insert(s.start, s);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> (String, [u64; 5]) {
        let mut counts = [0; 5];
        let out = Scanner::all().redact(text, &mut counts).into_owned();
        (out, counts)
    }

    #[test]
    fn scanner_is_send_sync_and_cheap_to_share() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
        assert_send_sync::<std::sync::Arc<Scanner>>();
    }

    #[test]
    fn redact_keeps_the_rest_of_the_string() {
        let (out, counts) = redact(
            "Customer jane.doe@example.com called from +44 20 7946 0958 about card \
             4111 1111 1111 1111, SSN 123-45-6789, refund to GB82 WEST 1234 5698 7654 32.",
        );
        assert_eq!(
            out,
            "Customer <EMAIL> called from <PHONE> about card <CARD>, SSN <SSN>, refund to <IBAN>."
        );
        assert_eq!(counts, [1, 1, 1, 1, 1]);
    }

    #[test]
    fn redact_borrows_when_nothing_is_found() {
        let mut counts = [0; 5];
        let text = "Order ORD-2024-118822 shipped 2024-03-15 to 62704-1234, total $1,234.56.";
        assert!(matches!(
            Scanner::all().redact(text, &mut counts),
            Cow::Borrowed(_)
        ));
        assert_eq!(counts, [0; 5]);
    }

    #[test]
    fn only_enabled_detectors_run() {
        let s = Scanner::new(&[Kind::Email]);
        let spans = s.find("a@b.com 4111 1111 1111 1111");
        assert_eq!(
            spans.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [Kind::Email]
        );
        assert_eq!(s.kinds().collect::<Vec<_>>(), [Kind::Email]);
    }

    #[test]
    fn card_and_iban_win_over_phone() {
        let spans = Scanner::all().find("IBAN DE89 3704 0044 0532 0130 00 and 0044 0532 0130");
        assert_eq!(spans[0].kind, Kind::Iban);
    }

    #[test]
    fn invalid_iban_shields_its_digits() {
        let text = "DE12 4111 1111 1111 1111 11";
        assert!(
            Scanner::all().find(text).is_empty(),
            "{:?}",
            Scanner::all().find(text)
        );
    }

    static SCANNER: std::sync::LazyLock<Scanner> = std::sync::LazyLock::new(Scanner::all);

    proptest::proptest! {
        /// Any string: no panic, spans on char boundaries, sorted and disjoint, and the
        /// redacted text keeps everything outside them.
        #[test]
        fn any_text_gives_well_formed_spans(
            text in "([ a-zA-Z0-9@.+()/#:-]|é|ß|\\PC){0,80}",
        ) {
            let scanner = &*SCANNER;
            let spans = scanner.find(&text);
            for s in &spans {
                proptest::prop_assert!(s.start < s.end && s.end <= text.len());
                proptest::prop_assert!(text.is_char_boundary(s.start));
                proptest::prop_assert!(text.is_char_boundary(s.end));
            }
            proptest::prop_assert!(spans.windows(2).all(|w| w[0].end <= w[1].start));
            let mut counts = [0; 5];
            let out = scanner.redact(&text, &mut counts);
            proptest::prop_assert_eq!(counts.iter().sum::<u64>(), spans.len() as u64);
            if spans.is_empty() {
                proptest::prop_assert_eq!(out.as_ref(), text.as_str());
            }
        }
    }

    #[test]
    fn spans_are_sorted_and_disjoint() {
        let spans = Scanner::all().find("415-555-0132 a@b.com 378282246310005 +49 30 901820");
        assert_eq!(spans.len(), 4);
        assert!(spans.windows(2).all(|w| w[0].end <= w[1].start));
    }
}
