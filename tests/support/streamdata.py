"""Building change files and running the entrypoints, for the tests."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

from support.stack import SAMPLES

EAT = dt.timezone(dt.timedelta(hours=3))

ROOT = Path(__file__).resolve().parents[2]
HEADER = ("ticket_id,raw_status,normalized_status,bucket,is_actionable,cluster,region,location_name,assigned_team,"
          "owner,sla_status,mttr,created_at_service,scheduled_at,closed_at,first_seen_at,last_seen_at,"
          "source_created_at,source_updated_at,latitude,longitude,service_type,is_alarm,is_auto_created,"
          "is_auto_closed,week_start,week_end,source_s3_bucket,source_s3_key,source_snapshot_id,department,"
          "source_type")


def sample_files(dataset: str) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((SAMPLES / dataset / "changes").glob("*.csv"))]


def ticket_row(ticket_id: str, updated: str, *, status: str = "In Progress", region: str = " Nairobi ",
               alarm: str = "false", cluster: str = "Kilimani") -> str:
    return (f"{ticket_id},{status},in_progress,open,true,{cluster},{region},\"Yaya Court, Lenana Rd ODB 4\","
            f"FieldOps,,,,2026-11-20 04:00:00,,,2026-11-20 05:00:00,2026-11-20 06:00:00,2026-11-20 04:00:00,"
            f"{updated},,,FTTH,{alarm},false,false,2026-11-16,2026-11-22,tickets,k,uuid,NOC,INC")


def change_file(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def changes(dataset: str, stamp: str) -> str:
    return f"automations/{dataset}/changes/{stamp}.csv"


def run_subprocess(module: str, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if fault:
        env["FLEETTICKETS_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)




COLUMNS = HEADER.split(",")


def ticket_fields(ticket_id: str, updated: str = "2026-11-20 06:10:00", **overrides: str) -> dict[str, str]:
    """All 32 columns of one ticket version, as the export writes them."""
    line = ticket_row(ticket_id, updated)
    fields = dict(zip(COLUMNS, next(csv.reader([line])), strict=True))
    fields.update(overrides)
    return fields


def csv_text(rows: list[dict[str, str]], columns: list[str] = COLUMNS, newline: str = "\n") -> str:
    """A change file with exactly these columns, in this order, RFC 4180 quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return buffer.getvalue()


def stamp_ago(minutes: float = 0) -> str:
    """A change file's stamp this many minutes before now, in EAT (fresh enough for --check when small)."""
    return (dt.datetime.now(EAT) - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H-%M-%S")


def closed_port() -> int:
    """A loopback port nothing listens on: a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
