"""Measure the ingest against PostgreSQL's own floor, in one run, and print one table.

    python benchmarks/bench_ingest.py                 # the issue's sizes: 40 files x 5,000 rows
    python benchmarks/bench_ingest.py --files 4 --rows 500 --big-rows 20000 --dashboard-tickets 2000  # smoke

Everything is generated here (deterministic seed) in the source contract's
format. It starts a throwaway PostgreSQL cluster (unless DATABASE_URL names a
server that may create databases) and moto's S3 server on loopback, and stops
them at the end. Figures are medians over --repeat runs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import devstack  # noqa: E402
from fleettickets import schema  # noqa: E402
from support import releases  # noqa: E402

COLUMNS = (
    "ticket_id", "raw_status", "normalized_status", "bucket", "is_actionable", "cluster", "region", "location_name",
    "assigned_team", "owner", "sla_status", "mttr", "created_at_service", "scheduled_at", "closed_at",
    "first_seen_at", "last_seen_at", "source_created_at", "source_updated_at", "latitude", "longitude",
    "service_type", "is_alarm", "is_auto_created", "is_auto_closed", "week_start", "week_end", "source_s3_bucket",
    "source_s3_key", "source_snapshot_id", "department", "source_type",
)
CLUSTERS = ["Kilimani", "QOA", "PTMP", "Karen", "South B", "Syokimau", "Kasarani", "Westlands", "Kileleshwa",
            "Ruaka", "Rongai", "Nyali", "Milimani", "Lavington", "Embakasi"]
STREETS = ["Argwings Kodhek Rd", "Lenana Rd", "Ngong Rd", "Kandara Rd", "Mombasa Rd", "Thika Rd", "Links Rd"]
PLACES = ["Yaya Court", "Baraka Gardens", "Uhuru House", "Amani Plaza", "Mvule Towers", "Acacia Estate"]
STATES = [("New", "new", "open", "true"), ("Assigned", "assigned", "open", "true"),
          ("In Progress", "in_progress", "open", "true"), ("Pending", "pending", "open", "false"),
          ("Resolved", "resolved", "closed", "false"), ("Closed", "closed", "closed", "false")]


def stamp(minutes: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_763_600_000 + minutes * 60))


def generate(directory: Path, files: int, rows: int, seed: int, first_file: int = 0) -> list[Path]:
    """Change files like the export's: each a 5,000-row slice of a growing, changing ticket population."""
    rng = random.Random(seed)
    population = max(rows * files * 288 // 1000, rows)  # ~57,600 tickets for 40 x 5,000
    paths = []
    for f in range(first_file, first_file + files):
        path = directory / time.strftime("%Y-%m-%dT%H-%M-%S.csv", time.gmtime(1_763_600_000 + f * 1200))
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for _ in range(rows):
                n = rng.randrange(population)
                raw_status, status, bucket, actionable = STATES[min(f * len(STATES) // (files + first_file + 1)
                                                                   + rng.randrange(2), len(STATES) - 1)]
                closed = bucket == "closed"
                coordinates = (f"-1.2{n % 10_000:04d}", f"36.7{n % 9_999:04d}") if n % 20 == 0 else ("", "")
                # Where a ticket is does not change between its versions; its status, owner and times do.
                writer.writerow([
                    f"INC{17_000_000 + n:012d}", raw_status, status, bucket, actionable, CLUSTERS[n % len(CLUSTERS)],
                    ["Nairobi", "NAIROBI", "nairobi"][n % 3],
                    f"{PLACES[n % len(PLACES)]}, {STREETS[n % len(STREETS)]} {['ODB 4', 'KIL-OLT-014', ''][n % 3]}",
                    rng.choice(["FieldOps Nairobi West", "Splicing Team A", "NOC Tier 2"]),
                    rng.choice(["jwanjiru", "aotieno", ""]), "Within SLA" if closed else "",
                    f"{rng.randrange(20, 3000)}.{rng.randrange(10)}" if closed else "",
                    stamp(f * 20 - 120) if rng.random() < 0.7 else "", "", stamp(f * 20 - 5) if closed else "",
                    stamp(f * 20 - 60), stamp(f * 20), stamp(f * 20 - 90), stamp(f * 20 - rng.randrange(20)),
                    *coordinates, "FTTH", "true" if rng.random() < 0.03 else "false", "false", "false",
                    "2026-11-16", "2026-11-22", "tickets", f"exports/inc/{path.name}", f"{n:032x}", "NOC", "INC",
                ])
        paths.append(path)
    return paths


def median_of(repeat: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeat))


