//! Phone numbers. A regex finds runs of digits, spaces, `.`, `-`, `/` and parentheses (with an
//! optional leading `+`); code then looks inside each run for the leftmost, longest stretch of
//! whole digit groups that has one of these shapes:
//!
//! - **International**: `+`, `(+CC)`, `00` or `011`, an assigned E.164 country code (the codes
//!   are prefix-free, so the split is unique), an optional `(0)`, and a national number of the
//!   length that country uses (a table for the common ones, 6–12 digits otherwise), 15 digits at
//!   most; `00`/`011` only with a separator somewhere (`0034185854509` is an EAN).
//! - **North American**: `(415) 555-0132`, `415-555-0132`, `415.555.0132`, `415 555 0132`, with
//!   an optional leading `1`; one separator kind between the 3-3-4 groups; or ten digits together
//!   (`4155550132`) when area code and exchange are valid and it is not a compact date.
//! - **Trunk-0 national** (UK, DE, FR, NL, AU, IT, CH, SE, TR, …): a leading `0` then a non-zero
//!   digit; 8–13 digits in 2–4 groups, area 2–5 digits (optionally in parentheses), other groups
//!   2–8 digits, not a date, ZIP+4 or CEP shape; or French pairs `01 23 45 67 89`; or 10–11 digits
//!   unseparated (`02079460958`).
//! - **Trunk-8 national** (RU, KZ): `8 (495) 123-45-67`, `8 995 289 0786`.
//! - **Brazilian national**: `61 9141-7776`, `(61) 99141-7776`.
//! - **Anything phone-like after a keyword** (`tel`, `phone`, `mobile`, `called from`, …, within
//!   32 bytes and no other number in between): 7–15 digits, 8+ when unseparated, not a date,
//!   ZIP+4, SSN, IP or slash shape.
//!
//! An extension (`x123`, `ext. 12`, `#12`) is part of the span. Never a phone: a stretch glued
//! to a word or identifier (`ORD-415-555-0132`, `v2.14.0`), one labelled as an identifier
//! (`Order no. 415-555-0132`, `ticket 0161 496 0000`; see `text::ID_LABELS`), one followed by `:` and a digit (a
//! time), ZIP+4 `12345-6789`, SSN `123-45-6789`, dates, dotted quads; digits inside IBAN-shaped
//! tokens are shielded by the scanner, and card numbers win overlaps.
//!
//! Why not the `phonenumber` crate: it parses one number given its region but does not find
//! numbers in running text (no equivalent of libphonenumber's `PhoneNumberMatcher`), and its
//! embedded metadata is a heavy compile on two cores; finding is the hard part here.

use regex::Regex;

use super::text::{ID_LABELS, StackVec, char_at, char_before, glued, keyword_before, labelled};

pub(crate) const PATTERN: &str = r"(?:\(\+|\+\s?|\()?\d[\d().\-/ ]{3,48}\d";

/// Words that introduce a phone number (within 32 bytes, no other number in between). "call"
/// alone is not one: "call scheduled 2024-03-15", "on the call (invoice 2020/4366)".
const KEYWORDS: &[&str] = &[
    "tel",
    "tel.",
    "phone",
    "telephone",
    "mobile",
    "mob",
    "cell",
    "fax",
    "whatsapp",
    "sms",
    "callback",
    "call me",
    "call back",
    "called from",
    "calling from",
    "call from",
    "ring me",
    "reach me",
    "text me",
    "ping me",
    "dial",
    "hotline",
    "telefon",
    "telefono",
    "teléfono",
    "téléphone",
    "tél",
    "handy",
    "móvil",
    "cellulare",
    "portable",
];

/// E.164 country codes in service (ITU-T E.164 list of assigned codes, with +1 and +7 shared).
const COUNTRY_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675,
    676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850,
    852, 853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965, 966,
    967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995, 996, 998,
];

