#!/usr/bin/env python3
"""Writes tests/pii/corpus.jsonl: a labelled corpus of notes, memos and chat lines that mix
personal data (e-mail, phone, payment card, US SSN, IBAN) with realistic decoys (order numbers,
ZIP+4 codes, dates, times, amounts, invoice ids, tracking numbers, IP addresses, versions,
invalid-Luhn card-like numbers, invalid-mod-97 IBAN-like strings, SSN-like numbers with areas
that are never issued).

Each line: {"text": str, "spans": [{"start": int, "end": int, "kind": str}]}. Offsets are
Unicode code points (Python str indices), end exclusive; kind is email|phone|card|ssn|iban.

Every label is validated here before it is written: cards by Luhn and the IIN table the ballast
detector documents, IBANs by python-stdnum (SWIFT registry formats, mod-97), phones by
libphonenumber's metadata (python `phonenumbers`, is_valid_number for the region), SSNs by the
SSA area/group/serial rules, e-mail by a dot-atom check. Decoys are checked *not* to validate.

    pip install faker phonenumbers python-stdnum    # written with Faker 40.63.0,
                                                    # phonenumbers 9.0.43, python-stdnum 2.2
    python tests/pii/make_corpus.py            # seeded: the same file every run
    python tests/pii/make_corpus.py --seed 7 --out /tmp/heldout.jsonl   # a held-out variant
"""

import datetime as dt
import json
import random
import re
import sys
from pathlib import Path

import phonenumbers as pn
from faker import Faker
from stdnum import iban as stdiban

import argparse

_args = argparse.ArgumentParser()
_args.add_argument("--seed", type=int, default=20261206)
_args.add_argument("--out", default=str(Path(__file__).with_name("corpus.jsonl")))
_args.add_argument("--lines", type=int, default=3200)
ARGS = _args.parse_args()
SEED = ARGS.seed
N_LINES = ARGS.lines
OUT = Path(ARGS.out)

rnd = random.Random(SEED)
Faker.seed(SEED)
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_CA", "en_AU",
           "pt_BR", "en_IN"]
REGION = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES",
          "it_IT": "IT", "nl_NL": "NL", "en_CA": "CA", "en_AU": "AU", "pt_BR": "BR",
          "en_IN": "IN"}
fakers = {loc: Faker(loc) for loc in LOCALES}
for i, f in enumerate(fakers.values()):
    f.seed_instance(SEED + i)
en = fakers["en_US"]

# ---------------------------------------------------------------- validators

def luhn_ok(ds: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(ds)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# (lo, hi, prefix digits, lengths) — the same table as crates/ballast-capture/src/redact/card.rs
IIN = [
    (4, 4, 1, {13, 16, 19}), (51, 55, 2, {16}), (2221, 2720, 4, {16}), (34, 34, 2, {15}),
    (37, 37, 2, {15}), (6011, 6011, 4, set(range(16, 20))), (644, 649, 3, set(range(16, 20))),
    (65, 65, 2, set(range(16, 20))), (622126, 622925, 6, set(range(16, 20))),
    (62, 62, 2, set(range(16, 20))), (3528, 3589, 4, set(range(16, 20))),
    (300, 305, 3, set(range(14, 20))), (3095, 3095, 4, set(range(14, 20))),
    (36, 36, 2, set(range(14, 20))), (38, 39, 2, set(range(14, 20))),
    (50, 50, 2, set(range(13, 20))), (56, 69, 2, set(range(13, 20))),
    (2200, 2205, 4, set(range(16, 20))), (31, 31, 2, {19}), (81, 82, 2, {16}),
    (8600, 8600, 4, {16}), (9792, 9792, 4, {16}), (9860, 9860, 4, {16}),
]


def card_ok(ds: str) -> bool:
    if not (13 <= len(ds) <= 19) or not luhn_ok(ds):
        return False
    return any(len(ds) in lens and lo <= int(ds[:n]) <= hi for lo, hi, n, lens in IIN)


def ssn_ok(ds: str) -> bool:
    a, g, s = int(ds[:3]), int(ds[3:5]), int(ds[5:])
    return len(ds) == 9 and a not in (0, 666) and a < 900 and g != 0 and s != 0


EMAIL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                      r"@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")


def digits(s: str) -> str:
    return re.sub(r"\D", "", s)


# ---------------------------------------------------------------- PII generators