class Bench:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template = "fleettickets_bench_template"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.template)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        with psycopg.connect(self.url(self.template), autocommit=True) as conn:
            schema.migrate(conn, schema.discover(), say=lambda _line: None)

    def url(self, name: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=name)

    def fresh(self, name: str = "fleettickets_bench", template: str | None = None) -> str:
        """A new database `name`, made from this tree's migrated template or from `template`."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                          sql.Identifier(template or self.template)))
        return self.url(name)


class PreviousRelease:
    """The last landed release (tests/support/releases.py's PREVIOUS_RELEASE), built from git history in a
    temporary checkout: its own code, migrated by its own runner, replaying the same files."""

    def __init__(self, bench: Bench, work: Path) -> None:
        self.commit = releases.PREVIOUS_RELEASE
        self.tree = releases.checkout(self.commit, work / "previous-release")
        self.bench = bench
        self.template = "fleettickets_bench_previous_template"
        with psycopg.connect(bench.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.template)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        migrated = releases.migrate_with(self.tree, bench.url(self.template))
        if migrated.returncode != 0:
            raise SystemExit(f"the previous release's migrations failed: {migrated.stderr.strip()}")

    def replay(self, paths: list[Path], env: dict[str, str] | None = None) -> float:
        url = self.bench.fresh("fleettickets_bench_previous", template=self.template)
        return run_ingest({"DATABASE_URL": url, **(env or {})}, "--inc-csv", *map(str, paths), tree=self.tree)


def copy_floor(url: str, paths: list[Path]) -> float:
    """PostgreSQL's own floor: COPY the raw CSVs into an UNLOGGED table of 32 text columns."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.floor")
        conn.execute("CREATE UNLOGGED TABLE public.floor (" + ", ".join(f"{c} text" for c in COLUMNS) + ")")
        started = time.perf_counter()
        for path in paths:
            with conn.cursor().copy("COPY public.floor FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(path.read_bytes())
        return time.perf_counter() - started


NEWLINE = b"\n"
FINAL_TICKETS = ("COPY (SELECT ticket_id, raw, source_file, source_line, version_at FROM tickets.inc "
                 "ORDER BY ticket_id) TO STDOUT")


def final_tickets(url: str) -> bytes:
    """The tickets a replay left, in COPY's text format: what the schema floor writes."""
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET timezone = 'UTC'")
        with cur.copy(FINAL_TICKETS) as copy:
            return b"".join(bytes(chunk) for chunk in copy)


def schema_floor(url: str, tickets: bytes) -> float:
    """This schema's own write floor: the replay's final tickets alone, COPYed into the real tickets.inc (its
    geom trigger, generated columns, indexes and WAL) in one transaction on a fresh database, commit included."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET timezone = 'UTC'")
        conn.commit()
        started = time.perf_counter()
        with cur.copy("COPY tickets.inc (ticket_id, raw, source_file, source_line, version_at) FROM STDIN") as copy:
            copy.write(tickets)
        conn.commit()
        return time.perf_counter() - started


def first_capture(url: str) -> float:
    """The history capture on a database that holds tickets and no history yet, as after a replay on a fresh
    database: the run's post-apply step, closing every closed ticket once."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("SELECT tickets.capture_history('inc')")
        return time.perf_counter() - started


READING_ALONE = """
import sys, time
from fleettickets.changefile import ChangeFile
from inc.import_inc import DATASET
started = time.perf_counter()
for path in sys.argv[1:]:
    with open(path, "rb") as stream:
        for _ in ChangeFile(stream, path, DATASET.ticket_id_pattern, DATASET.ticket_id_description).rows():
            pass
print(time.perf_counter() - started)
"""


def reading_alone(paths: list[Path]) -> float:
    """The reader alone over the files (parse, check, clean, JSON), in a process of its own, no database."""
    process = subprocess.run([sys.executable, "-c", READING_ALONE, *map(str, paths)], cwd=ROOT, check=True,
                             capture_output=True, text=True)
    return float(process.stdout)


def run_ingest(env: dict[str, str], *args: str, tree: Path = ROOT) -> float:
    """Wall time of one ingest process (of this tree, or another release's), start to exit."""
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-m", "inc.import_inc", *args, "--apply"], cwd=tree,
                             env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"ingest failed ({process.returncode}): {process.stderr.strip() or process.stdout.strip()}")
    return wall


def peak_rss(env: dict[str, str], *args: str) -> float:
    code, megabytes = devstack.peak_rss([sys.executable, "-m", "inc.import_inc", *args, "--apply"],
                                        {**os.environ, **env}, ROOT)
    if code != 0:
        raise SystemExit("the ingest measured for peak memory failed")
    return megabytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=5000, help="rows per file")
    parser.add_argument("--big-rows", type=int, default=500_000, help="rows of the single file for peak memory")
    parser.add_argument("--dashboard-tickets", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--map-feed-only", action="store_true",
                        help="only the map feed at a bad week: change answer against full, ingest with and without "
                             "what the feed keeps")
    parser.add_argument("--batch-sweep", metavar="SIZES", default="",
                        help="only the replay, once per batch size (FLEETTICKETS_BATCH_FILES), e.g. 1,5,10,20,40")
    args = parser.parse_args()

    work = scratch()
    with postgres_server(work) as admin:
        moto = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
                                 str(s3_port := devstack.free_port())], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            devstack.wait_for_port(s3_port)
            return run(args, work, Bench(admin), f"http://127.0.0.1:{s3_port}")
        finally:
            moto.terminate()