/// National significant number lengths where they are fixed or narrow (ITU national numbering
/// plans); other codes take 6–12.
fn nsn_lengths(cc: u16) -> std::ops::RangeInclusive<usize> {
    match cc {
        1 | 7 | 91 => 10..=10,
        33 | 34 | 31 | 61 | 41 | 48 | 351 | 27 | 420 | 421 | 380 | 40 => 9..=9,
        44 => 9..=10,
        49 => 6..=13,
        39 => 6..=11,
        55 | 86 | 54 => 10..=11,
        45 | 47 | 65 | 852 => 8..=8,
        _ => 6..=12,
    }
}

/// A stretch of a run, parsed: digit groups and what stands between them.
struct Parsed {
    plus: bool,
    /// Each digit group's length and whether it sits in parentheses.
    groups: StackVec<(usize, bool), 32>,
    /// Separators between groups with parentheses removed ("" when only a paren separates).
    seps: StackVec<&'static str, 32>,
    digits: StackVec<u8, 64>,
}

/// Closes the digit group being read, if any; false when a buffer is full.
fn flush(p: &mut Parsed, len: &mut usize, paren: bool, sep: &mut &'static str) -> bool {
    if *len == 0 {
        return true;
    }
    if !p.groups.is_empty() && !p.seps.push(std::mem::take(sep)) {
        return false;
    }
    let ok = p.groups.push((*len, paren));
    *len = 0;
    ok
}

