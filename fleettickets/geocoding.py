"""Placing tickets on the map: the cluster and location gazetteers, filled from the geocoder or a seed file.

Cross-dataset: one gazetteer and one daily budget over INC ∪ CRQ. Every
result is committed as it arrives, so a run that fails later keeps what it
paid for; every run ends by re-placing the tickets (resolve_ticket_geoms()).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from fleettickets import database, locks
from fleettickets.errors import FleetError
from fleettickets.geocoder import Budget, BudgetSpent, Found, Geocoder, KeyRejected, LookupFailed, ProviderDown
from fleettickets.log import Log
from fleettickets.settings import GeocoderSettings, RunLimits

# A geocoded street more than this far from its cluster's centroid is a
# street of the same name in another town.
WRONG_TOWN_KM = 25

# -- what to ask ----------------------------------------------------------------

CLUSTERS_TO_GEOCODE = """
WITH seen AS (
    SELECT tickets.canonical_cluster(t.cluster) AS cluster, mode() WITHIN GROUP (ORDER BY t.region) AS region
    FROM (SELECT cluster, region FROM tickets.inc UNION ALL SELECT cluster, region FROM tickets.crq) AS t
    GROUP BY 1
)
SELECT s.cluster, s.region
FROM seen AS s LEFT JOIN tickets.geo_clusters AS g ON g.cluster = s.cluster
WHERE s.cluster IS NOT NULL
  AND (g.cluster IS NULL OR tickets.geocode_due(g.status, g.attempts, g.updated_at))
  AND (%(only)s::text[] IS NULL OR s.cluster = ANY(%(only)s))
ORDER BY s.cluster
"""

LOCATIONS_TO_GEOCODE = """
WITH wanted AS (
    SELECT tickets.location_key(t.location_name) AS location_key,
           tickets.canonical_cluster(t.cluster) AS cluster,
           min(tickets.strip_network_codes(t.location_name)) AS place
    FROM (SELECT location_name, cluster, raw FROM tickets.inc WHERE bucket = 'open' AND is_actionable
          UNION ALL
          SELECT location_name, cluster, raw FROM tickets.crq WHERE bucket = 'open' AND is_actionable) AS t
    WHERE NOT tickets.feed_ok(t.raw)
    GROUP BY 1, 2
)
SELECT w.location_key, w.cluster, w.place
FROM wanted AS w
LEFT JOIN tickets.geo_locations AS g ON g.location_key = w.location_key AND g.cluster = COALESCE(w.cluster, '')
WHERE w.location_key IS NOT NULL
  AND (g.location_key IS NULL OR tickets.geocode_due(g.status, g.attempts, g.updated_at))
ORDER BY w.cluster NULLS LAST, w.location_key
"""

SAVE_CLUSTER = """
INSERT INTO tickets.geo_clusters AS g (cluster, lat, lon, status, source, query, osm_type, osm_id, display_name)
VALUES (%(cluster)s, %(lat)s, %(lon)s, %(status)s, %(source)s, %(query)s, %(osm_type)s, %(osm_id)s, %(display_name)s)
ON CONFLICT (cluster) DO UPDATE
    SET lat = excluded.lat, lon = excluded.lon, status = excluded.status, source = excluded.source,
        query = excluded.query, osm_type = excluded.osm_type, osm_id = excluded.osm_id,
        display_name = excluded.display_name, attempts = g.attempts + 1, updated_at = now()
"""

# A known centroid from a seed file; loading the same file again changes nothing.
LOAD_SEED = """
INSERT INTO tickets.geo_clusters AS g (cluster, lat, lon, status, source)
VALUES (%(cluster)s, %(lat)s, %(lon)s, 'ok', 'seed')
ON CONFLICT (cluster) DO UPDATE
    SET lat = excluded.lat, lon = excluded.lon, status = 'ok', source = 'seed', updated_at = now()
    WHERE (g.lat, g.lon, g.status, g.source) IS DISTINCT FROM (excluded.lat, excluded.lon, 'ok', 'seed')
"""

# The wrong-town guard is applied here, in one statement with the save, so
# the stored status and distance always agree.
SAVE_LOCATION = """
INSERT INTO tickets.geo_locations AS g (location_key, cluster, lat, lon, status, source, query, osm_type, osm_id,
                                        display_name, distance_km)
SELECT %(location_key)s, %(cluster)s, %(lat)s, %(lon)s,
       CASE WHEN %(status)s <> 'ok' THEN %(status)s
            WHEN d.km IS NULL OR d.km > %(limit_km)s THEN 'rejected' ELSE 'ok' END,
       %(source)s, %(query)s, %(osm_type)s, %(osm_id)s, %(display_name)s, d.km
