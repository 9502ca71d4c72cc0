"""Mask personal data in text before it is stored.

Four kinds are found and replaced: e-mail addresses (``[EMAIL]``), IBANs that
pass the mod-97 check (``[IBAN]``), payment card numbers with a known issuer
prefix that pass the Luhn check (``[CARD]``) and phone numbers (``[PHONE]``).

    >>> redact("Mail jo@example.com or call +44 20 7946 0958 about order 1234567890.")
    ('Mail [EMAIL] or call [PHONE] about order 1234567890.', {'EMAIL': 1, 'PHONE': 1})

Plain numbers are left alone where a rule can tell them apart: amounts
(``1 234 567.89``), dates (``2024-01-05``), and digit runs without separators
(order ids) unless they start with ``+`` or a national ``0`` prefix. A phone
number needs a ``+`` country code (8-15 digits), or 10-11 digits written with
separators or a leading 0. Short local numbers (``555-1234``) are not caught.
"""

from __future__ import annotations

import re

KINDS = ("EMAIL", "IBAN", "CARD", "PHONE")

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}"
    r"(?![\w-])"
)
# Country, two check digits, then up to 30 letters/digits, optionally in groups split by single spaces.
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
CARD_RE = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d]|[.,]\d)")
PHONE_RE = re.compile(
    r"(?<![\w+@/.,-])"
    r"(?:\+\d{1,3}[ .-]?)?"          # country code
    r"(?:\(\d{1,5}\)[ .-]?)?"        # (area code)
    r"\d{1,5}(?:[ .-]?\d{1,5}){1,6}"
    r"(?![\w@]|[.,-]\d)"
)
_DATE_START = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})")
_AMOUNT = re.compile(r"^(?:\d{1,3}(?:[ .]\d{3})+|\d+)\.\d{2}$")
_HAS_DIGIT = re.compile(r"\d").search

# IBAN lengths by country (SWIFT IBAN registry); others only need 15-34 characters.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check (spaces ignored).

    >>> iban_ok("GB82 WEST 1234 5698 7654 32"), iban_ok("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    s = iban.replace(" ", "").upper()
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    expected = IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def _card_prefix_ok(d: str) -> bool:
    n = len(d)
    if d[0] == "4":
        return n in (13, 16, 19)
    two, four = int(d[:2]), int(d[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (30, 35, 36, 38, 39):
        return 14 <= n <= 19
    if d[0] == "6" or two in (50, 56, 57, 58):
        return 13 <= n <= 19
    return False


def _iban_sub(m: re.Match, counts: dict[str, int]) -> str:
    cand = m.group(0)
    compact = cand.replace(" ", "")
    lengths = [IBAN_LENGTHS[compact[:2]]] if compact[:2] in IBAN_LENGTHS else range(min(len(compact), 34), 14, -1)
    for n in lengths:
        if n <= len(compact) and iban_ok(compact[:n]):
            # map n significant characters back onto the original span
            seen = end = 0
            while seen < n:
                seen += cand[end] != " "
                end += 1
            counts["IBAN"] = counts.get("IBAN", 0) + 1
            return "[IBAN]" + cand[end:]
    return cand


def _card_sub(m: re.Match, counts: dict[str, int]) -> str:
    cand = m.group(0)
    digits = cand.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and _card_prefix_ok(digits) and luhn_ok(digits):
        counts["CARD"] = counts.get("CARD", 0) + 1
        return "[CARD]"
    return cand


def is_phone(cand: str) -> bool:
    """Whether a run of digits and separators reads as a phone number.

    >>> is_phone("+1 (555) 010-9999"), is_phone("2024-01-05 10"), is_phone("1234567890")
    (True, False, False)
    """
    groups = re.findall(r"\d+", cand)
    n = sum(map(len, groups))
    if sum(len(g) == 1 for g in groups) > 1:  # 1.2.3.4567890 is a version, not a phone
        return False
    if cand.startswith("+"):
        return 8 <= n <= 15
    if not 10 <= n <= 11 or _DATE_START.match(cand) or _AMOUNT.match(cand):
        return False
    return cand.startswith(("0", "(")) or any(c in cand for c in " .-")


def _phone_sub(m: re.Match, counts: dict[str, int]) -> str:
    cand = m.group(0)
    if is_phone(cand):
        counts["PHONE"] = counts.get("PHONE", 0) + 1
        return "[PHONE]"
    return cand


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Return ``text`` with personal data masked, and how many of each kind.

    >>> redact("IBAN DE89 3704 0044 0532 0130 00, card 4111-1111-1111-1111, paid 1,234.56 on 2024-01-05")
    ('IBAN [IBAN], card [CARD], paid 1,234.56 on 2024-01-05', {'IBAN': 1, 'CARD': 1})
    """
    counts: dict[str, int] = {}
    if "@" in text:
        text, n = EMAIL_RE.subn("[EMAIL]", text)
        if n:
            counts["EMAIL"] = n
    if _HAS_DIGIT(text):
        text = IBAN_RE.sub(lambda m: _iban_sub(m, counts), text)
        text = CARD_RE.sub(lambda m: _card_sub(m, counts), text)
        text = PHONE_RE.sub(lambda m: _phone_sub(m, counts), text)
    return text, counts


class Redactor:
    """Redacts many texts and keeps the running totals per kind.

    >>> r = Redactor()
    >>> r("write to a@b.io"), r("or c@d.org"), r.counts
    ('write to [EMAIL]', 'or [EMAIL]', {'EMAIL': 2, 'IBAN': 0, 'CARD': 0, 'PHONE': 0})
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {k: 0 for k in KINDS}

    def __call__(self, text: str) -> str:
        out, counts = redact(text)
        for k, n in counts.items():
            self.counts[k] += n
        return out

    def value(self, obj):
        """Redact strings inside a JSON-like value (dicts, lists, numbers that hide a card)."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if isinstance(obj, int) and not isinstance(obj, bool):
            s = str(obj)
            out = self(s)
            return obj if out == s else out
        return obj
