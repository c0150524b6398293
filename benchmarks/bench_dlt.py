"""Measure the full replay against dlt's merge of the same change files, in one run, and print the ratio.

    python benchmarks/bench_dlt.py                          # the issue's sizes: 40 files x 5,000 rows, 3 rounds
    python benchmarks/bench_dlt.py --files 4 --rows 500     # smoke

The files, the server (a throwaway cluster, or DATABASE_URL as an admin connection) and our replay are
bench_ingest.py's. dlt is no dependency of this project: the first run builds a venv with DLT_REQUIREMENT from
PyPI under ~/.cache (kept for the next run), and dlt_merge.py runs there as a process of its own. Each round
runs both, one after the other, each a whole process timed start to exit on a fresh database, so that a noisy
neighbour weighs on both alike; the ratio is dlt's time over ours, its median and range over --repeat rounds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter
from pathlib import Path

import psycopg
from bench_ingest import Bench, generate, postgres_server, run_ingest, scratch

DLT_VERSION = "1.31.0"
DLT_REQUIREMENT = f"dlt[postgres]=={DLT_VERSION}"
DLT_MERGE = Path(__file__).with_name("dlt_merge.py")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fleettickets"
# dlt reports usage over the network by default; this machine reaches none but the package registries.
DLT_ENVIRONMENT = {"RUNTIME__DLTHUB_TELEMETRY": "false"}

OURS_DATABASE, DLT_DATABASE = "fleettickets_bench", "fleettickets_bench_dlt"
# The version each side kept of each ticket, by the columns that move between versions, in one spelling: ours
# cleaned them (status upper case, empty as null), dlt typed source_updated_at if its first value read as a time.
OURS_FINAL = ("SELECT ticket_id, concat_ws('|', raw->>'source_updated_at', upper(raw->>'raw_status'), "
              "coalesce(raw->>'owner', ''), coalesce(raw->>'assigned_team', '')) FROM tickets.inc")
DLT_FINAL = ("SELECT ticket_id, concat_ws('|', to_char(source_updated_at::timestamptz, 'YYYY-MM-DD HH24:MI:SS'), "
             "upper(raw_status), coalesce(owner, ''), coalesce(assigned_team, '')) FROM tickets.inc")

FAIRNESS = """\
what each side does, both a whole process from start to exit on a fresh database of the same server:
  ours: python -m inc.import_inc --inc-csv FILES --apply on the migrated schema: reads and cleans every row
        (per-row rejection with a reason, alarm rows dropped), stages and folds the versions by
        (source_updated_at, file, line), upserts each ticket once into tickets.inc (typed generated columns,
        PostGIS geometry by trigger, 11 indexes), keeps the file ledger and watermark, and captures history
        (closure events) after the run
  dlt:  dlt_merge.py: reads the rows with the csv module, infers a schema from them (text, timestamptz where
        a column's first value reads as a time), normalizes them to csv load files, COPYs those into a staging
        table, keeps the latest version of each ticket_id (dedup_sort), deletes and inserts into tickets.inc
        in one transaction, and writes its own state and load tables; no cleaning, no rejection, no ledger,
        no history, no geometry"""


def dlt_python() -> Path:
    """The python of a venv holding DLT_REQUIREMENT, built on first use and kept under CACHE."""
    home = CACHE / f"dlt-{DLT_VERSION}-py{sys.version_info.major}.{sys.version_info.minor}"
    python = home / "bin" / "python"
    built = home / "built"  # written last: a venv whose install was cut short is built again
    if not built.exists():
        shutil.rmtree(home, ignore_errors=True)
        print(f"building a venv with {DLT_REQUIREMENT} from PyPI in {home} (once)", flush=True)
        venv.create(home, with_pip=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", DLT_REQUIREMENT],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            raise SystemExit(f"could not install {DLT_REQUIREMENT}:\n{pip.stderr.strip() or pip.stdout.strip()}")
        built.touch()
    return python


def dlt_credentials(url: str) -> dict[str, str]:
    """The database of `url` in dlt's configuration variables, which take no connection string without a password."""
    said = psycopg.conninfo.conninfo_to_dict(url)
    # A server that trusts us (the throwaway cluster) ignores the password dlt insists on.
    said.setdefault("password", "unused")
    names = {"host": "HOST", "port": "PORT", "user": "USERNAME", "password": "PASSWORD", "dbname": "DATABASE"}
    return {f"DESTINATION__POSTGRES__CREDENTIALS__{names[key]}": str(value) for key, value in said.items()
            if key in names}


def run_dlt(python: Path, url: str, work: Path, paths: list[Path]) -> tuple[float, dict]:
    """Wall time of one dlt merge process, start to exit, and what it said it did."""
    pipelines = Path(tempfile.mkdtemp(prefix="dlt-pipelines-", dir=work))  # no state left from a round before
    started = time.perf_counter()
    process = subprocess.run([str(python), str(DLT_MERGE), str(pipelines), *map(str, paths)],
                             env={**os.environ, **DLT_ENVIRONMENT, **dlt_credentials(url)}, capture_output=True,
                             text=True)
    wall = time.perf_counter() - started
    shutil.rmtree(pipelines)
    if process.returncode != 0:
        raise SystemExit(f"dlt failed ({process.returncode}): {process.stderr.strip() or process.stdout.strip()}")
    return wall, json.loads(process.stdout.splitlines()[-1])


def final_versions(url: str, query: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        conn.execute("SET timezone = 'UTC'")  # the files' times are naive; dlt read them as UTC
        return dict(conn.execute(query).fetchall())


def why_they_differ(paths: list[Path], ours: dict[str, str], theirs: dict[str, str]) -> Counter[str]:
    """Why the two sides kept another version of a ticket, from the files: ours drops alarm rows (a cleaning
    rule) where dlt keeps them, and of two versions at the same source_updated_at ours keeps the later line
    where dlt's dedup keeps either (its documentation says the first)."""
    versions: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                versions.setdefault(row["ticket_id"], []).append((row["source_updated_at"], row["is_alarm"]))
    reasons: Counter[str] = Counter()
    for ticket in (set(ours) | set(theirs)) - {t for t in ours if ours[t] == theirs.get(t)}:
        newest = max(at for at, _ in versions[ticket])
        last = [alarm for at, alarm in versions[ticket] if at == newest]
        reasons["whose latest row is an alarm (ours drops alarm rows)" if last[-1] == "true" else
                "whose latest rows share a source_updated_at (ours keeps the later line)" if len(last) > 1 else
                "unexplained"] += 1
    return reasons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=5000, help="rows per file")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds, after one round not measured")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()

    python = dlt_python()
    work = scratch()
    try:
        with postgres_server(work) as admin:
            return run(args, work, Bench(admin), python)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the files are regenerated from the seed on every run


def run(args: argparse.Namespace, work: Path, bench: Bench, python: Path) -> int:
    data = work / "changes"
    data.mkdir()
    paths = generate(data, args.files, args.rows, args.seed)
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"data: {args.files} files x {args.rows} rows = {args.files * args.rows:,} row versions, {size_mb:.1f} MB")

    def ours() -> float:
        return run_ingest({"DATABASE_URL": bench.fresh(OURS_DATABASE)}, "--inc-csv", *map(str, paths))

    def theirs() -> tuple[float, dict]:
        # A database as plain as dlt expects one: template1, not our migrated template.
        return run_dlt(python, bench.fresh(DLT_DATABASE, template="template1"), work, paths)

    # A round not measured (imports compiled, files in the page cache), whose results are compared.
    ours()
    _, said = theirs()
    kept, dlt_kept = (final_versions(bench.url(OURS_DATABASE), OURS_FINAL),
                      final_versions(bench.url(DLT_DATABASE), DLT_FINAL))
    same = sum(dlt_kept.get(ticket) == version for ticket, version in kept.items())
    print(f"dlt {said['dlt']} ({DLT_REQUIREMENT}, {python.parent.parent}): merge, delete-insert on ticket_id, "
          "dedup_sort desc on source_updated_at; load files: "
          + ", ".join(f"{table} {'+'.join(formats)}" for table, formats in said["file_formats"].items()))
    differ = why_they_differ(paths, kept, dlt_kept)
    print(f"final tickets: ours {len(kept):,}, dlt {len(dlt_kept):,}; the same version kept of {same:,} "
          f"(source_updated_at, raw_status, owner, assigned_team); another of {differ.total():,}: "
          + (", ".join(f"{n:,} {reason}" for reason, n in differ.most_common()) or "none"))

    rounds = []
    for _ in range(args.repeat):
        took = ours()
        dlt_took, said = theirs()
        rounds.append((took, dlt_took, said["steps"]))
    ratios = sorted(dlt_took / took for took, dlt_took, _ in rounds)
    steps = {step: statistics.median(r[2][step] for r in rounds) for step in rounds[0][2]}
    rows = [
        ("full replay, python -m inc.import_inc", [r[0] for r in rounds], ""),
        ("dlt merge, dlt_merge.py", [r[1] for r in rounds],
         "of which dlt's steps: " + ", ".join(f"{step} {s:.2f} s" for step, s in steps.items())),
    ]
    width = 40
    print(f"{'measure':{width}}  {'median':>9}  runs")
    for name, times, note in rows:
        print(f"{name:{width}}  {statistics.median(times):7.2f} s  {' '.join(f'{t:.2f}' for t in times)}  "
              f"{note}".rstrip())
    print(f"{'dlt / full replay':{width}}  {statistics.median(ratios):8.2f}x  {ratios[0]:.2f}-{ratios[-1]:.2f} "
          f"over {args.repeat} rounds; target >= 4x")
    print(FAIRNESS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