def scratch() -> Path:
    """A fresh work directory for the data and the cluster."""
    work = Path(tempfile.mkdtemp(prefix="fleettickets-bench-"))
    work.chmod(0o755)  # the cluster runs as the postgres user when we are root
    return work


@contextlib.contextmanager
def postgres_server(work: Path) -> Iterator[str]:
    """An admin URL that may create databases: DATABASE_URL, or a throwaway cluster under `work`, removed after."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    cluster = devstack.PgCluster(work / "pg", devstack.free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.remove()


def run(args: argparse.Namespace, work: Path, bench: Bench, s3_endpoint: str) -> int:
    if args.map_feed_only:
        print_table(map_feed_bad_week(bench, args, work))
        return 0
    data = work / "changes"
    data.mkdir()
    paths = generate(data, args.files, args.rows, args.seed)
    extra = generate(data, 1, 5000, args.seed + 1, first_file=args.files)[0]
    total_rows = args.files * args.rows
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"data: {args.files} files x {args.rows} rows = {total_rows:,} row versions, {size_mb:.0f} MB")

    floor = median_of(args.repeat, lambda: copy_floor(bench.fresh(), paths))

    def replay_local(batch_files: str | None = None) -> float:
        env = {"DATABASE_URL": bench.fresh(), **({"FLEETTICKETS_BATCH_FILES": batch_files} if batch_files else {})}
        return run_ingest(env, "--inc-csv", *map(str, paths))

    previous = PreviousRelease(bench, work)
    replay_local()
    tickets = final_tickets(bench.url("fleettickets_bench"))
    print(f"COPY floor {floor:.2f} s; schema floor writes {tickets.count(NEWLINE):,} tickets; previous release "
          f"{previous.commit[:7]}")

    header_only = data.parent / "header-only" / paths[0].name
    header_only.parent.mkdir(exist_ok=True)
    header_only.write_bytes(paths[0].read_bytes().split(NEWLINE, 1)[0] + NEWLINE)

    def design_bound() -> float:
        """What no replay of this design can beat on this machine: a run's start-up (an ingest of one
        header-only file), the reader alone on one core (the write cannot begin before every version is
        staged), the schema floor, and the first history capture (after the commit, on the final tickets)."""
        start_up = run_ingest({"DATABASE_URL": bench.fresh()}, "--inc-csv", str(header_only))
        floor_url = bench.fresh()
        return start_up + reading_alone(paths) + schema_floor(floor_url, tickets) + first_capture(floor_url)

    def compared(batch_files: str | None = None) -> tuple[float, str]:
        """The replay against the schema floor, the previous release's replay and this design's bound, all
        alternating so that a noisy neighbour weighs on all alike: the median time, and the ratios' medians and
        spreads."""
        env = {"FLEETTICKETS_BATCH_FILES": batch_files} if batch_files else {}
        runs = [(replay_local(batch_files), schema_floor(bench.fresh(), tickets), previous.replay(paths, env),
                 design_bound()) for _ in range(args.repeat)]
        took = statistics.median(run[0] for run in runs)
        said = []
        for name, index in (("schema floor", 1), ("previous release", 2), ("design's bound", 3)):
            ratios = sorted(run[0] / run[index] for run in runs)
            said.append(f"{statistics.median(ratios):.2f}x the {name} ({ratios[0]:.2f}-{ratios[-1]:.2f})")
        bounds = sorted(run[3] / run[1] for run in runs)
        said.append(f"the bound is {statistics.median(bounds):.2f}x the schema floor "
                    f"({bounds[0]:.2f}-{bounds[-1]:.2f})")
        return took, "; ".join(said)

    if args.batch_sweep:
        for size in args.batch_sweep.split(","):
            took, said = compared(size)
            print(f"full replay, batches of {size:>3} files: {took:6.2f} s  {took / floor:5.1f}x the COPY floor; "
                  f"{said} over {args.repeat} runs")
        return 0

    local, against = compared()
    alone = median_of(args.repeat, lambda: replay_local("1"))
    replay_rss = peak_rss({"DATABASE_URL": bench.fresh()}, "--inc-csv", *map(str, paths))

    s3_env = devstack.s3_environment(s3_endpoint)
    client = devstack.s3_client(s3_endpoint)
    client.create_bucket(Bucket=devstack.BUCKET)

    def upload() -> None:
        for path in paths:
            client.put_object(Bucket=devstack.BUCKET, Key=f"automations/inc/changes/{path.name}",
                              Body=path.read_bytes())

    def transfer_only() -> float:
        started = time.perf_counter()
        for path in paths:
            client.get_object(Bucket=devstack.BUCKET, Key=f"automations/inc/changes/{path.name}")["Body"].read()
        return time.perf_counter() - started

    upload()
    transfer = median_of(args.repeat, transfer_only)

    def replay_s3() -> float:
        for key in [o["Key"] for o in client.list_objects_v2(Bucket=devstack.BUCKET).get("Contents", [])]:
            client.delete_object(Bucket=devstack.BUCKET, Key=key)
        upload()
        return run_ingest({**s3_env, "DATABASE_URL": bench.fresh()}, "--from-bucket")

    from_s3 = median_of(args.repeat, replay_s3)
    loaded_url = bench.url("fleettickets_bench")

    def incremental() -> float:
        client.put_object(Bucket=devstack.BUCKET, Key=f"automations/inc/changes/{extra.name}",
                          Body=extra.read_bytes())
        wall = run_ingest({**s3_env, "DATABASE_URL": loaded_url}, "--from-bucket")
        with psycopg.connect(loaded_url, autocommit=True) as conn:  # forget it, so the next repeat applies it again
            conn.execute("DELETE FROM tickets.ingest_files WHERE key LIKE %s", (f"%{extra.name}",))
        return wall

    one_new = median_of(args.repeat, incremental)
    nothing_new = median_of(args.repeat, lambda: run_ingest({**s3_env, "DATABASE_URL": loaded_url},
                                                            "--from-bucket"))

    big = generate(work, 1, args.big_rows, args.seed + 2, first_file=500)[0]
    small = generate(work, 1, max(args.big_rows // 10, 1000), args.seed + 3, first_file=600)[0]
    rss_big = peak_rss({"DATABASE_URL": bench.fresh()}, "--inc-csv", str(big))
    rss_small = peak_rss({"DATABASE_URL": bench.fresh()}, "--inc-csv", str(small))

    dashboards = dashboard_latency(bench, args)
    bad_week = dashboard_bad_week(bench, args)

    rows = [
        ("COPY floor (UNLOGGED, 32 text columns)", f"{total_rows / floor:,.0f} rows/s", f"{floor:.2f} s", "1.0x"),
        ("full replay, local files, batched", f"{total_rows / local:,.0f} rows/s", f"{local:.2f} s",
         f"{local / floor:.1f}x; target <= 10x"),
        ("  the same replay against", "", "", f"{against}; targets <= 1.5x, <= 1.0x"),
        ("full replay, local files, one file a batch", f"{total_rows / alone:,.0f} rows/s", f"{alone:.2f} s",
         f"{alone / floor:.1f}x"),
        ("full replay from S3 (loopback), batched", f"{total_rows / from_s3:,.0f} rows/s", f"{from_s3:.2f} s",
         f"{from_s3 / floor:.1f}x; transfer {transfer:.2f} s = {transfer / from_s3:.0%}"),
        ("incremental run, one new 5,000-row file", "", f"{one_new:.2f} s", "target <= 0.6 s"),
        ("no-op run, nothing new", "", f"{nothing_new:.2f} s", "target <= 0.4 s"),
        (f"peak RSS, one {args.big_rows:,}-row file", "", f"{rss_big:.0f} MB",
         f"{rss_small:.0f} MB at {max(args.big_rows // 10, 1000):,} rows; target <= 150 MB"),
        (f"peak RSS, the {args.files}-file replay in batches", "", f"{replay_rss:.0f} MB", "target <= 150 MB"),
        *dashboards,
        *bad_week,
        *map_feed_bad_week(bench, args, work),
    ]
    print_table(rows)
    return 0


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  {'rate':>15}  {'time':>10}  vs floor / note")
    for name, rate, took, note in rows:
        print(f"{name:{width}}  {rate:>15}  {took:>10}  {note}")


DASHBOARD_TICKETS = """
INSERT INTO tickets.inc (ticket_id, raw)
SELECT format('INC%%s', lpad(n::text, 12, '0')), jsonb_strip_nulls(jsonb_build_object(
    'ticket_id', format('INC%%s', lpad(n::text, 12, '0')),
    'raw_status', CASE WHEN open THEN 'IN PROGRESS' ELSE 'CLOSED' END,
    'normalized_status', CASE WHEN open THEN (ARRAY['new', 'assigned', 'in_progress', 'pending'])[1 + n %% 4]
                              ELSE 'closed' END,
    'bucket', CASE WHEN open THEN 'open' ELSE 'closed' END,
    'is_actionable', CASE WHEN open AND n %% 4 <> 3 THEN 'true' ELSE 'false' END,
    'cluster', (ARRAY['Kilimani', 'QOA', 'PTMP', 'Karen', 'South B', 'Syokimau', 'Kasarani', 'Westlands',
                      'Kileleshwa', 'Ruaka', 'Rongai', 'Nyali', 'Milimani', 'Lavington', 'Embakasi'])[1 + n %% 15],
    'region', 'nairobi',
    'location_name', format('Plot %%s, Ngong Rd ODB %%s', n %% 500, n %% 90),
    'assigned_team', (ARRAY['FieldOps Nairobi West', 'Splicing Team A', 'NOC Tier 2', NULL])[1 + n %% 4],
    'owner', (ARRAY['jwanjiru', 'aotieno', 'pmwangi', 'bkiprono', NULL])[1 + n %% 5],
    'mttr', CASE WHEN open THEN NULL ELSE (30 + n %% 2000)::text END,
    'created_at_service', CASE WHEN n %% 10 < 7 THEN to_char(opened, 'YYYY-MM-DD HH24:MI:SS') END,
    'first_seen_at', to_char(opened + interval '20 minutes', 'YYYY-MM-DD HH24:MI:SS'),
    'closed_at', CASE WHEN open THEN NULL
                      ELSE to_char(opened + (30 + n %% 2000) * interval '1 minute', 'YYYY-MM-DD HH24:MI:SS') END,
    'source_updated_at', to_char(opened + interval '1 hour', 'YYYY-MM-DD HH24:MI:SS'),
    'is_alarm', 'false'))