fn parse(s: &str) -> Option<Parsed> {
    let mut p = Parsed {
        plus: false,
        groups: StackVec::new(),
        seps: StackVec::new(),
        digits: StackVec::new(),
    };
    let owned;
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        p.plus = true;
        rest = r.strip_prefix(' ').unwrap_or(r);
    } else if let Some((cc, r)) = rest.strip_prefix("(+").and_then(|r| r.split_once(')')) {
        // `(+358) 09 1234 567`: the country code in parentheses.
        if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.plus = true;
        owned = format!("{cc} {}", r.trim_start_matches([' ', '-', '.']));
        rest = &owned;
    }
    let mut sep: &'static str = "";
    let mut open = false;
    let mut in_group = 0usize;
    let mut group_paren = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => {
                if in_group == 0 {
                    group_paren = open;
                }
                in_group += 1;
                if !p.digits.push(c as u8 - b'0') {
                    return None;
                }
            }
            '(' => {
                if open || !flush(&mut p, &mut in_group, group_paren, &mut sep) {
                    return None;
                }
                open = true;
            }
            ')' => {
                if !open || in_group == 0 || !flush(&mut p, &mut in_group, group_paren, &mut sep) {
                    return None;
                }
                open = false;
            }
            ' ' | '.' | '-' | '/' => {
                if open || !flush(&mut p, &mut in_group, group_paren, &mut sep) {
                    return None;
                }
                // One separator, or `/ ` (`08/ 387 37 16`).
                sep = match (sep, c) {
                    ("", ' ') => " ",
                    ("", '.') => ".",
                    ("", '-') => "-",
                    ("", '/') => "/",
                    ("/", ' ') => "/ ",
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    if open || !flush(&mut p, &mut in_group, group_paren, &mut sep) {
        return None;
    }
    if !sep.is_empty() || p.groups.is_empty() {
        return None;
    }
    let mut kinds: StackVec<&str, 32> = StackVec::new();
    for k in p.seps.iter().filter(|s| !s.is_empty()) {
        kinds.push(k);
    }
    if kinds.iter().filter(|s| s.starts_with('/')).count() > 1 {
        return None;
    }
    // Dots are all-or-nothing (`415.555.0132`, not `1.234,5`), except right after a `+CC`.
    let dotted = &kinds[usize::from(p.plus).min(kinds.len())..];
    if dotted.contains(&".") && dotted.iter().any(|s| *s != ".") {
        return None;
    }
    if p.groups.iter().filter(|g| g.1).count() > 2 {
        return None;
    }
    Some(p)
}

fn lens(p: &Parsed) -> StackVec<usize, 32> {
    let mut out = StackVec::new();
    for g in p.groups.iter() {
        out.push(g.0);
    }
    out
}

fn country_code(ds: &[u8]) -> Option<(u16, usize)> {
    let mut cc = 0u16;
    for (i, &d) in ds.iter().take(3).enumerate() {
        cc = cc * 10 + u16::from(d);
        if COUNTRY_CODES.contains(&cc) {
            return Some((cc, i + 1));
        }
    }
    None
}

fn international(p: &Parsed) -> bool {
    // Each group as a slice of the digits, the international prefix (`+`, `00`, `011`) removed.
    let mut gs: StackVec<(usize, usize, bool), 32> = StackVec::new();
    let mut at = 0;
    for &(len, paren) in p.groups.iter() {
        gs.push((at, at + len, paren));
        at += len;
    }
    let mut prefix = 0;
    if !p.plus {
        // `00` written without any separator is more often a zero-padded code than a number.
        if p.groups.len() < 2 || gs[0].2 {
            return false;
        }
        let first = &p.digits[gs[0].0..gs[0].1];
        prefix = if first.starts_with(&[0, 0]) {
            2
        } else if first == [0, 1, 1] {
            3
        } else {
            return false;
        };
    }
    let group = |i: usize| {
        let (s, e, paren) = gs[i];
        let s = if i == 0 { s + prefix } else { s };
        (&p.digits[s..e], paren)
    };
    let i0 = usize::from(group(0).0.is_empty());
    if i0 >= gs.len() {
        return false;
    }
    let (first, first_paren) = group(i0);
    let Some((cc, cc_len)) = country_code(first) else {
        return false;
    };
    // The first group holds the whole country code (`+44 20…`, `+3170…`, not `+4 420…`).
    if first_paren || first.len() < cc_len || first[0] == 0 {
        return false;
    }
    // A `(0)` trunk written after the country code is not part of the number.
    let mut body: StackVec<u8, 64> = StackVec::new();
    for i in i0..gs.len() {
        let (d, paren) = group(i);
        if !(i > i0 && paren && d == [0]) {
            for &x in d {
                body.push(x);
            }
        }
    }
    let mut nsn = &body[cc_len..];
    // A trunk 0 typed without parentheses (`+44 020 …`) is tolerated once, except in Italy.
    if nsn.first() == Some(&0) && cc != 39 {
        nsn = &nsn[1..];
        if nsn.first() == Some(&0) {
            return false;
        }
    }
    nsn_lengths(cc).contains(&nsn.len()) && cc_len + nsn.len() <= 15
}

fn north_american(p: &Parsed) -> bool {
    let lv = lens(p);
    let l = &lv[..];
    let (body, seps) = match l {
        [3, 3, 4] => (&p.groups[..], &p.seps[..]),
        [1, 3, 3, 4] if p.digits[0] == 1 => (&p.groups[1..], &p.seps[1..]),
        _ => return false,
    };
    if p.plus || body[1].1 || body[2].1 {
        return false;
    }
    if body[0].1 {
        // (415) 555-0132, (415)555-0132
        seps[1] == "-" || seps[1] == " " || seps[1] == "."
    } else {
        !seps[0].is_empty() && seps[0] == seps[1]
    }
}

fn trunk_zero(p: &Parsed) -> bool {
    let ds = &p.digits;
    let lv = lens(p);
    let l = &lv[..];
    if p.plus || ds.len() < 8 || ds[0] != 0 || ds[1] == 0 {
        return false;
    }
    if l.len() == 1 {
        // Unseparated: `02079460958`, `0961073668`; 10–11 digits (9 would take ABA routing
        // numbers).
        return (10..=11).contains(&ds.len());
    }
    if ds.len() > 13 || l.len() > 5 || (ds.len() == 8 && l.len() < 3) {
        return false;
    }
    if l == [2, 2, 2, 2, 2] {
        return true;
    }
    if l.len() > 4 || dated(l) || l == [5, 4] || l == [3, 2, 4] || !(2..=5).contains(&l[0]) {
        return false;
    }
    if p.groups[1..].iter().any(|g| g.1) {
        return false;
    }
    l[1..].iter().all(|&g| (2..=8).contains(&g))
}

/// Day, month and year in some order: `2024 03 15`, `15 03 2024`, `3/15/24`.
fn dated(l: &[usize]) -> bool {
    matches!(l, [4, 1 | 2, 1 | 2] | [1 | 2, 1 | 2, 2 | 4])
}

/// Ten digits written together that are a valid North American number: area code and exchange
/// `[2-9]xx`, neither `N11`, area without a middle 9 (none is assigned), and not a compact date
/// (`2024031514`). Unix timestamps (`1710513000`) start with 1 and fail the area rule.
fn north_american_unseparated(p: &Parsed) -> bool {
    let ds = &p.digits;
    if p.plus || p.groups.len() != 1 || p.groups[0].1 || ds.len() != 10 {
        return false;
    }
    let n11 = |a: u8, b: u8| a == 1 && b == 1;
    let area = ds[0] >= 2 && ds[1] != 9 && !n11(ds[1], ds[2]);
    let exchange = ds[3] >= 2 && !n11(ds[4], ds[5]);
    let num = |r: std::ops::Range<usize>| ds[r].iter().fold(0u32, |a, &d| a * 10 + u32::from(d));
    let date = (1900..=2099).contains(&num(0..4))
        && (1..=12).contains(&num(4..6))
        && (1..=31).contains(&num(6..8));
    area && exchange && !date
}

/// Russian and Kazakh trunk 8: `8 (495) 123-45-67`, `8 995 289 0786`.
fn trunk_eight(p: &Parsed) -> bool {
    let ds = &p.digits;
    let lv = lens(p);
    let l = &lv[..];
    !p.plus
        && ds.len() == 11
        && ds[0] == 8
        && ds[1] >= 3
        && matches!(l, [1, 3, 3, 4] | [1, 3, 3, 2, 2])
        && !p.groups[0].1
}

fn loose(p: &Parsed) -> bool {
    let lv = lens(p);
    let l = &lv[..];
    let n = p.digits.len();
    if !(7..=15).contains(&n) || l.len() > 6 {
        return false;
    }
    if l.len() == 1 {
        return n >= 8;
    }
    if l[1..].iter().any(|&g| g < 2) {
        return false;
    }
    let mut sv: StackVec<&str, 32> = StackVec::new();
    for s in p.seps.iter().filter(|s| !s.is_empty()) {
        sv.push(s);
    }
    let seps = &sv[..];
    // One separator kind, or spaces then hyphens (`63 7566-5530`, `+1 415-555-0132`).
    let consistent = seps
        .windows(2)
        .all(|w| w[0] == w[1] || (w[0] == " " && w[1] == "-"));
    if !consistent || seps.iter().any(|s| s.starts_with('/')) {
        return false;
    }
    let dated = matches!(l, [4, 1 | 2, 1 | 2, ..] | [1 | 2, 1 | 2, 2 | 4, ..]);
    let dotted_quad = l.len() == 4 && l.iter().all(|&g| g <= 3) && seps.iter().all(|s| *s == ".");
    !(dated || dotted_quad || l == [5, 4] || l == [3, 2, 4])
}

/// `61 9141-7776`, `61 99141-7776`, `(61) 99141-7776`: area code, a space, 4 or 5 digits, a
/// hyphen, 4 digits.
fn brazilian(p: &Parsed) -> bool {
    let lv = lens(p);
    let l = &lv[..];
    let shape = matches!(l, [2, 4 | 5, 4]) && p.seps[1] == "-";
    shape
        && !p.plus
        && (p.seps[0] == " " || (p.groups[0].1 && p.seps[0].is_empty()))
        && p.digits[0] != 0
}

fn group_bounds(run: &str) -> StackVec<(usize, usize), 32> {
    let b = run.as_bytes();
    // A run is at most 51 bytes, so at most 26 groups.
    let mut out = StackVec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Where a stretch whose first group is `g..g_end` begins: before a `+`, and before an opening
/// paren that closes right after the group (`(415) …`, not a sentence's `(415-555-0132)`).
fn stretch_start(run: &str, g: usize, g_end: usize) -> usize {
    let b = run.as_bytes();
    let mut s = g;
    if s > 0 && b[s - 1] == b'(' && b.get(g_end) == Some(&b')') {
        s -= 1;
    }
    if s > 0 && b[s - 1] == b'+' {
        s -= 1;
    } else if s > 1 && b[s - 1] == b' ' && b[s - 2] == b'+' {
        s -= 2;
    }
    if s > 0 && b[s - 1] == b'(' && b[s] == b'+' && b.get(g_end) == Some(&b')') {
        s -= 1;
    }
    s
}

/// Not glued to a word or identifier, not after `#` (a reference), not a time (`…:30`).
fn acceptable_edges(text: &str, start: usize, end: usize) -> bool {
    if glued(text, start, end, true) || char_before(text, start) == Some('#') {
        return false;
    }
    // `Order no. 415-555-0132` is an order number; `Order line +44 …` would still be a phone.
    if !text[start..].starts_with(['+', '(']) && labelled(text, start, ID_LABELS) {
        return false;
    }
    if char_before(text, start) == Some('+') {
        return false;
    }
    let time = char_at(text, end) == Some(':')
        && char_at(text, end + 1).is_some_and(|c| c.is_ascii_digit());
    !time
}

/// Length of an extension at the start of `rest`: ` x123`, `ext. 12`, ` #12` (1–6 digits, not
/// followed by a word character); 0 when there is none.
fn ext_len(rest: &str) -> usize {
    let b = rest.as_bytes();
    let mut i = usize::from(b.first() == Some(&b' '));
    let word = b
        .get(i..i + 3)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"ext"));
    match b.get(i) {
        Some(b'x' | b'X' | b'#') => i += 1,
        Some(b'e' | b'E') if word => {
            i += 3;
            i += usize::from(b.get(i) == Some(&b'.'));
        }
        _ => return 0,
    }
    i += usize::from(b.get(i) == Some(&b' '));
    let digits = b[i.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let end = i + digits;
    let next_is_word = char_at(rest, end).is_some_and(|c| c.is_alphanumeric() || c == '_');
    if (1..=6).contains(&digits) && !next_is_word {
        end
    } else {
        0
    }
}

pub(crate) fn find(re: &Regex, text: &str, out: &mut Vec<(usize, usize)>) {
    for m in re.find_iter(text) {
        let run = m.as_str();
        let base = m.start();
        let groups = group_bounds(run);
        let keyword = std::cell::OnceCell::new();
        let mut from = 0;
        while from < groups.len() {
            let found = best_stretch(text, base, run, &groups[from..], false).or_else(|| {
                (from == 0 && *keyword.get_or_init(|| keyword_before(text, base, 32, KEYWORDS)))
                    .then(|| best_stretch(text, base, run, &groups[from..], true))
                    .flatten()
            });
            let Some((s, e, last)) = found else { break };
            out.push((base + s, base + e));
            from += last + 1;
        }
    }
}

/// The leftmost, then longest, stretch of whole groups with a phone shape: (start, end with any
/// extension, index of its last group) relative to the run.
fn best_stretch(
    text: &str,
    base: usize,
    run: &str,
    groups: &[(usize, usize)],
    with_keyword: bool,
) -> Option<(usize, usize, usize)> {
    // Stretches start at the run's first group: a phone carved out of the middle of a longer
    // number (`6280 0542 7484 0181`, `9400 1379 0825 5913 0110 37`) is not a phone. Trailing
    // groups may be left out (`+44 20 7946 0958 12:30`).
    if let Some(first) = groups.first() {
        let s = stretch_start(run, first.0, first.1);
        for j in (0..groups.len()).rev() {
            let e = groups[j].1;
            // A loose shape must be the whole run, or end where a parenthesis opens.
            if with_keyword && j + 1 < groups.len() && !run[e..].trim_start().starts_with('(') {
                continue;
            }
            let Some(p) = parse(&run[s..e]) else { continue };
            let shaped = if with_keyword {
                loose(&p)
            } else {
                international(&p)
                    || north_american(&p)
                    || north_american_unseparated(&p)
                    || trunk_zero(&p)
                    || trunk_eight(&p)
                    || brazilian(&p)
            };
            let ext = ext_len(&text[base + e..]);
            if shaped && acceptable_edges(text, base + s, base + e + ext) {
                return Some((s, e + ext, j));
            }
        }
    }
    None
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
    fn finds_international_formats() {
        for p in [
            "+44 20 7946 0958",
            "+1 (415) 555-0132",
            "+49 30 901820",
            "0044 20 7946 0958",
            "+44(0)115 4960914",
            "+33 (0)1 41 63 60 83",
            "+3170 6690743",
            "+61.437.406.812",
            "+1-537-640-6812x41586",
            "001-415-555-0132",
            "+919141777631",
        ] {
            assert_eq!(spans(&format!("call {p}, thanks")), [p], "{p}");
            assert_eq!(spans(p), [p], "{p}");
        }
    }

    #[test]
    fn finds_national_formats() {
        for p in [
            "(415) 555-0132",
            "(415)555-0132",
            "415-555-0132",
            "415.555.0132",
            "1-800-555-0199",
            "020 7946 0958",
            "(0161) 4960066",
            "04 15 39 15 00",
            "03662 585178",
            "(08)-8690-7366",
            "61 9141-7776",
            "206.269.0743x9150",
        ] {
            assert_eq!(spans(&format!("note {p} end")), [p], "{p}");
        }
    }

    #[test]
    fn extensions_are_part_of_the_number() {
        assert_eq!(ext_len(" x123, ok"), 5);
        assert_eq!(ext_len("ext. 12"), 7);
        assert_eq!(ext_len(" Ext 9"), 6);
        assert_eq!(ext_len("#12"), 3);
        assert_eq!(ext_len(" x1234567"), 0);
        assert_eq!(ext_len(" xylophone"), 0);
        assert_eq!(ext_len(" next 12"), 0);
    }

    #[test]
    fn keyword_admits_unseparated_numbers() {
        assert_eq!(spans("Tel: 9990001111"), ["9990001111"]);
        assert!(
            spans("see 9990001111").is_empty(),
            "area 999 is not North American"
        );
        assert_eq!(
            spans("see 4155550132"),
            ["4155550132"],
            "valid NANP written together"
        );
        assert!(spans("at 1710513000").is_empty(), "a Unix timestamp");
        assert!(spans("at 2024031514").is_empty(), "a compact date and hour");
        assert!(spans("order 4155550132").is_empty(), "labelled as an order");
        assert_eq!(spans("see 0961073668"), ["0961073668"], "trunk 0");
        assert!(
            spans("ref 0961073668").is_empty(),
            "labelled as a reference"
        );
    }

    #[test]
    fn ignores_decoys() {
        for d in [
            "2024-03-15",
            "15.03.2024",
            "03/15/2024",
            "14:30:00",
            "$1,234.56",
            "1.234.567,89",
            "ORD-415-555-0132",
            "62704-1234",
            "02134-5678",
            "123-45-6789",
            "v2.14.0",
            "192.168.100.200",
            "10.0.0.1",
            "4111 1111 1111 1111",
            "2024-03-15T14:30:00Z",
            "1Z 999 AA1 0123 4567 84",
            "#0123 456 789",
            "1710513000",
        ] {
            assert!(spans(d).is_empty(), "{d}: {:?}", spans(d));
            assert!(spans(&format!("call me 2024-03-15 {d}")).is_empty(), "{d}");
        }
    }

    #[test]
    fn separates_a_phone_from_a_neighbouring_number() {
        assert_eq!(
            spans("415-555-0132 / 415-555-0199"),
            ["415-555-0132", "415-555-0199"]
        );
        assert!(
            spans("6280 0542 7484 0181").is_empty(),
            "not carved from a longer number"
        );
        assert_eq!(
            spans("+1 415 555 0132 4111 1111 1111 1111"),
            ["+1 415 555 0132"]
        );
    }
}
