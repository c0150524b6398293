"""Text on its way out of the process: one line that nobody outside can forge, with no secret in any spelling.

Everything fleettickets writes for people — log lines, `.error.txt` beside a
rejected file, the error columns of the run log and the ledger, `--status` and
`--check` — passes through `line()` (or `block()` for a debug traceback).
Two things are done, in this order:

- Control characters are escaped (`\\n`, `\\x1b`, `\\u202e`): a CSV header, an
  object key or a provider's answer holding a newline or a terminal escape
  cannot add a line of its own (a forged `inc: done: …`) or repaint the screen.
- Every secret the settings registry knows is replaced by `***` in whatever
  spelling it arrives: as written, percent-encoded (either case, `+` or `%20`
  for a space), or JSON/Python-escaped (`\\"`, `\\u0041`) — a provider error
  that echoes its request URL, or a library that quotes a JSON body, still
  prints no key.
"""

from __future__ import annotations

import functools
import re

from fleettickets import settings

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
# bidirectional marks, overrides and isolates that make a terminal show text
# in an order other than the bytes' (CVE-2021-42574).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# JSON's and Python's one-letter escapes, by the character they stand for.
ESCAPED_AS_LETTER = {'"': '"', "\\": "\\", "/": "/", "'": "'", "\b": "b", "\f": "f", "\n": "n", "\r": "r",
                     "\t": "t"}


def line(text: str) -> str:
    """`text` as one line for a log, an error column or an `.error.txt` field: controls escaped, secrets hidden."""
    return _redact(CONTROL.sub(_escape, text))


def block(text: str) -> str:
    """Several lines (a debug traceback): each line kept, everything else as `line()` does."""
    return "\n".join(line(part) for part in text.split("\n"))


def _escape(match: re.Match[str]) -> str:
    character = match[0]
    if character in SHORT_ESCAPES:
        return SHORT_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _redact(text: str) -> str:
    pattern = _secrets_pattern(tuple(settings.secrets()))
    return pattern.sub("***", text) if pattern else text


@functools.lru_cache(maxsize=8)
def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching any secret in any of its spellings, longest secrets first."""
    if not secrets:
        return None
    return re.compile("|".join("".join(_spellings(character) for character in secret) for secret in secrets))


def _spellings(character: str) -> str:
    """A pattern for one character as written, percent-encoded in UTF-8, or escaped as JSON or Python write it."""
    forms = [re.escape(character), "".join(f"%(?i:{byte:02x})" for byte in character.encode())]
    if character == " ":
        forms.append(r"\+")
    if character in ESCAPED_AS_LETTER:
        forms.append(re.escape("\\" + ESCAPED_AS_LETTER[character]))
    code = ord(character)
    if code <= 0xFFFF:
        forms.append(rf"\\(?i:u{code:04x})")
    else:
        forms += [_surrogate_pair(code), rf"\\(?i:U{code:08x})"]
    if code <= 0xFF:
        forms.append(rf"\\(?i:x{code:02x})")
    return "(?:" + "|".join(forms) + ")"


def _surrogate_pair(code: int) -> str:
    high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
    return rf"\\(?i:u{high:04x})\\(?i:u{low:04x})"