FROM (SELECT n, %(open_every)s > 0 AND n %% %(open_every)s = 0 AS open,
             (now() AT TIME ZONE 'Africa/Nairobi') - (n::float8 / %(tickets)s * %(days)s) * interval '1 day' AS opened
      FROM generate_series(1, %(tickets)s) AS n) AS t
"""

# A bad week: 50,000 tickets of which 10,000 open (two weeks of backlog) and
# 5,000 closed in the last seven days, as the live map sees them at its worst.
BAD_WEEK = [
    {"open_every": 1, "tickets": 10_000, "days": 14, "first": 0},
    {"open_every": 0, "tickets": 5_000, "days": 6, "first": 10_000},
    {"open_every": 0, "tickets": 35_000, "days": 170, "first": 15_000},
]

# The floor the payload is held to: the same open and closed-in-window rows,
# with the same feature properties and order, serialized by one json_agg each.
FEATURES_FLOOR = """
SELECT json_build_object(
    'open', (SELECT json_agg(json_build_object('type', 'Feature', 'id', o.ticket_id,
                 'geometry', ST_AsGeoJSON(o.geom, 6)::json, 'properties', json_build_object(
                 'ticket_id', o.ticket_id, 'normalized_status', o.normalized_status, 'raw_status', o.raw_status,
                 'is_actionable', o.is_actionable, 'cluster', o.cluster, 'cluster_name', o.cluster_name,
                 'region', o.region, 'location_name', o.location_name, 'assigned_team', o.assigned_team,
                 'owner', o.owner, 'sla_start', o.sla_start, 'sla_start_source', o.sla_start_source,
                 'age_minutes', o.age_minutes, 'sla_breached', o.sla_breached, 'geo_source', o.geo_source))
             ORDER BY o.sla_start NULLS LAST, o.ticket_id) FROM tickets.inc_open_sla AS o),
    'closed', (SELECT json_agg(json_build_object('type', 'Feature', 'id', c.ticket_id,
                   'geometry', ST_AsGeoJSON(c.geom, 6)::json, 'properties', json_build_object(
                   'ticket_id', c.ticket_id, 'normalized_status', c.normalized_status, 'cluster', c.cluster,
                   'cluster_name', c.cluster_name, 'region', c.region, 'location_name', c.location_name,
                   'assigned_team', c.assigned_team, 'owner', c.owner, 'closed_at', c.closed_at,
                   'mttr_minutes', c.mttr, 'sla_status', c.sla_status, 'geo_source', c.geo_source))
               ORDER BY c.closed_at DESC, c.ticket_id)
               FROM tickets.inc_closed AS c WHERE c.closed_at >= tickets.clock() - interval '7 days'))
