"""The reader's bounds on a header and on a record hold to the byte, wherever the line falls: on the file's first
line, after blank lines, inside a chunk of plain ASCII lines or across chunks."""

from __future__ import annotations

import io
import re

import pytest

from fleettickets.changefile import MAX_HEADER_BYTES, MAX_RECORD_BYTES, READ_CHUNK_BYTES, ChangeFile, RejectedFile

PATTERN = re.compile(r"INC[0-9]{12}")


def read(content: bytes) -> ChangeFile:
    change_file = ChangeFile(io.BytesIO(content), "limits.csv", PATTERN, "INC + 12 digits")
    list(change_file.rows())
    return change_file


def header_of(size: int) -> bytes:
    """A header line (its line break included) of exactly `size` bytes, under the column limit."""
    names = [b"ticket_id"]
    while sum(map(len, names)) + len(names) + 400 < size:
        names.append(b"c%03d" % len(names) + b"x" * 195)
    line = b",".join(names) + b","
    return line + b"z" * (size - len(line) - 1) + b"\n"


@pytest.mark.parametrize("before", [b"", b"\n", b"\n" * 3], ids=["first-line", "after-a-blank-line", "after-three"])
@pytest.mark.parametrize(("extra", "rejected"), [(0, False), (1, True)], ids=["at-the-limit", "one-byte-over"])
def test_a_header_is_bounded_to_the_byte_wherever_it_starts(before, extra, rejected):
    header = header_of(MAX_HEADER_BYTES + extra)
    assert len(header) == MAX_HEADER_BYTES + extra
    content = before + header + b"INC000000000001" + b"," * (header.count(b",")) + b"\n"

    if rejected:
        line = len(before) + 1
        with pytest.raises(RejectedFile, match=f"line {line}: a header longer than 64 KiB"):
            read(content)
    else:
        assert read(content).counts.staged == 1


def record_of(size: int) -> bytes:
    """A record of exactly `size` bytes over several lines: ticket_id and three quoted fields, each under the
    field limit."""
    fixed = len(b'INC000000000002,"",""\n') + 2 + 1  # the third field's quotes and its comma
    each, rest = divmod(size - fixed, 3)
    field = ((b"x" * 65_535 + b"\n") * (each // 65_536 + 1))[:each]
    return b'INC000000000002,"' + field + b'","' + field + b'","' + field + b"y" * rest + b'"\n'


@pytest.mark.parametrize("lead", [0, READ_CHUNK_BYTES // 3],
                         ids=["record-after-the-header", "record-a-third-of-a-chunk-later"])
@pytest.mark.parametrize(("extra", "rejected"), [(0, False), (1, True)], ids=["at-the-limit", "one-byte-over"])
def test_a_record_is_bounded_to_the_byte_wherever_it_falls(lead, extra, rejected):
    record = record_of(MAX_RECORD_BYTES + extra)
    assert len(record) == MAX_RECORD_BYTES + extra
    header = b"ticket_id,a,b,c\n"
    filler = b"".join(b"INC%012d,1,2,3\n" % n for n in range(3, 3 + lead // 26))
    content = header + filler + record + b"INC000000000001,1,2,3\n"

    if rejected:
        line = 2 + filler.count(b"\n")
        with pytest.raises(RejectedFile, match=f"line {line}: a record longer than 16 MiB"):
            read(content)
    else:
        assert read(content).counts.staged == 2 + filler.count(b"\n")
