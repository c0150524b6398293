"""What leaves the process: text from outside cannot forge a line, and no secret is printed in any spelling.

The sweep at the end draws secrets from the whole printable range and stages
every outage the suite knows (bucket down, database down, geocoder answering
an error that echoes its request), then searches every output path: stdout and
stderr, the run log, the ledger's error column, `.error.txt`, `--status` and
`--check`.
"""

from __future__ import annotations

import ast
import functools
import json
import secrets
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from fleettickets import clock, outward, settings
from support.fake_locationiq import FakeLocationIQ, Scripted
from support.stack import reset_stack
from support.streamdata import HEADER, change_file, changes, closed_port, ticket_row

FORGED = "inc: done: 99 files applied\x1b[2K\x1b[1A"




# -- finding 2: a raw @ in the database password ------------------------------------------------------------

@pytest.mark.parametrize("userinfo", [
    "fleettickets:Tr0ub@dor-TAIL",       # libpq ends the userinfo at the first @: 'dor-TAIL@host' would be the host
    "fleet@tickets:Tr0ub-dor-TAIL",      # a raw @ in the user name
    "fleettickets:Tr0ub/dor-TAIL",       # a raw / hides the @: 'Tr0ub' would be read as the port
], ids=["at-in-password", "at-in-user", "slash-in-password"])
def test_a_database_url_libpq_would_split_elsewhere_is_refused_echoing_nothing(db, run_import, monkeypatch,
                                                                              userinfo):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://{userinfo}@127.0.0.1:{closed_port()}/x")

    outcome = run_import("inc", "--status")

    assert outcome.code == 1
    assert outcome.err.startswith("inc: error: DATABASE_URL has an '@' that is not the one before the host")
    assert "%40" in outcome.err and outcome.err.count("\n") == 1
    for piece in ("Tr0ub", "dor-TAIL", "TAIL"):
        assert piece not in outcome.output


@pytest.mark.parametrize(("variable", "url", "args"), [
    ("RUSTFS_ENDPOINT", "http://minio:Tr0ub/dor-TAIL@127.0.0.1:{port}", ("--from-bucket", "--apply")),
    ("RUSTFS_ENDPOINT", "http://minio:Tr0ub/dor-TAIL@127.0.0.1:{port}", ("--check",)),
    ("RUSTFS_ENDPOINT", "http://minio:Tr0ub@dor-TAIL@127.0.0.1:{port}", ("--status",)),
    ("GEOCODER_URL", "https://geo:Tr0ub/dor-TAIL@127.0.0.1:{port}/v1/search", ("--geocode-clusters", "--apply")),
], ids=["endpoint-apply", "endpoint-check", "endpoint-at-status", "geocoder"])
def test_an_endpoint_url_a_parser_would_split_elsewhere_is_refused_echoing_nothing(db, bucket, run_import,
                                                                                  monkeypatch, variable, url, args):
    """botocore and httpx end the userinfo at the last '@' before the first '/': a '/' in the password made them
    quote the whole URL in an error, password included."""
    monkeypatch.setenv(variable, url.format(port=closed_port()))
    monkeypatch.setenv("GEOCODER_KEY", "k3y-not-in-any-word")

    outcome = run_import("inc", *args)

    assert outcome.code == 1
    assert f"{variable} has an '@' that is not the one before the host" in outcome.output, outcome.output
    for piece in ("Tr0ub", "dor-TAIL", "TAIL"):
        assert piece not in outcome.output


def test_percent_encoded_at_and_at_in_the_query_string_are_accepted(db, run_import, monkeypatch):
    params = conninfo_to_dict(db.url)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://{params['user']}:pa%40ss@{params['host']}:{params['port']}/"
                       f"{params['dbname']}?application_name=a@b")

    assert run_import("inc", "--status").code == 0


# -- finding 4: control characters from outside -------------------------------------------------------------

def test_a_header_with_a_newline_and_terminal_escapes_cannot_forge_a_line(db, bucket, run_import):
    forged_header = HEADER.replace("ticket_id", f'"ticket_id\n{FORGED}"', 1)
    bucket.put(changes("inc", "2026-11-20T06-00-00"), f"{forged_header}\n{ticket_row('INC1', '2026-11-20 06:00')}\n")

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    assert [line for line in outcome.output.splitlines() if line.startswith("inc: done: 99")] == []
    assert "\x1b" not in outcome.output and "\\x1b[2K" in outcome.err
    error_text = [bucket.get(key).decode() for key in bucket.keys("automations/inc/rejected/")
                  if key.endswith(".error.txt")]
    assert len(error_text) == 1 and error_text[0].count("\n") == 2 and "\x1b" not in error_text[0]
    (stored,) = db.query("SELECT error FROM tickets.ingest_files")[0]
    assert "\n" not in stored and "\x1b" not in stored and "\\n" + FORGED[:10] in stored