"""


# The same tickets as CRQ, and a feed coordinate for each, scattered over
# ~45 x 55 km around Nairobi, for the CRQ dashboard and dispatch.
CRQ_AND_COORDINATES = """
INSERT INTO tickets.crq (ticket_id, raw)
SELECT 'CRQ' || substr(ticket_id, 4), raw || jsonb_build_object('ticket_id', 'CRQ' || substr(ticket_id, 4))
FROM tickets.inc;
UPDATE tickets.inc SET raw = raw || jsonb_build_object(
    'latitude', round(-1.5 + (substr(ticket_id, 4)::bigint * 7919 % 10007) / 10007.0 * 0.4, 6)::text,
    'longitude', round(36.6 + (substr(ticket_id, 4)::bigint * 104729 % 10009) / 10009.0 * 0.5, 6)::text);
UPDATE tickets.crq SET raw = raw || jsonb_build_object(
    'latitude', round(-1.5 + (substr(ticket_id, 4)::bigint * 6007 % 10007) / 10007.0 * 0.4, 6)::text,
    'longitude', round(36.6 + (substr(ticket_id, 4)::bigint * 7057 % 10009) / 10009.0 * 0.5, 6)::text)
"""

NEAREST_CANDIDATES = """
SELECT t.dataset, t.ticket_id FROM tickets.all_tickets AS t
WHERE t.bucket = 'open' AND t.is_actionable
  AND ST_DWithin(t.geog, 'SRID=4326;POINT(36.8219 -1.2921)'::geography, 10000, false)
