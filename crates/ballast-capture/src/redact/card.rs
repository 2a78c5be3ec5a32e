//! Payment card numbers (PANs): 13–19 digits, plain or in the usual groups of a single space or
//! hyphen, Luhn-valid, with an IIN in a range a network issues today at a length it issues.
//!
//! Boundaries: a PAN glued to a letter or digit (`1Z999AA10123456784`, a 25-digit run) is not a
//! card; a PAN between hyphens inside an identifier (`ORD-4111111111111111-X`) *is* reported — a
//! full, checksum-valid PAN is card data wherever it sits. An expiry written right after the
//! last group (`4111 1111 1111 1111 12/27`) is left out of the span; a grouped run that is
//! longer than a valid card is not cut down to one.

use regex::Regex;

use super::text::{digits, glued, keyword_before};

/// Candidate shapes: plain runs, 4-4-4-x(-y) and Amex/Diners 4-6-4/4-6-5, one separator kind.
pub(crate) const PATTERN: &str = concat!(
    r"(?-u:\b)(?:",
    r"\d{4}(?: \d{4}){2} \d{1,4}(?: \d{1,4})?",
    r"|\d{4}(?:-\d{4}){2}-\d{1,4}(?:-\d{1,4})?",
    r"|\d{4} \d{6} \d{4,5}",
    r"|\d{4}-\d{6}-\d{4,5}",
    r"|\d{13,19}",
    r")(?-u:\b)",
);

/// One row of the IIN table: numbers whose first `digits` digits lie in `lo..=hi` and whose
/// length is one of `lengths` (bit n set = n digits).
struct Range {
    lo: u32,
    hi: u32,
    digits: u32,
    lengths: u32,
}

const fn lens(from: u32, to: u32) -> u32 {
    let mut m = 0;
    let mut n = from;
    while n <= to {
        m |= 1 << n;
        n += 1;
    }
    m
}

const fn r(lo: u32, hi: u32, digits: u32, lengths: u32) -> Range {
    Range {
        lo,
        hi,
        digits,
        lengths,
    }
}

/// Issuer identification number ranges in use, with the lengths issued.
///
/// Source: Wikipedia, "Payment card number", table "Issuer identification number (IIN)"
/// (the 2024–2025 revisions,
/// <https://en.wikipedia.org/wiki/Payment_card_number#Issuer_identification_number_(IIN)>;
/// written from that table, not re-fetched when this file was written — check it when
/// networks change), which compiles the networks' own publications: Mastercard's 2-series
/// (2221–2720, in issue since 2017), Discover Global Network's IIN ranges (6011, 622126–622925,
/// 644–649, 65), JCB 3528–3589, Diners Club International 300–305, 3095, 36, 38–39. Maestro is
/// taken as the broad 50 and 56–69 the brief gives, at 13–19 digits (Maestro also issues 12;
/// the detector starts at 13). A 13-digit EAN barcode is Luhn-valid one time in ten and may then
/// look like a Visa or Maestro: a number right after `EAN`, `GTIN`, `UPC`, `ISBN`, `SKU`, `IMEI`
/// or `barcode` is not taken as a card. Left out on purpose: UATP (prefix 1,
/// 15 digits — collides with 15-digit parcel tracking numbers) and retired ranges (Visa 13 is
/// kept: still valid per the table; JCB 1800/2131 15-digit and Diners enRoute 2014/2149 are not).
const IIN: &[Range] = &[
    r(4, 4, 1, (1 << 13) | (1 << 16) | (1 << 19)), // Visa (incl. Electron)
    r(51, 55, 2, 1 << 16),                         // Mastercard
    r(2221, 2720, 4, 1 << 16),                     // Mastercard 2-series
    r(34, 34, 2, 1 << 15),                         // American Express
    r(37, 37, 2, 1 << 15),                         // American Express
    r(6011, 6011, 4, lens(16, 19)),                // Discover
    r(644, 649, 3, lens(16, 19)),                  // Discover
    r(65, 65, 2, lens(16, 19)),                    // Discover, RuPay, Troy
    r(622_126, 622_925, 6, lens(16, 19)),          // Discover (co-branded UnionPay)
    r(62, 62, 2, lens(16, 19)),                    // UnionPay
    r(3528, 3589, 4, lens(16, 19)),                // JCB
    r(300, 305, 3, lens(14, 19)),                  // Diners Club International
    r(3095, 3095, 4, lens(14, 19)),                // Diners Club International
    r(36, 36, 2, lens(14, 19)),                    // Diners Club International
    r(38, 39, 2, lens(14, 19)),                    // Diners Club International
    r(50, 50, 2, lens(13, 19)),                    // Maestro, Dankort 5019, Verve 506…
    r(56, 69, 2, lens(13, 19)),                    // Maestro (and RuPay 60, GPN 6x)
    r(2200, 2205, 4, lens(16, 19)),                // Mir 2200–2204, BORICA 2205
    r(31, 31, 2, 1 << 19),                         // China T-Union
    r(81, 82, 2, 1 << 16),                         // RuPay, UnionPay 81
    r(8600, 8600, 4, 1 << 16),                     // UzCard
    r(9792, 9792, 4, 1 << 16),                     // Troy
    r(9860, 9860, 4, 1 << 16),                     // Humo
];

/// A number right after one of these is a product or device code, whatever its checksum.
const BARCODE_WORDS: &[&str] = &["ean", "gtin", "upc", "isbn", "barcode", "sku", "imei"];