def test_a_key_with_control_characters_is_logged_escaped(db, bucket, run_import):
    # S3 servers refuse a raw newline in a key; an escape, a tab and a Unicode line separator pass.
    bucket.put("automations/inc/changes/2026-11-20T06-00-00\u2028\x1b[2K\x1b[1A\t.csv", change_file())

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert "\\x1b[2K\\x1b[1A\\t" in outcome.output and "\\u2028" in outcome.output
    assert not {"\x1b", "\t", "\u2028"} & set(outcome.output)


def test_a_geocoder_display_name_with_controls_is_logged_escaped(db, run_import, tmp_path, monkeypatch):
    path = tmp_path / "2026-11-20T06-00-00.csv"
    path.write_text(change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0
    fake = FakeLocationIQ(script=[Scripted(body=[{"lat": "-1.29", "lon": "36.78", "osm_type": "way", "osm_id": "7",
                                                  "display_name": f"Kilimani\r\n{FORGED}"}])]).start()
    monkeypatch.setenv("GEOCODER_URL", fake.url)
    monkeypatch.setenv("GEOCODER_API_KEY", "pk.test")
    monkeypatch.setenv("GEOCODER_RPS", "1000")
    try:
        outcome = run_import("inc", "--geocode-clusters", "--apply")
    finally:
        fake.stop()

    assert outcome.code == 0, outcome.output
    assert "Kilimani\\r\\ninc: done" in outcome.out and "\x1b" not in outcome.output
    assert len(outcome.out.splitlines()) == len([line for line in outcome.out.splitlines()
                                                 if line.startswith(("inc: ", "geocode: "))])


@pytest.mark.parametrize(("text", "shown"), [
    ("a\nb", "a\\nb"), ("a\r\nb", "a\\r\\nb"), ("\x1b[31m", "\\x1b[31m"), ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
    ("\u2028\u2029", "\\u2028\\u2029"), ("abc\u202edcba", "abc\\u202edcba"), ("tab\there", "tab\\there"),
    ("Kilimani, Nairobi — ODB 4 ✓", "Kilimani, Nairobi — ODB 4 ✓"),
], ids=["newline", "crlf", "ansi", "c0-del-c1", "line-separators", "bidi-override", "tab", "printable-unicode"])
def test_one_line_escapes_every_control_and_keeps_printable_text(text, shown):
    assert outward.line(text) == shown


# -- finding 5: every spelling of a secret ----------------------------------------------------------------

KEY = 'pk.3f9 "key"/é+ü'


@pytest.mark.parametrize("spelling", [
    KEY, urllib.parse.quote(KEY, safe=""), urllib.parse.quote(KEY, safe="").lower(), urllib.parse.quote(KEY),
    urllib.parse.quote_plus(KEY), json.dumps(KEY)[1:-1], json.dumps(KEY, ensure_ascii=False)[1:-1],
    repr(KEY)[1:-1], KEY.encode("unicode_escape").decode(),
], ids=["literal", "percent", "percent-lowercase", "percent-keeping-slash", "form", "json", "json-utf8",
        "python-repr", "unicode-escape"])
def test_every_encoded_spelling_of_a_secret_is_hidden(monkeypatch, spelling):
    monkeypatch.setenv("GEOCODER_API_KEY", KEY)

    assert outward.line(f"before {spelling} after") == "before *** after"


@pytest.mark.parametrize("variable", [v.name for v in settings.VARIABLES if v.secret])
@pytest.mark.parametrize(("secret", "hidden"), [("Zq7", True), ("Zq", False), ("Zq7x", True)],
                         ids=["shortest-hidden", "one-shorter-shown", "one-longer"])
def test_a_secret_is_hidden_from_the_shortest_length_hidden_on(monkeypatch, variable, secret, hidden):
    """Secrets of three characters or more are hidden wherever they appear; two-character ones would hide every
    such pair in every line, and are refused nowhere else: the boundary, on every secret the registry knows."""
    monkeypatch.setenv(variable, secret)

    shown = outward.line(f"before {secret} after")

    assert shown == ("before *** after" if hidden else f"before {secret} after")


def test_a_provider_error_echoing_the_request_shows_no_key(db, run_import, tmp_path, monkeypatch):
    path = tmp_path / "2026-11-20T06-00-00.csv"
    path.write_text(change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0
    fake = FakeLocationIQ().start()
    echoed = f"{fake.url}?{urllib.parse.urlencode({'key': KEY, 'q': 'Kilimani'})}"
    fake.script = [Scripted(status=400, error=f"Invalid request: {echoed}")]
    monkeypatch.setenv("GEOCODER_URL", fake.url)
    monkeypatch.setenv("GEOCODER_API_KEY", KEY)
    monkeypatch.setenv("GEOCODER_RPS", "1000")
    try:
        outcome = run_import("inc", "--geocode-clusters", "--apply")
    finally:
        fake.stop()

    assert "HTTP 400 Invalid request" in outcome.err and "key=***&q=Kilimani" in outcome.err
    assert "3f9" not in outcome.output


# -- the sweep --------------------------------------------------------------------------------------------

def spellings(secret: str) -> set[str]:
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1]}