ORDER BY t.geog <-> 'SRID=4326;POINT(36.8219 -1.2921)'::geography
LIMIT 20
"""


def dashboard_latency(bench: Bench, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """Median planning + execution time of each dashboard, and of dispatch, over --dashboard-tickets tickets.

    Six months of tickets, one in 25 still open, as the live map sees them; the
    same again as CRQ; each with a feed coordinate for dispatch.
    """
    url = bench.fresh("fleettickets_bench_dashboard")
    repeat = max(args.repeat, 5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DASHBOARD_TICKETS, {"tickets": args.dashboard_tickets, "open_every": 25, "days": 180, "first": 0})
        inc_only = explain_ms(conn, "SELECT reporting.fn_inc_dashboard(NULL, NULL, '7d', NULL, NULL)", repeat)
        conn.execute(CRQ_AND_COORDINATES)
        conn.execute("VACUUM ANALYZE tickets.inc")
        conn.execute("VACUUM ANALYZE tickets.crq")
        tickets = conn.execute("SELECT count(*) FROM tickets.inc").fetchone()[0]
        inc, crq = (explain_ms(conn, f"SELECT reporting.fn_{name}_dashboard(NULL, NULL, '7d')", repeat)
                    for name in ("inc", "crq"))
        rows = [(f"fn_inc_dashboard at {tickets:,} tickets", "", f"{inc:.1f} ms",
                 f"EXPLAIN ANALYZE; target <= 100 ms ({inc_only:.1f} ms before the CRQ tickets and coordinates)"),
                (f"fn_crq_dashboard at {tickets:,} tickets", "", f"{crq:.1f} ms", "target <= 100 ms")]
        nearest = explain_ms(conn, "SELECT reporting.fn_nearest_open_tickets(-1.2921, 36.8219, 10, 20)", repeat)
        plan = [line for (line,) in conn.execute("EXPLAIN (COSTS OFF) " + NEAREST_CANDIDATES)]
        knn = [line.strip() for line in plan if "Index Scan using" in line and "geog" in line]
        ordered = any(line.strip().startswith("Order By: (geog <->") for line in plan)
        rows.append((f"fn_nearest_open_tickets at {2 * tickets:,} tickets (INC + CRQ)", "", f"{nearest:.1f} ms",
                     f"target <= 20 ms; plan: {'; '.join(knn) or 'NO geog index scan'}"
                     f"{' ordered by <-> (KNN)' if ordered else ''}"))
    return rows


def explain_ms(conn: psycopg.Connection, query: str, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query).fetchone()[0]
        timings.append(plan[0]["Execution Time"] + plan[0]["Planning Time"])
    return statistics.median(timings)


def load_bad_week(conn: psycopg.Connection, args: argparse.Namespace) -> None:
    """BAD_WEEK's tickets, scaled to --dashboard-tickets, each placed at its cluster's centroid."""
    for part in BAD_WEEK:
        scaled = {**part, "tickets": max(part["tickets"] * args.dashboard_tickets // 50_000, 10)}
        conn.execute(DASHBOARD_TICKETS.replace("lpad(n::text", "lpad((n + %(first)s)::text"), scaled)
    conn.execute("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) "
                 "SELECT DISTINCT tickets.canonical_cluster(cluster), -1.28, 36.8, 'ok' FROM tickets.inc")
    conn.execute("SELECT tickets.resolve_ticket_geoms()")


def dashboard_bad_week(bench: Bench, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """fn_inc_dashboard on a bad week against the floor of serializing the same features, filtered and not."""
    url = bench.fresh("fleettickets_bench_bad_week")
    with psycopg.connect(url, autocommit=True) as conn:
        load_bad_week(conn, args)
        # History as production has it: every closure has its event, which the
        # dashboard's by_team/by_owner credit. The first capture records them all.
        started = time.perf_counter()
        conn.execute("SELECT tickets.capture_history('inc')")
        first_capture = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE tickets.inc")
        conn.execute("VACUUM ANALYZE tickets.closure_events")
        started = time.perf_counter()
        conn.execute("SELECT tickets.capture_history('inc')")
        next_capture = time.perf_counter() - started
        open_count, closed_count = conn.execute(
            "SELECT count(*) FILTER (WHERE bucket = 'open'), count(*) FILTER (WHERE closed_at >= now() - "
            "interval '7 days') FROM tickets.inc").fetchone()
        repeat = max(args.repeat, 5)
        unfiltered = explain_ms(conn, "SELECT reporting.fn_inc_dashboard(NULL, NULL, '7d')", repeat)
        floor = explain_ms(conn, FEATURES_FLOOR, repeat)
        filtered = explain_ms(conn, "SELECT reporting.fn_inc_dashboard('Kilimani', NULL, '7d')", repeat)
        payload = conn.execute("SELECT reporting.fn_inc_dashboard(NULL, NULL, '7d')::text").fetchone()[0]
        features = open_count + closed_count
    per_feature = len(payload.encode()) / max(features, 1)
    return [
        ("bad week: history capture, the first (every closure)", "", f"{first_capture * 1000:.0f} ms",
         "once per database"),
        ("bad week: history capture, nothing changed", "", f"{next_capture * 1000:.0f} ms",
         "after every ingest run"),
        (f"bad week: fn_inc_dashboard, {open_count:,} open + {closed_count:,} closed", "", f"{unfiltered:.0f} ms",
         f"{unfiltered / floor:.2f}x the floor; target <= 1.5x"),
        ("bad week: floor, the same features by one json_agg", "", f"{floor:.0f} ms", "1.0x"),
        ("bad week: filtered to one cluster of 15", "", f"{filtered:.1f} ms",
         f"{filtered / unfiltered:.2f}x unfiltered; target <= 0.2x"),
        ("bad week: payload size", "", f"{len(payload) / 1e6:.1f} MB", f"{per_feature:.0f} bytes a feature"),
    ]


FEED_TRIGGERS = ("inc_map_feed_generation ON tickets.inc", "crq_map_feed_generation ON tickets.crq")
MAP_FEED_CALL = "SELECT reporting.fn_map_changes({token}, NULL, NULL, NULL, '7d')"


def map_feed_bad_week(bench: Bench, args: argparse.Namespace, work: Path) -> list[tuple[str, str, str, str]]:
    """The live map's refresh at a bad week: after a typical 20-minute ingest (a few dozen tickets changed), the
    change answer from the last token against the full answer, and that ingest with and without what the feed
    keeps (migration 26's triggers; the feed reads each row's xmin, which every write makes anyway)."""
    url = bench.fresh("fleettickets_bench_map_feed")
    with psycopg.connect(url, autocommit=True) as conn:
        load_bad_week(conn, args)
        conn.execute("SELECT tickets.capture_history('inc')")
        conn.execute("VACUUM ANALYZE tickets.inc")
        # A typical run: 40 tickets, 30 of them open ones moving on (owner, status), 10 new.
        changed = [row for (row,) in conn.execute(
            "SELECT raw FROM tickets.inc WHERE bucket = 'open' ORDER BY ticket_id DESC LIMIT 30").fetchall()]
        now_eat = dt.datetime.now(dt.timezone(dt.timedelta(hours=3)))
        stamp = now_eat.strftime("%Y-%m-%d %H:%M:%S")
        for row in changed:
            row.update(owner="okamau", normalized_status="in_progress", source_updated_at=stamp)
        fresh = [{**changed[0], "ticket_id": f"INC9{n:011d}", "source_updated_at": stamp} for n in range(10)]
        run_file = work / f"{now_eat:%Y-%m-%dT%H-%M-%S}.csv"
        with run_file.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(changed + fresh)

        full = conn.execute(MAP_FEED_CALL.format(token="NULL") + "::text").fetchone()[0]
        token = json.loads(full)["token"]
        full_features = len(json.loads(full)["features"])

        def ingest(with_triggers: bool) -> float:
            for trigger in FEED_TRIGGERS:
                conn.execute(f"ALTER TABLE {trigger.split(' ON ')[1]} "
                             f"{'ENABLE' if with_triggers else 'DISABLE'} TRIGGER {trigger.split(' ON ')[0]}")
            conn.execute("DELETE FROM tickets.ingest_files")  # so the same file applies again
            return run_ingest({"DATABASE_URL": url}, "--inc-csv", str(run_file))

        ingest(True)  # the run whose changes the answer carries; the token was made before it
        with_feed, without_feed = [], []
        for _ in range(max(args.repeat, 3)):
            with_feed.append(ingest(True))
            without_feed.append(ingest(False))
        ingest(True)
        repeat = max(args.repeat, 5)
        quoted = sql.Literal(token).as_string(conn)
        change = conn.execute(MAP_FEED_CALL.format(token=quoted) + "::text").fetchone()[0]
        answer = json.loads(change)
        assert not answer["full"], answer["full_because"]
        full_ms = explain_ms(conn, MAP_FEED_CALL.format(token="NULL"), repeat)
        change_ms = explain_ms(conn, MAP_FEED_CALL.format(token=quoted), repeat)
    with_s, without_s = statistics.median(with_feed), statistics.median(without_feed)
    sent = len(answer["features"]) + len(answer["left"])
    return [
        (f"map feed, full answer: {full_features:,} features", "", f"{full_ms:.0f} ms",
         f"{len(full.encode()) / 1e6:.2f} MB"),
        (f"map feed, change answer after a 40-ticket run: {sent} sent", "", f"{change_ms:.1f} ms",
         f"{change_ms / full_ms:.1%} of the full time, {len(change.encode()) / 1e3:.1f} kB = "
         f"{len(change.encode()) / len(full.encode()):.2%} of its bytes; targets <= 10%, <= 1%"),
        ("that 40-ticket ingest, with the feed's triggers", "", f"{with_s:.2f} s",
         f"{with_s / without_s - 1:+.1%} against without (median of {len(with_feed)} each); target <= +5%"),
        ("that 40-ticket ingest, without them", "", f"{without_s:.2f} s", ""),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