NETWORKS = [  # (name, prefix chooser, length chooser)
    ("visa", lambda: "4", lambda: rnd.choice([16, 16, 16, 13, 19])),
    ("mastercard", lambda: str(rnd.randint(51, 55)), lambda: 16),
    ("mastercard2", lambda: str(rnd.randint(2221, 2720)), lambda: 16),
    ("amex", lambda: rnd.choice(["34", "37"]), lambda: 15),
    ("discover", lambda: rnd.choice(["6011", str(rnd.randint(644, 649)), "65",
                                     str(rnd.randint(622126, 622925))]),
     lambda: rnd.choice([16, 16, 19])),
    ("jcb", lambda: str(rnd.randint(3528, 3589)), lambda: rnd.choice([16, 16, 19])),
    ("diners", lambda: rnd.choice([str(rnd.randint(300, 305)), "36", "38", "39", "3095"]),
     lambda: rnd.choice([14, 14, 16, 19])),
    ("unionpay", lambda: "62", lambda: rnd.choice([16, 17, 18, 19])),
    ("maestro", lambda: rnd.choice(["5018", "5020", "5038", "5893", "6304", "6759", "6761",
                                    "6762", "6763"]), lambda: rnd.choice([13, 16, 19])),
    ("mir", lambda: str(rnd.randint(2200, 2204)), lambda: 16),
]


def luhn_complete(payload: str) -> str:
    for c in "0123456789":
        if luhn_ok(payload + c):
            return payload + c
    raise AssertionError


def group_card(ds: str, sep: str) -> str:
    if len(ds) == 15:
        parts = [ds[:4], ds[4:10], ds[10:]]
    elif len(ds) == 14 and rnd.random() < 0.5:
        parts = [ds[:4], ds[4:10], ds[10:]]
    else:
        parts = [ds[i:i + 4] for i in range(0, len(ds), 4)]
    return sep.join(parts)


def make_card() -> str:
    ds = ""
    if rnd.random() < 0.2:  # Faker's own, kept where it is a current range (its JCB uses 35xx)
        ds = en.credit_card_number(rnd.choice(["visa16", "visa13", "visa19", "mastercard",
                                               "amex", "discover", "jcb16", "diners"]))
    if not card_ok(ds):
        _, pre, ln = rnd.choice(NETWORKS)
        p = pre()
        n = ln()
        ds = luhn_complete(p + "".join(rnd.choice("0123456789") for _ in range(n - len(p) - 1)))
    assert card_ok(ds), ds
    r = rnd.random()
    return ds if r < 0.4 else group_card(ds, " " if r < 0.8 else "-")


def registry_formats() -> dict:
    """country -> BBAN format like '4!n4!n12!c', from python-stdnum's copy of the registry."""
    out = {}
    path = Path(stdiban.__file__).with_name("iban.dat")
    for line in path.read_text().splitlines():
        m = re.match(r'^([A-Z]{2}) .*bban="([^"]+)"', line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


FORMATS = registry_formats()
assert len(FORMATS) == 89, len(FORMATS)
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def random_bban(fmt: str) -> str:
    out = []
    for count, kind in re.findall(r"(\d+)!([nac])", fmt):
        pool = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": ALNUM}[kind]
        out.append("".join(rnd.choice(pool) for _ in range(int(count))))
    return "".join(out)


def iban_check(cc: str, bban: str) -> str:
    num = "".join(str(int(ch, 36)) for ch in bban + cc + "00")
    return f"{98 - int(num) % 97:02d}"


def format_iban(compact: str) -> str:
    r = rnd.random()
    s = compact if r < 0.4 else " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
    if rnd.random() < 0.05:
        s = s.lower()
    return s


def make_iban(cc: str | None = None) -> str:
    if cc is None and rnd.random() < 0.15:
        compact = fakers[rnd.choice(["en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"])].iban()
    else:
        cc = cc or rnd.choice(sorted(FORMATS))
        bban = random_bban(FORMATS[cc])
        compact = cc + iban_check(cc, bban) + bban
    assert stdiban.is_valid(compact, check_country=False), compact
    return format_iban(compact)


def make_email() -> str:
    f = fakers[rnd.choice(LOCALES)]
    r = rnd.random()
    if r < 0.35:
        e = f.email()
    elif r < 0.55:
        e = f.free_email()
    elif r < 0.7:
        e = f.company_email()
    elif r < 0.8:
        user = f.user_name()
        e = f"{user}+{rnd.choice(['news', 'billing', 'x1', 'shop'])}@{f.free_email_domain()}"
    elif r < 0.9:
        e = f"{f.first_name().lower()}.{f.last_name().lower()}@mail.{f.domain_name()}"
    else:
        e = f"{f.user_name()}{rnd.randint(1, 99)}@{f.domain_word()}.{rnd.choice(['co.uk', 'com.au', 'io', 'de', 'fr', 'info', 'museum', 'technology'])}"
    e = re.sub(r"[^A-Za-z0-9@._+-]", "", e)
    e = re.sub(r"\.{2,}", ".", e)
    if rnd.random() < 0.05:
        e = e.upper()
    assert EMAIL_RE.match(e), e
    return e


def phone_variants(num: "pn.PhoneNumber") -> list[str]:
    num = pn.PhoneNumber(country_code=num.country_code, national_number=num.national_number,
                         italian_leading_zero=num.italian_leading_zero,
                         number_of_leading_zeros=num.number_of_leading_zeros)
    intl = pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL)
    nat = pn.format_number(num, pn.PhoneNumberFormat.NATIONAL)
    e164 = pn.format_number(num, pn.PhoneNumberFormat.E164)
    out = [intl, nat, e164, "00" + intl[1:], intl.replace(" ", "-")]
    if "-" not in intl:
        out.append(intl.replace(" ", "."))
    if num.country_code == 1:
        n = str(num.national_number)
        a, b, c = n[:3], n[3:6], n[6:]
        out += [f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 ({a}) {b}-{c}",
                f"1-{a}-{b}-{c}", f"{a}-{b}-{c} x{rnd.randint(10, 9999)}"]
    return out