@functools.cache
def program_text() -> str:
    """Every string literal of the engine, its entrypoints and its tests: what the program prints of its own
    accord, whatever the secrets. Hypothesis draws text from these literals on purpose."""
    root = Path(__file__).resolve().parents[2]
    literals = [node.value for package in ("fleettickets", "inc", "crq", "tests")
                for path in sorted((root / package).rglob("*.py"))
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return "\0".join(literals)


def is_not_the_programs_own_text(secret: str) -> bool:
    """A secret spelled like a word the program prints ('rejected') is found in a line printed before the secret
    was configured, where nothing could know to hide it: that is the program's text, not a leak."""
    return not any(spelling in program_text() for spelling in spellings(secret))


SECRET_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FFF,
                                    blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"),
                                    blacklist_characters="*"),
                      min_size=8, max_size=24).filter(lambda text: text == text.strip()).filter(
    is_not_the_programs_own_text)
"""Printable text of every script up to U+2FFF. Never a '*': a secret like '***a' would be found in '*** after'."""


@hypothesis_settings(max_examples=6, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(s3_secret=SECRET_TEXT, geocoder_key=SECRET_TEXT, password=SECRET_TEXT)
def test_no_secret_in_any_spelling_reaches_any_output_under_any_outage(db, bucket, s3_server, run_import, monkeypatch,
                                                                       s3_secret, geocoder_key, password):
    reset_stack(db, bucket, s3_server)
    monkeypatch.setenv("RUSTFS_SECRET_KEY", s3_secret)
    monkeypatch.setenv("GEOCODER_API_KEY", geocoder_key)
    monkeypatch.setenv("GEOCODER_RPS", "1000")
    monkeypatch.setattr(clock, "sleep", lambda _s: None)
    monkeypatch.setattr("fleettickets.database.CONNECT_ATTEMPTS", 1)
    outputs: list[str] = []

    def run(dataset: str, *args: str) -> None:
        outputs.append(run_import(dataset, *args).output)

    # Text from outside quoting every secret: a header (the file is rejected) and a ticket id (the row is).
    bucket.put(changes("inc", "2026-11-20T06-00-00"), f"id,{s3_secret}\nINC1,{geocoder_key}\n")
    bucket.put(changes("inc", "2026-11-20T06-20-00"),
               change_file(ticket_row(f"INC{json.dumps(password)}", "2026-11-20 06:20:00"),
                           ticket_row("INC000000000002", "2026-11-20 06:20:00")))
    run("inc", "--from-bucket", "--apply")
    run("inc", "--status")
    run("inc", "--check")
    # The geocoder answers errors that echo its request, percent-encoded, then goes down.
    fake = FakeLocationIQ().start()
    echoed = urllib.parse.urlencode({"key": geocoder_key, "q": "Kilimani"})
    fake.script = [Scripted(status=400, error=f"bad request {fake.url}?{echoed}"),
                   *[Scripted(status=503, error=f"down for {geocoder_key}")] * 12]
    monkeypatch.setenv("GEOCODER_URL", fake.url)
    try:
        run("inc", "--geocode-clusters", "--apply")
        run("inc", "--geocode-locations", "--apply")
    finally:
        fake.stop()
    # The bucket down, its endpoint carrying the password as userinfo.
    good_endpoint, good_url = s3_server, db.url
    quoted = urllib.parse.quote(password, safe="")
    monkeypatch.setenv("RUSTFS_ENDPOINT", f"http://ops:{quoted}@127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run("inc", "--from-bucket", "--apply")
    run("inc", "--check")
    monkeypatch.setenv("RUSTFS_ENDPOINT", good_endpoint)
    # The database down, with the password in its URL.
    monkeypatch.setenv("DATABASE_URL", f"postgresql://fleettickets:{quoted}@127.0.0.1:{closed_port()}/x")
    run("inc", "--status")
    run("inc", "--from-bucket", "--apply")
    # Something nobody foresaw, carrying every secret in its message, with the debug traceback on.
    monkeypatch.setenv("FLEETTICKETS_DEBUG", "1")
    monkeypatch.setattr("fleettickets.status.print_status", lambda *_: (_ for _ in ()).throw(
        RuntimeError(f"{password} {s3_secret} {geocoder_key}")))
    run("inc", "--status")
    monkeypatch.delenv("FLEETTICKETS_DEBUG")
    monkeypatch.setenv("DATABASE_URL", good_url)

    stored = [str(row) for table in ("ingest_runs", "ingest_files")
              for row in db.query(f"SELECT error FROM tickets.{table}")]
    error_files = [bucket.get(key).decode() for key in bucket.keys("automations/inc/rejected/")
                   if key.endswith(".error.txt")]
    assert error_files and any("***" in output for output in outputs)
    for output in [*outputs, *stored, *error_files]:
        for secret in (s3_secret, geocoder_key, password):
            for spelling in spellings(secret):
                assert spelling not in output, f"{spelling!r} in {output!r}"


def test_a_secret_spelled_like_the_programs_own_words_is_not_drawn():
    assert not is_not_the_programs_own_text("rejected")
    assert not is_not_the_programs_own_text("2026-11-20T06-00-00")
    assert is_not_the_programs_own_text(secrets.token_urlsafe(12))