FROM (SELECT public.ST_DistanceSphere(public.ST_SetSRID(public.ST_MakePoint(%(lon)s::float8, %(lat)s::float8),
                                                    4326), c.geom) / 1000 AS km
      FROM (SELECT 1) AS one
      LEFT JOIN tickets.geo_clusters AS c ON c.cluster = %(cluster)s AND c.status = 'ok') AS d
ON CONFLICT (location_key, cluster) DO UPDATE
    SET lat = excluded.lat, lon = excluded.lon, status = excluded.status, source = excluded.source,
        query = excluded.query, osm_type = excluded.osm_type, osm_id = excluded.osm_id,
        display_name = excluded.display_name, distance_km = excluded.distance_km,
        attempts = g.attempts + 1, updated_at = now()
RETURNING status, round(distance_km::numeric, 1)
"""


CENTROIDS = "SELECT cluster FROM tickets.geo_clusters WHERE status = 'ok'"

RESOLVE_TICKET_GEOMS = "SELECT tickets.resolve_ticket_geoms()"


def _scalar(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def cluster_query(cluster: str, region: str | None) -> str:
    return ", ".join(part for part in (cluster, (region or "").title(), "Kenya") if part)


def location_query(place: str, cluster: str) -> str:
    return f"{place}, {cluster}, Kenya"


@dataclass
class GeocodeReport:
    """What a geocoding run did, for its closing line and exit code."""

    hits: int = 0
    misses: int = 0
    rejected: int = 0
    errors: int = 0
    skipped: int = 0
    undone: int = 0
    messages: list[str] = field(default_factory=list)


class GeocodeRun:
    """One --geocode-clusters or --geocode-locations run."""

    def __init__(self, conn: psycopg.Connection, config: GeocoderSettings, *, apply: bool, log: Log) -> None:
        self.conn = conn
        self.config = config
        self.apply = apply
        self.log = log
        self.budget = Budget(conn, config.provider, config.daily_budget)
        self.report = GeocodeReport()
        self.geocoder: Geocoder | None = None

    @contextmanager
    def session(self) -> Iterator[None]:
        with httpx.Client(timeout=self.config.timeout_s, follow_redirects=False) as client:
            self.geocoder = Geocoder(self.config, self.budget, client)
            yield

    def _ask(self, query: str) -> Found | None:
        """The match or None (not found); a failed lookup is counted and reported, then re-raised."""
        assert self.geocoder is not None, "ask inside session()"
        try:
            return self.geocoder.search(query)
        except LookupFailed as failure:
            self.report.errors += 1
            self.log.warn(str(failure))
            raise

    def clusters(self, only: list[str] | None = None) -> bool:
        """Geocode clusters without a usable centroid; False when the budget ran out."""
        todo = self.conn.execute(CLUSTERS_TO_GEOCODE, {"only": only}).fetchall()
        if not self.apply:
            self._would_ask([cluster_query(c, r) for c, r in todo], "clusters")
            return True
        for index, (cluster, region) in enumerate(todo):
            query = cluster_query(cluster, region)
            try:
                found = self._ask(query)
            except LookupFailed:
                self._save(SAVE_CLUSTER, {"cluster": cluster, "status": "error", "query": query}, None)
                continue
            except BudgetSpent:
                self.report.undone += len(todo) - index
                return False
            self._save(SAVE_CLUSTER, {"cluster": cluster, "status": "ok" if found else "not_found",
                                      "query": query}, found)
            if found:
                self.report.hits += 1
                self.log.info(f"cluster {cluster}: {found.lat:.5f}, {found.lon:.5f} ({found.display_name})")
            else:
                self.report.misses += 1
                self.log.info(f"cluster {cluster}: not found for {query!r}")
        return True

    def locations(self) -> None:
        todo = self.conn.execute(LOCATIONS_TO_GEOCODE).fetchall()
        without_centroid = sorted({cluster for _key, cluster, _place in todo if cluster} - self._centroids())
        if without_centroid and not self.clusters(only=without_centroid):
            self.report.undone += len(todo)
            return
        centroids = self._centroids()
        if not self.apply:
            self._would_ask([location_query(p, c) for _k, c, p in todo if c], "locations")
            return
        for index, (location_key, cluster, place) in enumerate(todo):
            if not cluster or cluster not in centroids:
                self.report.skipped += 1  # nothing to check a street against: the cluster point will do
                continue
            query = location_query(place, cluster)
            params = {"location_key": location_key, "cluster": cluster, "query": query, "limit_km": WRONG_TOWN_KM}
            try:
                found = self._ask(query)
            except LookupFailed:
                self._save(SAVE_LOCATION, {**params, "status": "error"}, None)
                continue
            except BudgetSpent:
                self.report.undone += len(todo) - index
                return
            status, km = self._save(SAVE_LOCATION, {**params, "status": "ok" if found else "not_found"}, found)
            if status == "ok":
                self.report.hits += 1
            elif status == "rejected":
                self.report.rejected += 1
                self.log.info(f"rejected {query!r}: {km} km from the {cluster} centroid (a street of that name "
                         "elsewhere); the ticket keeps the cluster point")
            else:
                self.report.misses += 1

    def _centroids(self) -> set[str]:
        return {c for (c,) in self.conn.execute(CENTROIDS)}

    def _save(self, statement: str, params: dict, found: Found | None) -> tuple:
        values = {"lat": None, "lon": None, "osm_type": None, "osm_id": None, "display_name": None,
                  "source": "geocoder", **params}
        if found:
            values.update(lat=found.lat, lon=found.lon, osm_type=found.osm_type, osm_id=found.osm_id,
                          display_name=found.display_name)
        cursor = self.conn.execute(statement, values)  # autocommit: paid-for work is kept at once
        return (cursor.fetchone() or ()) if cursor.description else ()

    def _would_ask(self, queries: list[str], what: str) -> None:
        self.log.info(f"dry run: would ask {len(queries)} {what} (budget left today: {self.budget.left()}); "
                 "nothing asked, nothing written")
        for query in queries[:20]:
            self.log.info(f"  would ask {query!r}")
        if len(queries) > 20:
            self.log.info(f"  … and {len(queries) - 20} more")

    def finish(self) -> int:
        moved = _scalar(self.conn, RESOLVE_TICKET_GEOMS) if self.apply else 0
        requests = self.geocoder.requests if self.geocoder else 0
        report = self.report
        if self.apply:
            self.log.info(f"geocoding done: {requests} requests, {report.hits} found, {report.misses} not found, "
                     f"{report.rejected} rejected (wrong town), {report.errors} errors, {report.skipped} skipped; "
                     f"{moved} tickets moved; budget left today: {self.budget.left()}")
        if report.undone:
            self.log.info(f"daily budget spent: {report.undone} left for the next provider day (00:00 UTC); "
                     "this is normal, not a failure")
        return 1 if report.errors else 0


def _run(apply: bool, work: Callable[[GeocodeRun], object], log: Log) -> int:
    """Lock, ask, and in every ending re-place the tickets with what was found; a stop is re-raised after that."""
    config = GeocoderSettings.from_env(need_key=apply)
    with database.connect(limits=RunLimits.from_env()) as conn:
        if not locks.try_lock(conn, "geocode"):
            stranger = locks.held_by_stranger(conn, "geocode")
            if stranger:
                log.error(locks.stranger_holds("geocode", stranger))
                return 1
            log.info("another geocoding run holds the lock; nothing to do")
            return 0
        run = GeocodeRun(conn, config, apply=apply, log=log)
        stopped: FleetError | None = None
        with run.session():
            try:
                work(run)
            except (KeyRejected, ProviderDown) as error:
                stopped = error
        code = run.finish()
        if stopped:
            raise stopped
        return code


def geocode_clusters(apply: bool, log: Log) -> int:
    return _run(apply, lambda run: run.clusters(), log)


def geocode_locations(apply: bool, log: Log) -> int:
    return _run(apply, lambda run: run.locations(), log)


def load_gazetteer(path: Path, apply: bool, log: Log) -> int:
    """Fill geo_clusters from a CSV of known centroids (cluster,lat,lon) without asking anyone."""
    rows = read_gazetteer(path)
    if not apply:
        log.info(f"dry run: would load {len(rows)} cluster centroids from {path}; nothing written")
        return 0
    with database.connect(limits=RunLimits.from_env()) as conn, conn.transaction():
        changed = sum(conn.execute(LOAD_SEED, {"cluster": cluster, "lat": lat, "lon": lon}).rowcount
                      for cluster, lat, lon in rows)
        moved = _scalar(conn, RESOLVE_TICKET_GEOMS)
    log.info(f"gazetteer: {len(rows)} cluster centroids in {path}, {changed} new or changed, {moved} tickets placed")
    return 0


def read_gazetteer(path: Path) -> list[tuple[str, float, float]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise FleetError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"cluster", "lat", "lon"} <= set(reader.fieldnames):
            raise FleetError(f"{path}: line 1: the header must name cluster,lat,lon")
        rows = []
        for record in reader:
            try:
                lat, lon = float(record["lat"]), float(record["lon"])
            except (TypeError, ValueError):
                raise FleetError(f"{path}: line {reader.line_num}: lat/lon must be decimal degrees") from None
            if not (record["cluster"] or "").strip() or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise FleetError(f"{path}: line {reader.line_num}: needs a cluster name and lat/lon in range")
            rows.append((record["cluster"].strip(), lat, lon))
    return rows