def make_phone() -> str:
    while True:
        loc = rnd.choice(LOCALES + ["en_US", "en_GB", "de_DE", "fr_FR"])
        region = REGION[loc]
        raw = fakers[loc].phone_number()
        try:
            num = pn.parse(raw, region)
        except pn.NumberParseException:
            continue
        if not pn.is_valid_number(num):
            continue
        s = raw if rnd.random() < 0.45 else rnd.choice(phone_variants(num))
        try:  # the label must parse back to the same valid number
            again = pn.parse(re.sub(r"\s*(x|ext\.?)\s*\d+$", "", s), region)
        except pn.NumberParseException:
            continue
        if pn.is_valid_number(again) and again.national_number == num.national_number:
            return s


def make_ssn() -> str:
    s = en.ssn()
    assert ssn_ok(digits(s)), s
    return s if rnd.random() < 0.85 else s.replace("-", " ")


# ---------------------------------------------------------------- decoys

def bad_luhn_card() -> str:
    while True:
        _, pre, ln = rnd.choice(NETWORKS)
        p = pre()
        ds = p + "".join(rnd.choice("0123456789") for _ in range(ln() - len(p)))
        if not luhn_ok(ds):
            r = rnd.random()
            return ds if r < 0.4 else group_card(ds, " " if r < 0.8 else "-")


def bad_iban() -> str:
    while True:
        good = make_iban()
        compact = good.replace(" ", "").upper()
        bad = compact[:2] + f"{(int(compact[2:4]) + rnd.randint(1, 90)) % 97:02d}" + compact[4:]
        if not stdiban.is_valid(bad, check_country=False):
            return format_iban(bad)


def bad_ssn() -> str:
    area = rnd.choice(["000", "666", str(rnd.randint(900, 999))])
    g, s = f"{rnd.randint(1, 99):02d}", f"{rnd.randint(1, 9999):04d}"
    if rnd.random() < 0.2:
        area, g = f"{rnd.randint(1, 665):03d}", "00"
    return f"{area}-{g}-{s}"


def order_no() -> str:
    return rnd.choice([
        f"ORD-{rnd.randint(2019, 2026)}-{rnd.randint(0, 999999):06d}",
        f"#{rnd.randint(100000, 99999999)}",
        f"{rnd.randint(100, 999)}-{rnd.randint(0, 9999999):07d}-{rnd.randint(0, 9999999):07d}",
        f"SO{rnd.randint(10000000, 99999999)}",
        f"PO-{rnd.randint(4500000000, 4599999999)}",
        f"ORD-{rnd.randint(100, 999)}-{rnd.randint(10, 99)}-{rnd.randint(1000, 9999)}",
        f"order no. {rnd.randint(200, 999)}-{rnd.randint(200, 999)}-{rnd.randint(1000, 9999)}",
        f"ticket #{rnd.randint(100, 899)}-{rnd.randint(10, 99)}-{rnd.randint(1000, 9999)}",
    ])


