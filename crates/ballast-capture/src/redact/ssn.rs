//! US Social Security numbers: `AAA-GG-SSSS` or `AAA GG SSSS` (one separator kind), and a bare
//! nine-digit run only when a keyword (`SSN`, `SS#`, `SS no`, `social security`, `soc sec`)
//! stands within 40 bytes before it: nine digits alone are far more often an order, routing or
//! ZIP+4 number than an SSN.
//!
//! Rules of the SSA (since 2011 randomisation): area 000, 666 and 900–999 are never issued,
//! group 00 and serial 0000 neither. A candidate glued to an identifier (`ORD-123-45-6789`,
//! `123-45-6789-01`) is not an SSN, unless that identifier is the label (`SSN#123-45-6789`), nor
//! is one labelled as another identifier (`Order no. 123-45-6789`).
//! ZIP+4 (`12345-6789`), dates and phone numbers have other shapes and never reach validation.

use regex::Regex;

use super::text::{digits, glued_after, glued_before, keyword_before, labelled};

pub(crate) const PATTERN: &str = r"(?-u:\b)(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?-u:\b)";

/// [`ID_LABELS`](super::text::ID_LABELS) except `id`: an SSN is often given as a (tax) ID.
const NOT_SSN_LABELS: &[&str] = &[
    "order",
    "orders",
    "invoice",
    "inv",
    "ref",
    "reference",
    "ticket",
    "tracking",
    "account",
    "acct",
    "po",
    "sku",
    "serial",
    "case",
    "claim",
    "policy",
    "receipt",
    "transaction",
    "txn",
    "confirmation",
    "booking",
    "item",
    "part",
    "model",
    "batch",
    "lot",
    "ord",
];

const KEYWORDS: &[&str] = &[
    "ssn",
    "ssns",
    "ss#",
    "ss #",
    "ss no",
    "social security",
    "soc sec",
    "soc. sec",
];

/// Area, group and serial as issued.
pub(crate) fn valid(ds: &[u8]) -> bool {
    if ds.len() != 9 {
        return false;
    }
    let n = |r: std::ops::Range<usize>| ds[r].iter().fold(0u32, |a, &d| a * 10 + u32::from(d));
    let (area, group, serial) = (n(0..3), n(3..5), n(5..9));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

pub(crate) fn find(re: &Regex, text: &str, out: &mut Vec<(usize, usize)>) {
    for m in re.find_iter(text) {
        if !valid(&digits(m.as_str())) {
            continue;
        }
        let left_ok = !glued_before(text, m.start(), true) || after_ssn_label(text, m.start());
        if !left_ok || glued_after(text, m.end(), true) {
            continue;
        }
        // `Order no. 123-45-6789` is an order; `Tax ID 123-45-6789` may well be an SSN.
        if labelled(text, m.start(), NOT_SSN_LABELS) {
            continue;
        }
        let bare = m.len() == 9;
        if bare && !keyword_before(text, m.start(), 40, KEYWORDS) {
            continue;
        }
        out.push((m.start(), m.end()));
    }
}

/// `SSN#123-45-6789`, `ssn-123-45-6789`: glued on the left, but to the label itself.
fn after_ssn_label(text: &str, start: usize) -> bool {
    let head = text[..start].to_ascii_lowercase();
    let head = head.trim_end_matches(['#', '-', ':', '_']);
    head.ends_with("ssn") && !head[..head.len() - 3].ends_with(|c: char| c.is_alphanumeric())
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
    fn finds_hyphenated_and_spaced_forms() {
        assert_eq!(spans("ssn 123-45-6789, ok"), ["123-45-6789"]);
        assert_eq!(spans("her number is 123 45 6789"), ["123 45 6789"]);
    }

    #[test]
    fn rejects_never_issued_areas_groups_and_serials() {
        for s in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert!(spans(s).is_empty(), "{s}");
        }
        assert_eq!(spans("899-01-0001"), ["899-01-0001"]);
    }

    #[test]
    fn identifier_labels_other_than_id_rule_out_an_ssn() {
        assert!(spans("Order no. 123-45-6789").is_empty());
        assert!(spans("ticket #: 123-45-6789").is_empty());
        assert_eq!(spans("Tax ID 123-45-6789"), ["123-45-6789"]);
    }

    #[test]
    fn not_ssn_labels_are_id_labels_without_id() {
        let mut ours: Vec<_> = NOT_SSN_LABELS.to_vec();
        ours.push("id");
        ours.sort_unstable();
        let mut all = crate::redact::text::ID_LABELS.to_vec();
        all.sort_unstable();
        assert_eq!(ours, all);
    }

    #[test]
    fn bare_nine_digits_need_a_keyword() {
        assert!(spans("order 123456789 shipped").is_empty());
        assert_eq!(spans("SSN: 123456789"), ["123456789"]);
        assert_eq!(spans("social security number 123456789"), ["123456789"]);
    }

    #[test]
    fn ignores_zip4_dates_phones_order_ids_and_mixed_separators() {
        for s in [
            "Springfield, IL 62704-1234",
            "2024-03-15",
            "415-555-0132",
            "ORD-123-45-6789",
            "123-45-6789-01",
            "123-45 6789",
            "1234-56-7890",
        ] {
            assert!(spans(s).is_empty(), "{s}");
        }
    }
}
