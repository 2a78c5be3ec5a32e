//! Small helpers the detectors share: what stands right before and after a candidate.

/// The character ending just before byte `i`.
pub(crate) fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

/// The character starting at byte `i`.
pub(crate) fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when `start..end` is glued to a longer identifier or number: a letter, digit or `_`
/// right next to it, or a joiner (`. , / _ #` or `-` before; `. , /` or `-` after) followed by a
/// letter or digit on the far side (`ORD#…`, `…-7`, `1.5`, `10.0.0.1`). A hyphen *before* the
/// candidate counts only when `hyphen_joins` is set: a card number inside `ORD-4111…-X` is still
/// a card number, an SSN-shaped `ORD-123-45-6789` is an order id.
pub(crate) fn glued(text: &str, start: usize, end: usize, hyphen_joins: bool) -> bool {
    glued_before(text, start, hyphen_joins) || glued_after(text, end, hyphen_joins)
}

/// The left half of [`glued`].
pub(crate) fn glued_before(text: &str, start: usize, hyphen_joins: bool) -> bool {
    let Some(c) = char_before(text, start) else {
        return false;
    };
    if is_word(c) {
        return true;
    }
    let joiner = matches!(c, '.' | ',' | '/' | '#' | '_') || (hyphen_joins && c == '-');
    joiner && char_before(text, start - c.len_utf8()).is_some_and(is_word)
}

/// The right half of [`glued`].
pub(crate) fn glued_after(text: &str, end: usize, hyphen_joins: bool) -> bool {
    let Some(c) = char_at(text, end) else {
        return false;
    };
    if is_word(c) {
        return true;
    }
    let joiner = matches!(c, '.' | ',' | '/' | '-');
    if joiner && char_at(text, end + c.len_utf8()).is_some_and(|d| d.is_ascii_digit()) {
        return true;
    }
    hyphen_joins && c == '-' && char_at(text, end + 1).is_some_and(is_word)
}

/// True when one of `keywords` (lower case) occurs as a whole word within `window` bytes (at
/// most 64) before `start` with no digit between it and `start`: the keyword introduces this
/// number, not an earlier one. ASCII letters compare case-insensitively, others exactly.
pub(crate) fn keyword_before(text: &str, start: usize, window: usize, keywords: &[&str]) -> bool {
    let bytes = &text.as_bytes()[start.saturating_sub(window).min(start)..start];
    // Only what follows the last digit can introduce this number.
    let hay = match bytes.iter().rposition(u8::is_ascii_digit) {
        Some(i) => &bytes[i + 1..],
        None => bytes,
    };
    let mut buf = [0u8; 64];
    let hay = &hay[hay.len().saturating_sub(buf.len())..];
    let lower = &mut buf[..hay.len()];
    lower.copy_from_slice(hay);
    lower.make_ascii_lowercase();
    let lower = &*lower;
    keywords.iter().any(|k| {
        let k = k.as_bytes();
        !k.is_empty()
            && lower.len() >= k.len()
            && (0..=lower.len() - k.len()).any(|i| {
                lower[i] == k[0]
                    && lower[i..].starts_with(k)
                    && !(i > 0 && lower[i - 1].is_ascii_alphanumeric())
                    && !lower.get(i + k.len()).is_some_and(u8::is_ascii_alphabetic)
            })
    })
}

/// Labels that name an identifier: a phone- or SSN-shaped number right after one of them is that
/// identifier (`Order no. 415-555-0132`, `ticket #123-45-6789`).
pub(crate) const ID_LABELS: &[&str] = &[
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
    "id",
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

/// True when the word right before `start` (skipping spaces, `:#.-(` and a filler such as `no`,
/// `nr`, `number`, `num`) is one of `labels` (lower case ASCII).
pub(crate) fn labelled(text: &str, start: usize, labels: &[&str]) -> bool {
    let b = text.as_bytes();
    let mut i = start;
    for _ in 0..2 {
        let gap = i;
        while i > 0
            && gap - i < 4
            && matches!(b[i - 1], b' ' | b'\t' | b':' | b'#' | b'.' | b'-' | b'(')
        {
            i -= 1;
        }
        let end = i;
        while i > 0 && end - i < 16 && b[i - 1].is_ascii_alphabetic() {
            i -= 1;
        }
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            return false;
        }
        let word = &text[i..end];
        let filler = ["no", "nr", "number", "num", "nbr"];
        if !filler.iter().any(|f| word.eq_ignore_ascii_case(f)) {
            return labels.iter().any(|l| word.eq_ignore_ascii_case(l));
        }
    }
    false
}

/// A vector on the stack for the detectors' scratch data (digit strings, groups): the scan of
/// a string without personal data allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct StackVec<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> StackVec<T, N> {
    pub(crate) fn new() -> Self {
        StackVec {
            items: [T::default(); N],
            len: 0,
        }
    }

    /// Appends `v`; false (and nothing changed) when full.
    pub(crate) fn push(&mut self, v: T) -> bool {
        if self.len == N {
            return false;
        }
        self.items[self.len] = v;
        self.len += 1;
        true
    }
}

impl<T: Copy + Default, const N: usize> std::ops::Deref for StackVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// The ASCII digits of `s` as values, in order (the first 64; callers look at 19 at most).
pub(crate) fn digits(s: &str) -> StackVec<u8, 64> {
    let mut out = StackVec::new();
    for b in s.bytes().filter(u8::is_ascii_digit) {
        out.push(b - b'0');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glued_sees_letters_digits_and_joined_tokens() {
        let t = "ORD-4111-X a 4111 b";
        assert!(!glued(t, 4, 8, false));
        assert!(glued(t, 4, 8, true));
        assert!(!glued(t, 13, 17, true));
        assert!(glued("x1234 ", 1, 5, false));
        assert!(glued("1.234 ", 2, 5, false));
        assert!(glued("10.0.0.1", 0, 2, false));
    }

    #[test]
    fn keyword_before_matches_whole_words_only() {
        assert!(keyword_before("my SSN: 123", 8, 20, &["ssn"]));
        assert!(!keyword_before("assn 123", 5, 20, &["ssn"]));
        assert!(keyword_before("Tel.: 123", 6, 20, &["tel"]));
        assert!(!keyword_before("Tel: 1 and 2", 11, 20, &["tel"]));
    }

    #[test]
    fn labelled_sees_the_word_before_a_number_through_fillers() {
        for t in [
            "Order 1",
            "order no. 1",
            "Order #: 1",
            "ORDER NUMBER 1",
            "(ref 1",
            "Ticket-1",
        ] {
            assert!(labelled(t, t.len() - 1, ID_LABELS), "{t}");
        }
        for t in ["phone 1", "call me 1", "reorder 1", "1", "x2 1"] {
            assert!(!labelled(t, t.len() - 1, ID_LABELS), "{t}");
        }
    }
}
