"""The suite's own strength: plant small, plausible bugs one at a time and see which the tests catch.

    .venv/bin/python tests/mutants.py            # every mutant (about 15 minutes)
    .venv/bin/python tests/mutants.py watermark  # those whose name contains 'watermark'

Each mutant is one textual change to one file, made in a scratch copy of the tree, with the test files that
should notice it; the copy's tests run against their own database cluster. It prints one line per mutant
(killed, or SURVIVED) and the score. A survivor is a missing test, or an equivalent change to be explained
(docs/implementation.md, "Mutation run").
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS = (
    # The eight survivors of the landed main.
    Mutant("accounting check off", "fleettickets/load.py", "if kept != rejected or staged != expected:",
           "if False:", ("tests/engine/test_ingest.py",)),
    Mutant("delete without If-Match", "fleettickets/bucket.py",
           "self.client.delete_object(Bucket=self.name, Key=key, IfMatch=_quoted(etag))",
           "self.client.delete_object(Bucket=self.name, Key=key)", ("tests/engine/test_bucket_conditions.py",)),
    Mutant("copy without CopySourceIfMatch", "fleettickets/bucket.py",
           "                                             CopySourceIfMatch=_quoted(etag))",
           "                                             )", ("tests/engine/test_bucket_conditions.py",)),
    Mutant("watermark moves back", "fleettickets/ledger.py",
           "GREATEST(metadata->>'source_max_key' COLLATE \"C\", %(key)s::text COLLATE \"C\")", "%(key)s::text",
           ("tests/engine/test_ingest.py",)),
    Mutant("DATABASE_URL not redacted", "fleettickets/settings.py",
           'DATABASE_URLS = ("DATABASE_URL", "MIGRATION_DATABASE_URL")', 'DATABASE_URLS = ("MIGRATION_DATABASE_URL",)',
           ("tests/process/test_what_leaves_the_process.py", "tests/process/test_unattended.py")),
    Mutant("--check file age >=", "fleettickets/status.py",
           "if export_hours_between(exported, now) > dt.timedelta(minutes=max_file_age_min):",
           "if export_hours_between(exported, now) >= dt.timedelta(minutes=max_file_age_min):",
           ("tests/process/test_unattended.py",)),
    Mutant("dispatch on the spheroid", "migrations/read/55_reporting.fn_nearest_open_tickets.sql",
           "public.ST_DWithin(t.geog, $1, $2, false)", "public.ST_DWithin(t.geog, $1, $2, true)",
           ("tests/sql/test_dispatch.py",)),
    Mutant("closure credited to the earliest episode", "migrations/read/43_tickets.dashboard_query.sql",
           "ORDER BY ev.event_id DESC", "ORDER BY ev.event_id ASC", ("tests/engine/test_history.py",)),
    # This session's rules.
    Mutant("impossible stamps are change files", "fleettickets/sourcetime.py",
           "    if exported is None:\n        return KeyKind.NO_SUCH_TIME\n", "",
           ("tests/engine/test_time_in_keys.py",)),
    Mutant("no future tolerance", "fleettickets/sourcetime.py", "return exported > now + FUTURE_TOLERANCE",
           "return False", ("tests/engine/test_time_in_keys.py",)),
    Mutant("undated versions lose", "fleettickets/load.py",
           "COALESCE(s.updated_at, f.exported_at, '-infinity')", "COALESCE(s.updated_at, '-infinity')",
           ("tests/engine/test_version_order.py",)),
    Mutant("typed fields not trimmed", "fleettickets/changefile.py", "**dict.fromkeys(TYPED_FIELDS, str.strip)}",
           "}", ("tests/engine/test_version_order.py",)),
    Mutant("a line of a plain chunk is not bounded", "fleettickets/changefile.py",
           "                    if self._record_bytes + size > self._record_limit:\n"
           "                        self._bound_record(size)\n", "", ("tests/unit/test_reader_limits.py",)),
    Mutant("a rewrite loses its tie", "fleettickets/load.py", "AND l.raw IS DISTINCT FROM t.raw)",
           "AND false)", ("tests/engine/test_version_order.py",)),
    Mutant("a put-back rejection is not retried", "fleettickets/plan.py", "            if not known.moved:",
           "            if True:", ("tests/process/test_recovery_advice.py",)),
    Mutant("a move is not recorded", "fleettickets/pipeline.py",
           'with lost_connection_ends_run(self.conn, f"recording that {source.key} was moved to {destination}"):\n'
           "            ledger.mark_archived(self.conn, self.dataset, source, copy_etag)",
           "pass", ("tests/process/test_recovery_advice.py",)),
    Mutant("no catch-up from the archive", "fleettickets/plan.py", "    steps += [Step(source, Action.APPLY) for "
           "source in caught_up]\n", "", ("tests/engine/test_catch_up.py",)),
    Mutant("SIGTERM not handled", "fleettickets/edge.py", "    previous = _end_on_signals()\n",
           "    previous: dict = {}\n", ("tests/process/test_signals.py",)),
    Mutant("a dead run's row stays open", "fleettickets/ledger.py",
           "    conn.execute(CLOSE_DEAD_RUNS, (dataset.name,))\n", "",
           ("tests/engine/test_file_life.py", "tests/process/test_unattended.py")),
    Mutant("a response's ETag is trusted", "fleettickets/bucket.py", "        if _etag_of(response) != etag:",
           "        if False:", ("tests/engine/test_bucket_conditions.py",)),
    Mutant("control characters reach a log", "fleettickets/outward.py",
           "return _redact(CONTROL.sub(_escape, text))", "return _redact(text)",
           ("tests/process/test_what_leaves_the_process.py",)),
    Mutant("percent-encoded secrets shown", "fleettickets/outward.py",
           '    forms = [re.escape(character), "".join(f"%(?i:{byte:02x})" for byte in character.encode())]',
           "    forms = [re.escape(character)]", ("tests/process/test_what_leaves_the_process.py",)),
    Mutant("the ingest may delete the run log", "migrations/roles/grants.sql",
           "GRANT INSERT, UPDATE ON tickets.ingest_files, tickets.ingest_runs,",
           "GRANT INSERT, UPDATE, DELETE ON tickets.ingest_files, tickets.ingest_runs,",
           ("tests/sql/test_privileges.py",)),
    Mutant("a raw @ in the password is accepted", "fleettickets/settings.py",
           "    if _ambiguous_at(value):\n        raise ConfigError(f\"{name} has an '@' that is not the one before "
           "the host: libpq", "    if False:\n        raise ConfigError(f\"{name} has an '@' that is not the one "
           "before the host: libpq", ("tests/process/test_what_leaves_the_process.py",)),
    Mutant("a raw / in an endpoint's password is accepted", "fleettickets/settings.py",
           "    if _ambiguous_at(value):\n        raise ConfigError(f\"{name} has an '@' that is not the one before "
           "the host: an '@'", "    if False:\n        raise ConfigError(f\"{name} has an '@' that is not the one "
           "before the host: an '@'", ("tests/process/test_what_leaves_the_process.py",)),
    # Adopting the original system's database.
    Mutant("catch-up ignores the adopted watermark", "fleettickets/plan.py", "        if adopted:\n",
           "        if False:\n", ("tests/sql/test_baseline.py",)),
    Mutant("--baseline refuses nothing", "fleettickets/baseline.py", "    if refused:\n", "    if False:\n",
           ("tests/sql/test_baseline.py",)),
    Mutant("a differing immutable function is only noted", "fleettickets/baseline.py",
           "return self.kind in DATA_BEARING_KINDS or unique_index or computes_stored",
           "return self.kind in DATA_BEARING_KINDS or unique_index",
           ("tests/sql/test_baseline.py", "tests/unit/test_catalog_verdicts.py")),
    Mutant("the watermark is not carried in key form", "fleettickets/baseline.py",
           '    key = f"{layout.changes_prefix}{stamp}.csv"\n', "    key = value\n", ("tests/sql/test_baseline.py",)),
    # Boundaries, each written from the contract before looking at the tests that cover it.
    Mutant("a custom window leaves out its end", "migrations/read/43_tickets.dashboard_query.sql",
           "AND c.closed_at <= upper($4)", "AND c.closed_at < upper($4)", ("tests/sql/test_read_api.py",)),
    Mutant("a three-character secret is shown", "fleettickets/settings.py",
           "if len(value) >= 3}", "if len(value) > 3}", ("tests/process/test_what_leaves_the_process.py",)),
    Mutant("a multipart copy is taken for a rewrite", "fleettickets/bucket.py",
           '            self._same_bytes(key, etag, destination, copy_etag, f"copying {key} to {destination}")',
           '            raise _changed(f"copying {key} to {destination}")',
           ("tests/engine/test_bucket_conditions.py",)),
    Mutant("a silent database is waited for without end", "fleettickets/database.py",
           "timeout if timeout is not None else self.stall_s", "timeout", ("tests/process/test_outages.py",)),
    Mutant("a deploy does not pass the read gate", "fleettickets/schema.py",
           "    if gate is not None:  # absent until migration 23 has run\n",
           "    if False:\n", ("tests/sql/test_migrations.py",)),
    Mutant("an archived copy skips the time checks", "fleettickets/plan.py",
           "        if kind is sourcetime.KeyKind.CHANGE_FILE:\n            named.append((key, obj))",
           "        if True:\n            named.append((key, obj))", ("tests/engine/test_catch_up.py",)),
    # The map feed's edges, written from its contract (docs/dashboard-api-contract.md).
    Mutant("a breach the clock alone flipped is not sent", "migrations/read/56_reporting.fn_map_changes.sql",
           "IS DISTINCT FROM (now_at - tickets.sla_start(s.start_columns, r.created_at_service,",
           "IS DISTINCT FROM (since_at - tickets.sla_start(s.start_columns, r.created_at_service,",
           ("tests/sql/test_map_feed.py::test_the_clock_alone_sends_a_breach_that_flipped_and_a_closure_that_left_"
            "the_window",)),
    Mutant("changes counted from the token's newest transaction, not its oldest running",
           "migrations/read/56_reporting.fn_map_changes.sql",
           "'token', concat_ws('.', 'm1', basis, oldest_running,",
           "'token', concat_ws('.', 'm1', basis, pg_snapshot_xmax(pg_current_snapshot()),",
           ("tests/sql/test_map_feed.py::test_a_write_committed_after_the_token_by_a_transaction_begun_before_it_is_"
            "sent",)),
    Mutant("a closure leaving the window is not looked for", "migrations/read/56_reporting.fn_map_changes.sql",
           "AND (w.closed_at <@ window_then) IS DISTINCT FROM (w.closed_at <@ window_now)) AS c;",
           "AND false) AS c;",
           ("tests/sql/test_map_feed.py::test_the_clock_alone_sends_a_breach_that_flipped_and_a_closure_that_left_"
            "the_window",)),
    Mutant("the snapshot day starts at UTC midnight", "migrations/read/30_tickets.capture_history.sql",
           "    today date := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date;",
           "    today date := (tickets.clock() AT TIME ZONE 'UTC')::date;", ("tests/engine/test_history.py",)),
    Mutant("the content lag is rounded", "migrations/read/43_tickets.dashboard_query.sql",
           "floor(extract(epoch FROM tickets.clock() - newest.at) / 60)",
           "round(extract(epoch FROM tickets.clock() - newest.at) / 60)", ("tests/sql/test_read_api.py",)),
    Mutant("a missing function of ours is only noted", "fleettickets/baseline.py",
           '        if self.kind == "function" and not self.redefined_later:\n',
           '        if self.kind == "function" and self.live is not None and not self.redefined_later:\n',
           ("tests/unit/test_catalog_verdicts.py",)),
    Mutant("a dead run's session keeps the lock", "fleettickets/pipeline.py",
           "            dead = locks.end_dead_run(conn, dataset.name, limits.stall_s)\n",
           "            dead = None\n", ("tests/process/test_outages.py",)),
)


def copy_tree(into: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", ".local", "__pycache__", ".mypy_cache", ".ruff_cache",
                                    ".pytest_cache", ".hypothesis")
    shutil.copytree(ROOT, into, ignore=ignore, symlinks=True)


def run(mutant: Mutant) -> tuple[bool, float]:
    """(killed, seconds) for one mutant."""
    with tempfile.TemporaryDirectory(prefix="fleettickets-mutant-") as scratch:
        tree = Path(scratch) / "tree"
        copy_tree(tree)
        target = tree / mutant.path
        text = target.read_text(encoding="utf-8")
        if text.count(mutant.original) != 1:
            raise SystemExit(f"mutant {mutant.name!r}: its original text is not found once in {mutant.path}")
        target.write_text(text.replace(mutant.original, mutant.mutated), encoding="utf-8")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 *mutant.tests], cwd=tree, capture_output=True, text=True, check=False)
        return result.returncode != 0, time.monotonic() - started


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(word in m.name for word in argv)]
    killed = 0
    for mutant in chosen:
        caught, seconds = run(mutant)
        killed += caught
        print(f"{'killed  ' if caught else 'SURVIVED'} {mutant.name} ({', '.join(mutant.tests)}, {seconds:.0f} s)",
              flush=True)
    print(f"score: {killed}/{len(chosen)} killed")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