def invoice() -> str:
    return rnd.choice([
        f"INV-{rnd.randint(2019, 2026)}-{rnd.randint(1, 99999):05d}",
        f"invoice {rnd.randint(2019, 2026)}/{rnd.randint(1, 9999):04d}",
        f"RE{rnd.randint(100000, 999999)}",
    ])


def tracking() -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return rnd.choice([
        "1Z" + "".join(rnd.choice(alnum) for _ in range(6)) + "".join(rnd.choice("0123456789") for _ in range(10)),
        "94" + "".join(rnd.choice("0123456789") for _ in range(20)),
        " ".join(["9400"] + ["".join(rnd.choice("0123456789") for _ in range(4)) for _ in range(4)] + [f"{rnd.randint(0, 99):02d}"]),
        "".join(rnd.choice("0123456789") for _ in range(12)),
        f"JD{rnd.randint(10**15, 10**16 - 1)}GB",
    ])


def date() -> str:
    d = en.date_between(start_date=dt.date(2023, 1, 1), end_date=dt.date(2027, 12, 31))
    return rnd.choice([d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%m/%d/%Y"),
                       d.strftime("%d/%m/%Y"), d.strftime("%B %d, %Y"), d.strftime("%Y%m%d")])


def timestamp() -> str:
    when = en.date_time_between(start_date=dt.datetime(2024, 1, 1), end_date=dt.datetime(2026, 12, 1))
    return rnd.choice([when.isoformat() + "Z", when.strftime("%Y-%m-%d %H:%M:%S"),
                       when.strftime("%H:%M"), str(int(when.replace(tzinfo=dt.timezone.utc).timestamp())),
                       when.strftime("%d.%m.%Y %H:%M")])


def amount() -> str:
    v = rnd.uniform(1, 250000)
    return rnd.choice([f"${v:,.2f}", f"€{v:,.2f}".replace(",", "X").replace(".", ",").replace("X", "."),
                       f"USD {v:,.2f}", f"{v:.2f} EUR", f"£{int(v):,}", f"{int(v * 100)} cents"])


def zip4() -> str:
    return f"{en.city()}, {en.state_abbr()} {en.zipcode_plus4()}"


def misc() -> str:
    return rnd.choice([
        f"IP {en.ipv4()}", f"host {en.ipv4_private()}:{rnd.randint(1024, 65535)}",
        f"v{rnd.randint(0, 12)}.{rnd.randint(0, 40)}.{rnd.randint(0, 20)}",
        f"build {rnd.randint(1, 9)}.{rnd.randint(0, 99)}.{rnd.randint(0, 999)}.{rnd.randint(0, 9999)}",
        f"room {rnd.randint(100, 999)}", f"{rnd.randint(1, 99)}% off",
        f"qty {rnd.randint(1, 40)} x {rnd.randint(2, 500)}",
        f"customer id {rnd.randint(10**9, 10**10 - 1)}",
        f"lat {en.latitude()}, lon {en.longitude()}",
        f"ticket {rnd.choice(['JIRA', 'OPS', 'SUP'])}-{rnd.randint(1, 99999)}",
        f"ISBN 978-{rnd.randint(0, 9)}-{rnd.randint(100, 999)}-{rnd.randint(10000, 99999)}-{rnd.randint(0, 9)}",
        f"EAN {en.ean13()}", f"GTIN {en.ean13()}", f"routing {en.aba()}", f"ABA {en.aba()}",
        f"CEP {fakers['pt_BR'].postcode()}", f"postcode {fakers['en_GB'].postcode()}",
        f"passport {en.passport_number()}", f"MAC {en.mac_address()}", f"uuid {en.uuid4()}",
        f"IPv6 {en.ipv6()}", f"sha1 {en.sha1()[:12]}",
        f"asset logo@{rnd.randint(2, 3)}x.png", f"npm i @scope/pkg@{rnd.randint(1, 9)}.{rnd.randint(0, 20)}.0",
        "user@localhost",
    ])


DECOYS = {
    "order": order_no, "invoice": invoice, "tracking": tracking, "date": date,
    "timestamp": timestamp, "amount": amount, "zip4": zip4, "misc": misc,
    "bad_card": bad_luhn_card, "bad_iban": bad_iban, "bad_ssn": bad_ssn,
}
PII = {"email": make_email, "phone": make_phone, "card": make_card, "ssn": make_ssn,
       "iban": make_iban}

# ---------------------------------------------------------------- templates