/// Luhn (ISO/IEC 7812-1 annex B) over digit values.
pub(crate) fn luhn_valid(ds: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in ds.iter().rev().enumerate() {
        let d = u32::from(d);
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    !ds.is_empty() && sum.is_multiple_of(10)
}

/// True when the digits start with an IIN in [`IIN`] and have a length that range issues.
pub(crate) fn iin_known(ds: &[u8]) -> bool {
    let len = ds.len() as u32;
    IIN.iter().any(|r| {
        if r.lengths & (1 << len.min(31)) == 0 || ds.len() < r.digits as usize {
            return false;
        }
        let p = ds[..r.digits as usize]
            .iter()
            .fold(0u32, |a, &d| a * 10 + u32::from(d));
        (r.lo..=r.hi).contains(&p)
    })
}

/// A card number as digit values: Luhn and IIN both hold.
pub(crate) fn valid(ds: &[u8]) -> bool {
    (13..=19).contains(&ds.len()) && iin_known(ds) && luhn_valid(ds)
}

/// Card spans in `text` (byte ranges).
pub(crate) fn find(re: &Regex, text: &str, out: &mut Vec<(usize, usize)>) {
    for m in re.find_iter(text) {
        let (start, s) = (m.start(), m.as_str());
        let labelled = || keyword_before(text, start, 16, BARCODE_WORDS);
        if !glued(text, start, m.end(), false) {
            if valid(&digits(s)) && !labelled() {
                out.push((start, m.end()));
            }
            continue;
        }
        // Glued at the end to an expiry (`4111 1111 1111 1111 12/27`): drop that group. A
        // number that is merely too long (`… 1111 293`) is not cut: its prefix would be a card
        // by chance one time in ten.
        if let Some(cut) = s.rfind([' ', '-']) {
            let end = start + cut;
            if !glued(text, start, end, false) && valid(&digits(&s[..cut])) && !labelled() {
                out.push((start, end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(s: &str) -> Vec<u8> {
        digits(s).to_vec()
    }

    /// Appends the Luhn check digit to a payload.
    fn with_check(payload: &str) -> String {
        (0..10)
            .map(|c| format!("{payload}{c}"))
            .find(|s| luhn_valid(&ds(s)))
            .unwrap_or_default()
    }

    #[test]
    fn luhn_accepts_known_test_numbers_and_rejects_a_changed_digit() {
        for n in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "79927398713",
        ] {
            assert!(luhn_valid(&ds(n)), "{n}");
        }
        assert!(!luhn_valid(&ds("4111111111111112")));
        assert!(!luhn_valid(&ds("79927398710")));
    }

    #[test]
    fn mastercard_two_series_edges() {
        assert!(valid(&ds(&with_check("222100000000000"))));
        assert!(valid(&ds(&with_check("272099999999999"))));
        assert!(!valid(&ds(&with_check("222099999999999"))));
        assert!(!valid(&ds(&with_check("272100000000000"))));
    }

    #[test]
    fn iin_range_edges_and_lengths() {
        // (payload without check digit, expected)
        let cases = [
            ("510000000000000", true),
            ("550000000000000", true),
            ("560000000000000", true),   // Maestro 56–69, 16 digits
            ("560000000000", true),      // Maestro at 13 digits
            ("36000000000000000", true), // Diners at 18 digits
            ("34000000000000", true),    // Amex 15
            ("3400000000000000", false), // Amex 17 digits
            ("601100000000000", true),
            ("622126000000000", true),
            ("622925000000000", true),
            ("644000000000000", true),
            ("649999999999999", true),
            ("352800000000000", true),
            ("358999999999999", true),
            ("352700000000000", false), // 3527: not JCB, not anything
            ("359000000000000", false),
            ("3000000000000", true), // Diners 14
            ("3059999999999", true),
            ("3060000000000", false), // 306: not Diners
            ("3600000000000", true),
            ("3800000000000", true),
            ("3999999999999", true),
            ("400000000000", true),       // Visa 13
            ("40000000000000", false),    // Visa 15
            ("400000000000000000", true), // Visa 19
            ("100000000000000", false),   // UATP left out
            ("700000000000000", false),
        ];
        for (payload, want) in cases {
            let n = with_check(payload);
            assert_eq!(valid(&ds(&n)), want, "{n}");
        }
    }

    fn spans(text: &str) -> Vec<&str> {
        let re = Regex::new(PATTERN).unwrap();
        let mut out = Vec::new();
        find(&re, text, &mut out);
        out.iter().map(|&(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn finds_grouped_and_plain_numbers() {
        assert_eq!(
            spans("card 4111 1111 1111 1111 ok"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(spans("card 4111-1111-1111-1111."), ["4111-1111-1111-1111"]);
        assert_eq!(spans("amex 3782 822463 10005"), ["3782 822463 10005"]);
        assert_eq!(spans("mc 2223000048400011"), ["2223000048400011"]);
        assert_eq!(spans("ORD-4111111111111111-X"), ["4111111111111111"]);
    }

    #[test]
    fn ignores_numbers_labelled_as_product_codes() {
        assert!(spans("EAN 4222222222222").is_empty());
        assert!(spans("IMEI: 490154203237518").is_empty());
        assert_eq!(spans("card 4222222222222"), ["4222222222222"]);
    }

    #[test]
    fn drops_an_expiry_typed_after_the_number() {
        assert_eq!(spans("4111 1111 1111 1111 12/27"), ["4111 1111 1111 1111"]);
    }

    #[test]
    fn does_not_cut_a_card_out_of_a_longer_grouped_number() {
        assert!(spans("4111 1111 1111 1111 293").is_empty());
    }

    #[test]
    fn ignores_invalid_luhn_glued_runs_and_mixed_separators() {
        assert!(spans("4111 1111 1111 1112").is_empty());
        assert!(spans("1Z4111111111111111").is_empty());
        assert!(spans("41111111111111110000").is_empty());
        assert!(spans("4111 1111-1111 1111").is_empty());
        assert!(spans("4111111111111111.50").is_empty());
    }
}
