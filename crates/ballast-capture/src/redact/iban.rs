//! IBANs (ISO 13616): country code, two check digits and a BBAN, compact or with single spaces
//! after multiples of four characters (the printed groups of four), any letter case. Valid when the country is in the SWIFT IBAN
//! registry, the length is exactly that country's, the check digits are 02–98 and the number is
//! 1 mod 97. The BBAN's inner structure is not checked: length and mod-97 already reject all but
//! about 1 in 97 look-alikes, and a structure check would miss IBANs typed with a lower-case or
//! digit bank code that banks still accept.

use regex::Regex;

use super::text::{StackVec, char_at};

/// Where an IBAN may start: two letters and two digits, not glued to a word before.
pub(crate) const PATTERN: &str = r"(?i-u)\b[a-z]{2}[0-9]{2}";

/// Country code and total IBAN length for every country in the SWIFT IBAN Registry, release 101
/// (the registry's `iban-registry-v101.txt`, as carried by python-stdnum's `iban.dat`): 89
/// entries. Territories that use another country's prefix (Åland → FI, French overseas
/// departments → FR, …) are covered by that prefix, as the registry says.
const LENGTHS: &[([u8; 2], usize)] = &[
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BI", 27),
    (*b"BR", 29),
    (*b"BY", 28),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DJ", 27),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FK", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HN", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IQ", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LC", 32),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"LY", 25),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MN", 20),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NI", 28),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"OM", 23),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"RU", 33),
    (*b"SA", 24),
    (*b"SC", 31),
    (*b"SD", 18),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"SO", 23),
    (*b"ST", 25),
    (*b"SV", 28),
    (*b"TL", 23),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
    (*b"YE", 30),
];

/// The registry length for a country code (upper case).
pub(crate) fn length_for(cc: [u8; 2]) -> Option<usize> {
    LENGTHS.iter().find(|(c, _)| *c == cc).map(|&(_, l)| l)
}

/// ISO 7064 mod 97-10 over an upper-case alphanumeric IBAN: 1 for a valid one.
pub(crate) fn mod97(iban: &[u8]) -> Option<u32> {
    let (head, rest) = iban.split_at_checked(4)?;
    let mut acc = 0u32;
    for &b in rest.iter().chain(head) {
        acc = match b {
            b'0'..=b'9' => (acc * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (acc * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return None,
        };
    }
    Some(acc)
}

/// An upper-case compact IBAN: registry country and length, check digits 02–98, mod-97 == 1.
pub(crate) fn valid(iban: &[u8]) -> bool {
    let Some(cc) = iban.first_chunk::<2>() else {
        return false;
    };
    let check = iban.get(2..4).and_then(|c| std::str::from_utf8(c).ok());
    length_for(*cc) == Some(iban.len())
        && check
            .and_then(|c| c.parse::<u8>().ok())
            .is_some_and(|c| (2..=98).contains(&c))
        && mod97(iban) == Some(1)
}

/// One IBAN-shaped token: registry country, the registry's length of characters, not glued
/// to a word after it. `valid` says whether the checksum holds too.
pub(crate) struct Shaped {
    pub start: usize,
    pub end: usize,
    pub valid: bool,
}

/// Every IBAN-shaped token in `text`, valid or not (invalid ones still shield their digits from
/// the card, phone and SSN detectors).
pub(crate) fn find(re: &Regex, text: &str, out: &mut Vec<Shaped>) {
    let mut next_free = 0;
    for m in re.find_iter(text) {
        if m.start() < next_free {
            continue;
        }
        let bytes = text.as_bytes();
        let cc = [
            bytes[m.start()].to_ascii_uppercase(),
            bytes[m.start() + 1].to_ascii_uppercase(),
        ];
        let Some(len) = length_for(cc) else { continue };
        let Some((end, compact)) = walk(text, m.start(), len) else {
            continue;
        };
        if char_at(text, end).is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        out.push(Shaped {
            start: m.start(),
            end,
            valid: valid(&compact),
        });
        next_free = end;
    }
}

/// Collects `len` alphanumerics from `start`, allowing a single space after any multiple of four
/// characters (`DE89 3704 0044 …`, `DE89 37040044 0532013000`); returns the end byte and the
/// upper-cased compact form. Spaces elsewhere end the walk: `SO68267656 Mobile 987 …` is not one
/// token.
fn walk(text: &str, start: usize, len: usize) -> Option<(usize, StackVec<u8, 34>)> {
    let bytes = text.as_bytes();
    let mut compact = StackVec::new();
    let mut group = 0;
    let mut i = start;
    while compact.len() < len {
        let b = *bytes.get(i)?;
        if b.is_ascii_alphanumeric() {
            compact.push(b.to_ascii_uppercase());
            group += 1;
            i += 1;
        } else if b == b' '
            && group > 0
            && group % 4 == 0
            && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            group = 0;
            i += 1;
        } else {
            return None;
        }
    }
    Some((i, compact))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(&str, bool)> {
        let re = Regex::new(PATTERN).unwrap();
        let mut out = Vec::new();
        find(&re, text, &mut out);
        out.iter()
            .map(|s| (&text[s.start..s.end], s.valid))
            .collect()
    }

    #[test]
    fn registry_has_every_country_once() {
        assert_eq!(LENGTHS.len(), 89);
        let mut codes: Vec<_> = LENGTHS.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 89);
        assert_eq!(length_for(*b"NO"), Some(15));
        assert_eq!(length_for(*b"RU"), Some(33));
        assert_eq!(length_for(*b"US"), None);
    }

    #[test]
    fn mod97_accepts_registry_examples_and_rejects_a_changed_digit() {
        for iban in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "NO9386011117947",
            "MT84MALT011000012345MTLCAST001S",
            "RU0304452522540817810538091310419",
            "YE15CBYE0001018861234567891234",
        ] {
            assert!(valid(iban.as_bytes()), "{iban}");
        }
        assert!(!valid(b"GB82WEST12345698765433"));
        assert!(!valid(b"DE8937040044053201300"), "one short");
    }

    #[test]
    fn finds_grouped_lower_case_and_compact_forms() {
        assert_eq!(
            spans("pay GB82 WEST 1234 5698 7654 32 now"),
            [("GB82 WEST 1234 5698 7654 32", true)]
        );
        assert_eq!(
            spans("iban: de89370400440532013000."),
            [("de89370400440532013000", true)]
        );
        assert_eq!(
            spans("NL91 ABNA 0417 1643 00 from"),
            [("NL91 ABNA 0417 1643 00", true)]
        );
        assert_eq!(
            spans("DE89 37040044 0532013000"),
            [("DE89 37040044 0532013000", true)]
        );
        assert!(
            spans("SO68267656 Mobile 987 79 44 38").is_empty(),
            "spaces off the grid"
        );
    }

    #[test]
    fn invalid_checksum_is_shaped_but_not_valid() {
        assert_eq!(
            spans("DE12 3704 0044 0532 0130 00"),
            [("DE12 3704 0044 0532 0130 00", false)]
        );
        assert!(spans("DE89370400440532013000X").is_empty());
        assert!(spans("XDE89370400440532013000").is_empty());
    }
}