TEMPLATES = {
    "email": ["Customer {name} wrote from {x} about {d1}.", "cc: {x}; re {d1}",
              "Please reply to {x} (not the shared inbox) before {d1}.",
              "{name} <{x}> asked for a refund, see {d1}", "new lead: {x}, {d1}, {d2}"],
    "phone": ["{name} called from {x} re {d1}.", "Callback number {x}; {d1}",
              "pls ping me at {x} after {d1}", "Tel: {x} — {d1}, {d2}",
              "Mobile {x}. Order {d1} delivered {d2}.", "{name}: reach me on {x} ({d1})"],
    "card": ["Card on file {x}, {d1}.", "paid with {x} for {d1}",
             "Customer read out card number {x} on the call ({d1}).",
             "CC {x} declined twice, {d1}, {d2}", "{name} used {x}; amount {d1}"],
    "ssn": ["SSN {x} verified for {name}, {d1}.", "social security number: {x} ({d1})",
            "Applicant {name}, SSN: {x}, see {d1}", "W-9 on file with {x}; {d1}",
            "ssn {x} mismatch vs {d1}"],
    "iban": ["Refund {d1} to IBAN {x}.", "Bank details: {x} ({name}), {d1}",
             "please wire to {x} before {d2}, ref {d1}", "IBAN: {x} / {d1}",
             "{name} changed payout account to {x}; {d1}"],
}
DECOY_TEMPLATES = [
    "Order {d1} shipped via {d2} on {d3}.", "{d1} — {d2}; follow-up {d3}",
    "Invoice {d1} paid {d2}, posted {d3}.", "Ship to {d1}. Total {d2}.",
    "[{d1}] user {name}: status ok, {d2}", "Reminder: call scheduled {d1}, ref {d2}",
    "Note: {d1} and {d2} do not match; see {d3}", "{name} asked about {d1} ({d2})",
]


def pick_decoy() -> str:
    kind = rnd.choice(list(DECOYS) + ["bad_card", "bad_iban", "bad_ssn", "zip4", "order"])
    return DECOYS[kind]()


def fill(tpl: str, slots: dict) -> tuple[str, list]:
    """Fills {x}, {name}, {d1}… in order and returns text plus code-point spans of PII slots."""
    text, spans, pos = "", [], 0
    for m in re.finditer(r"\{(\w+)\}", tpl):
        text += tpl[pos:m.start()]
        val, kind = slots[m.group(1)]
        if kind:
            spans.append({"start": len(text), "end": len(text) + len(val), "kind": kind})
        text += val
        pos = m.end()
    text += tpl[pos:]
    return text, spans


def name() -> str:
    return fakers[rnd.choice(LOCALES)].name()


def line(kind: str | None, extra: str | None) -> dict:
    slots = {"name": (name(), None), "d1": (pick_decoy(), None), "d2": (pick_decoy(), None),
             "d3": (pick_decoy(), None)}
    if kind is None:
        tpl = rnd.choice(DECOY_TEMPLATES)
    else:
        tpl = rnd.choice(TEMPLATES[kind])
        slots["x"] = (PII[kind]() if kind != "iban" or extra is None else make_iban(extra), kind)
    text, spans = fill(tpl, slots)
    # Sometimes a second sentence with another kind of PII.
    if kind is not None and rnd.random() < 0.3:
        k2 = rnd.choice(list(PII))
        t2, s2 = fill(" " + rnd.choice(TEMPLATES[k2]),
                      {"x": (PII[k2](), k2), "name": (name(), None), "d1": (pick_decoy(), None),
                       "d2": (pick_decoy(), None)})
        for s in s2:
            s["start"] += len(text)
            s["end"] += len(text)
        text += t2
        spans += s2
    return {"text": text, "spans": spans}


def main() -> None:
    plan: list[tuple[str | None, str | None]] = []
    for cc in sorted(FORMATS):  # every registry country, several times
        plan += [("iban", cc)] * 4
    plan += [("email", None)] * 600 + [("phone", None)] * 750 + [("card", None)] * 560
    plan += [("ssn", None)] * 380 + [("iban", None)] * 60
    plan += [(None, None)] * (N_LINES - len(plan))
    rnd.shuffle(plan)
    lines = [line(k, e) for k, e in plan]
    with OUT.open("w", encoding="utf-8") as f:
        for ln in lines:
            f.write(json.dumps(ln, ensure_ascii=False) + "\n")
    counts: dict = {}
    for ln in lines:
        for s in ln["spans"]:
            counts[s["kind"]] = counts.get(s["kind"], 0) + 1
    print(f"wrote {len(lines)} lines to {OUT}: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
