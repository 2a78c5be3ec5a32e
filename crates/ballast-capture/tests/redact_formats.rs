//! Formats written by hand, independently of the generated corpus: each must be found whole
//! with the right kind, and each decoy must produce no detection at all.
#![allow(clippy::unwrap_used)] // tests fail by panicking

use ballast_capture::redact::{Kind, Scanner};

/// Asserts that `value`, embedded in a sentence, is found exactly as one span of `kind`.
fn assert_found(kind: Kind, values: &[&str]) {
    let scanner = Scanner::all();
    let mut failures = Vec::new();
    for v in values {
        for text in [
            v.to_string(),
            format!("Note: {v}, thanks."),
            format!("({v})"),
        ] {
            let spans = scanner.find(&text);
            let got: Vec<_> = spans
                .iter()
                .map(|s| (s.kind, &text[s.start..s.end]))
                .collect();
            if got != [(kind, *v)] {
                failures.push(format!("{text:?}: {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{kind}: {failures:#?}");
}

#[test]
fn international_phone_formats_are_found() {
    assert_found(
        Kind::Phone,
        &[
            "+44 20 7946 0958",
            "+44 7700 900123",
            "+1 (415) 555-0132",
            "+1 415.555.0132",
            "+14155550132",
            "+49 30 901820",
            "+49 (0)30 901820",
            "+49-30-901820",
            "0049 30 901820",
            "0044 20 7946 0958",
            "+353 1 234 5678",
            "+81 3-1234-5678",
            "+86 138 0013 8000",
            "+7 (495) 123-45-67",
            "+91 98765 43210",
            "+91-98765-43210",
            "+61 2 9876 5432",
            "+61 412 345 678",
            "+34 612 34 56 78",
            "+39 06 1234 5678",
            "+31 20 123 4567",
            "+46 8 123 456 78",
            "+41 44 668 18 00",
            "+33 6 12 34 56 78",
            "+55 11 98765-4321",
            "+1-415-555-0132 ext. 12",
            "(+358) 09 1234 567",
            "(+30) 2491 186252",
            "(+57) 310 308 24 62",
            "011 44 20 7946 0958",
        ],
    );
}

#[test]
fn national_phone_formats_are_found() {
    assert_found(
        Kind::Phone,
        &[
            "(415) 555-0132",
            "415-555-0132",
            "415.555.0132",
            "415 555 0132",
            "1 (415) 555-0132",
            "1-415-555-0132",
            "415-555-0132 x123",
            "07700 900123",
            "0113 496 0000",
            "(020) 7946 0958",
            "020 7946 0958",
            "030 901820",
            "030/901820",
            "(030) 901820",
            "0151 23456789",
            "0170-1234567",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "06 1234 5678",
            "020-1234567",
            "06-12345678",
            "(02) 9876 5432",
            "0412 345 678",
            "11 98765-4321",
            "027 601 81 59",
            "08-26 01 81",
            "061-318 60 91",
            "0462 819 48 21",
            "051 819-09-37",
            "06 091 39 09",
            "(02239) 09960 308",
            "03572/80385280",
            "02074960482",
            "0961073668",
            "8 (955) 597-9711",
            "8 995 289 0786",
            "8 (990) 751-16-37",
        ],
    );
}

#[test]
fn phone_keywords_admit_unseparated_numbers() {
    let scanner = Scanner::all();
    for text in [
        "Tel: 0612345678",
        "mobile 9876543210",
        "call me at 4155550132",
        "Phone: 612 34 56 78",
    ] {
        let spans = scanner.find(text);
        assert_eq!(spans.len(), 1, "{text}: {spans:?}");
        assert_eq!(spans[0].kind, Kind::Phone, "{text}");
    }
}

#[test]
fn card_formats_are_found() {
    assert_found(
        Kind::Card,
        &[
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "5555 5555 5555 4444",
            "2223 0000 4840 0011",
            "2720 9900 0000 0007",
            "3782 822463 10005",
            "371449635398431",
            "6011 1111 1111 1117",
            "3530 1113 3330 0000",
            "3056 9309 0259 04",
            "6200 0000 0000 0005",
            "4222222222222",
        ],
    );
}

#[test]
fn iban_formats_are_found() {
    assert_found(
        Kind::Iban,
        &[
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000",
            "de89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
            "CH93 0076 2011 6238 5295 7",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NO93 8601 1117 947",
            "SC18 SSCB 1101 0000 0000 0000 1497 USD",
            "BR15 0000 0000 0000 1093 2840 814P 2",
        ],
    );
}

#[test]
fn ssn_and_email_formats_are_found() {
    assert_found(Kind::Ssn, &["123-45-6789", "123 45 6789", "078-05-1120"]);
    assert_found(
        Kind::Email,
        &[
            "jane.doe@example.com",
            "John.Smith@Example.COM",
            "first_last+tag@sub.company-name.co.uk",
            "o'connor@example.ie",
            "x1@a.io",
        ],
    );
    let scanner = Scanner::all();
    for text in ["SSN#123-45-6789", "SSN:123-45-6789", "ssn-123-45-6789"] {
        let spans = scanner.find(text);
        assert_eq!(spans.len(), 1, "{text}: {spans:?}");
        assert_eq!(spans[0].kind, Kind::Ssn, "{text}");
    }
}

#[test]
fn decoys_are_not_detected() {
    let scanner = Scanner::all();
    let decoys = [
        "2024-03-15",
        "15/03/2024 10:30",
        "01 02 2024",
        "05.12.2023",
        "05-12-2023 09:30",
        "0001234567",
        "ISBN 0-306-40615-2",
        "2024.03.15",
        "20240315",
        "2024-03-15T14:30:00Z",
        "2024-03-15 14:30:00",
        "14:30:00",
        "1710513000",
        "1710513000123",
        "$1,234,567.89",
        "1 234 567,89 €",
        "€1.234,56",
        "USD 12,345.00",
        "ISBN 978-3-16-148410-0",
        "version 10.0.19045.3693",
        "v2.14.0",
        "10.0.0.1",
        "255.255.255.0",
        "192.168.100.200",
        "2001:db8::1",
        "00:1A:2B:3C:4D:5E",
        "123e4567-e89b-12d3-a456-426614174000",
        "48.8566, 2.3522",
        "Springfield, IL 62704-1234",
        "Boston, MA 02134-5678",
        "ORD-2024-118822",
        "order #415-555-0132",
        "Order no. 415-555-0132",
        "Invoice number: 0161 496 0000",
        "ticket 123-45-6789",
        "account 212 555 0147",
        "112-3456789-1234567",
        "INV-2024-00042",
        "invoice 2024/0042",
        "1Z999AA10123456784",
        "9400 1000 0000 0000 0000 00",
        "940010000000000000000",
        "4111 1111 1111 1112",
        "4111111111111112",
        "DE12 3704 0044 0532 0130 00",
        "GB00 WEST 1234 5698 7654 32",
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
        "order 123456789",
        "ORD-123-45-6789",
        "route 66, gate 23, room 101",
        "+5% vs last year",
        "Temperature +23.5",
        "qty 2 x 12",
        "PO Box 12345",
        "@jane",
        "jane@localhost",
        "customer id 4821937465",
        "Reminder: call scheduled 2024-03-15 14:30, ref 2024/0042",
        "on the call (invoice 2020/4366)",
        "Tel: +44 20 7946 0958 — 6759282728761",
    ];
    let mut failures = Vec::new();
    for d in decoys {
        let spans: Vec<_> = scanner
            .find(d)
            .into_iter()
            .filter(|s| !(d.starts_with("Tel: +44") && s.start == 5))
            .map(|s| (s.kind, &d[s.start..s.end]))
            .collect();
        if !spans.is_empty() {
            failures.push(format!("{d:?}: {spans:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
