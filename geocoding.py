"""Placing tickets on the map: cluster and location gazetteers from a Nominatim-compatible geocoder.

LocationIQ in production (`/v1/search`, free-text `q`, `countrycodes=ke`); a
self-hosted Nominatim works by changing GEOCODER_URL. Geocoding is
cross-dataset: one gazetteer and one daily budget over INC ∪ CRQ. Every result
is committed as it arrives, so a run that fails later keeps what it paid for.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

import settings
from settings import ConfigError, FleetError

DEFAULT_URL = "https://us1.locationiq.com/v1/search"
# LocationIQ's free plan allows 5,000 requests a day; keep a margin for
# lookups people make by hand with the same key.
DEFAULT_DAILY_BUDGET = 4500
# The free plan allows 2/s but also only 60/min: 1/s stays under both.
DEFAULT_RPS = 1.0
DEFAULT_TIMEOUT_S = 10.0
# A geocoded street more than this far from its cluster's centroid is a
# street of the same name in another town.
WRONG_TOWN_KM = 25
# Tries per query; each one is a request and counts against the budget.
ATTEMPTS = 4
# LocationIQ's 429s carry no Retry-After: a per-second window clears at once,
# a per-minute window only after a full minute.
SECOND_WINDOW_WAIT_S = 2.0
MINUTE_WINDOW_WAIT_S = 61.0
SERVER_ERROR_WAITS_S = (2.0, 10.0, 30.0)
GEOCODE_LOCK = 3

sleep: Callable[[float], None] = time.sleep  # tests make waits instant and record them


class KeyRejected(FleetError):
    """The provider refused the API key (401/403): nothing will work until it is fixed."""


class _BudgetSpent(Exception):
    """Today's request budget is used up: stop asking, which is normal operation."""


class _LookupFailed(Exception):
    """A query failed even after its retries (timeouts, 5xx): cache it as an error, go on."""


@dataclass(frozen=True)
class GeocoderSettings:
    url: str
    api_key: str
    daily_budget: int
    rps: float
    timeout_s: float

    @classmethod
    def from_env(cls, *, need_key: bool) -> GeocoderSettings:
        def number(name: str, default: float, kind: type) -> float:
            text = os.environ.get(name, "").strip()
            try:
                value = kind(text) if text else default
            except ValueError:
                raise ConfigError(f"{name}={text!r} is not a number, e.g. {name}={default}") from None
            if value <= 0:
                raise ConfigError(f"{name} must be above zero, e.g. {name}={default}")
            return value

        key = (settings.require("GEOCODER_API_KEY", "the LocationIQ API key (geocoding only; the ingest never "
                                "needs it)") if need_key else os.environ.get("GEOCODER_API_KEY", ""))
        return cls(
            url=os.environ.get("GEOCODER_URL", "").strip() or DEFAULT_URL,
            api_key=key,
            daily_budget=int(number("GEOCODER_DAILY_BUDGET", DEFAULT_DAILY_BUDGET, int)),
            rps=number("GEOCODER_RPS", DEFAULT_RPS, float),
            timeout_s=number("GEOCODER_TIMEOUT", DEFAULT_TIMEOUT_S, float),
        )

    @property
    def provider(self) -> str:
        return urlsplit(self.url).netloc or self.url


@dataclass(frozen=True)
class Found:
    lat: float
    lon: float
    osm_type: str | None
    osm_id: int | None
    display_name: str | None


class Budget:
    """The shared daily request budget, counted in the database per provider day (UTC)."""

    def __init__(self, conn: psycopg.Connection, provider: str, limit: int) -> None:
        self.conn = conn
        self.provider = provider
        self.limit = limit

    def used(self) -> int:
        row = self.conn.execute("""SELECT requests, exhausted FROM tickets.geocode_budget
                                   WHERE provider_day = (now() AT TIME ZONE 'UTC')::date AND provider = %s""",
                                (self.provider,)).fetchone()
        if not row:
            return 0
        return self.limit if row[1] else row[0]

    def left(self) -> int:
        return max(self.limit - self.used(), 0)

    def take(self) -> bool:
        """Take one request from today's budget; False when there is none left."""
        row = self.conn.execute("""
            INSERT INTO tickets.geocode_budget AS b (provider_day, provider, requests)
            VALUES ((now() AT TIME ZONE 'UTC')::date, %(provider)s, 1)
            ON CONFLICT (provider_day, provider) DO UPDATE SET requests = b.requests + 1
                WHERE b.requests < %(limit)s AND NOT b.exhausted
            RETURNING requests""", {"provider": self.provider, "limit": self.limit}).fetchone()
        return row is not None and row[0] <= self.limit

    def mark_exhausted(self) -> None:
        self.conn.execute("""
            INSERT INTO tickets.geocode_budget (provider_day, provider, exhausted)
            VALUES ((now() AT TIME ZONE 'UTC')::date, %s, true)
            ON CONFLICT (provider_day, provider) DO UPDATE SET exhausted = true""", (self.provider,))


class Geocoder:
    """Forward search with the provider's rules: rate limit, retries, budget, and no key in any message."""

    def __init__(self, config: GeocoderSettings, budget: Budget, client: httpx.Client) -> None:
        self.config = config
        self.budget = budget
        self.client = client
        self.requests = 0
        self._next_slot = 0.0

    def _describe(self, query: str) -> str:
        return f"{self.config.provider} for {query!r}"

    def _send(self, query: str) -> httpx.Response:
        if not self.budget.take():
            raise _BudgetSpent
        wait = self._next_slot - time.monotonic()
        if wait > 0:
            sleep(wait)
        self._next_slot = time.monotonic() + 1 / self.config.rps
        self.requests += 1
        return self.client.get(self.config.url, params={
            "key": self.config.api_key, "q": query, "format": "json", "countrycodes": "ke", "limit": 1,
        })

    def search(self, query: str) -> Found | None:
        """The best match, or None when the provider has nothing for `query`."""
        problem = ""
        for attempt in range(ATTEMPTS):
            try:
                response = self._send(query)
            except httpx.TimeoutException:
                problem = f"no answer within {self.config.timeout_s:g} s"
                sleep(_backoff(attempt))
                continue
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__})"
                sleep(_backoff(attempt))
                continue
            status = response.status_code
            if status == 200:
                return _first_match(response)
            if status == 404:
                return None  # LocationIQ's "Unable to geocode"
            if status in (401, 403):
                raise KeyRejected(f"{self.config.provider} rejected the API key (HTTP {status}): "
                                  "check GEOCODER_API_KEY; nothing more will be asked")
            if status == 429:
                if "day" in _error_text(response).lower():
                    self.budget.mark_exhausted()
                    raise _BudgetSpent
                minute = "minute" in _error_text(response).lower()
                problem = f"rate limited ({_error_text(response) or 'HTTP 429'})"
                sleep(MINUTE_WINDOW_WAIT_S if minute else SECOND_WINDOW_WAIT_S)
                continue
            if status >= 500:
                problem = f"server error HTTP {status}"
                sleep(_backoff(attempt))
                continue
            raise _LookupFailed(f"{self._describe(query)}: HTTP {status} {_error_text(response)}".strip())
        raise _LookupFailed(f"{self._describe(query)}: {problem} after {ATTEMPTS} attempts")


def _backoff(attempt: int) -> float:
    return SERVER_ERROR_WAITS_S[min(attempt, len(SERVER_ERROR_WAITS_S) - 1)]


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _first_match(response: httpx.Response) -> Found | None:
    try:
        matches = response.json()
        if not matches:
            return None  # Nominatim's "nothing found"
        best = matches[0]
        osm_id = best.get("osm_id")
        return Found(float(best["lat"]), float(best["lon"]), best.get("osm_type"),
                     int(osm_id) if osm_id not in (None, "") else None, best.get("display_name"))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise _LookupFailed("the geocoder answered 200 with a body that is not a search result") from None


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
FROM (SELECT ST_DistanceSphere(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), c.geom) / 1000 AS km
      FROM (SELECT 1) AS one
      LEFT JOIN tickets.geo_clusters AS c ON c.cluster = %(cluster)s AND c.status = 'ok') AS d
ON CONFLICT (location_key, cluster) DO UPDATE
    SET lat = excluded.lat, lon = excluded.lon, status = excluded.status, source = excluded.source,
        query = excluded.query, osm_type = excluded.osm_type, osm_id = excluded.osm_id,
        display_name = excluded.display_name, distance_km = excluded.distance_km,
        attempts = g.attempts + 1, updated_at = now()
RETURNING status, round(distance_km::numeric, 1)
"""


def cluster_query(cluster: str, region: str | None) -> str:
    return ", ".join(part for part in (cluster, (region or "").title(), "Kenya") if part)


def location_query(place: str, cluster: str) -> str:
    return f"{place}, {cluster}, Kenya"


@dataclass
class Tally:
    """What a geocoding run did, for its closing line."""

    hits: int = 0
    misses: int = 0
    rejected: int = 0
    errors: int = 0
    skipped: int = 0
    undone: int = 0
    messages: list[str] = field(default_factory=list)


class GeocodeRun:
    """One --geocode-clusters or --geocode-locations run."""

    def __init__(self, conn: psycopg.Connection, config: GeocoderSettings, *, apply: bool,
                 say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.conn = conn
        self.config = config
        self.apply = apply
        self.say = say
        self.warn = warn
        self.budget = Budget(conn, config.provider, config.daily_budget)
        self.tally = Tally()
        self.geocoder: Geocoder | None = None

    @contextmanager
    def session(self) -> Iterator[None]:
        with httpx.Client(timeout=self.config.timeout_s, follow_redirects=False) as client:
            self.geocoder = Geocoder(self.config, self.budget, client)
            yield

    def _ask(self, query: str) -> Found | None:
        """The match or None (not found); a failed lookup is counted and reported, then re-raised."""
        try:
            return self.geocoder.search(query)
        except _LookupFailed as failure:
            self.tally.errors += 1
            self.warn(settings.redact(str(failure)))
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
            except _LookupFailed:
                self._save(SAVE_CLUSTER, {"cluster": cluster, "status": "error", "query": query}, None)
                continue
            except _BudgetSpent:
                self.tally.undone += len(todo) - index
                return False
            self._save(SAVE_CLUSTER, {"cluster": cluster, "status": "ok" if found else "not_found",
                                      "query": query}, found)
            if found:
                self.tally.hits += 1
                self.say(f"cluster {cluster}: {found.lat:.5f}, {found.lon:.5f} ({found.display_name})")
            else:
                self.tally.misses += 1
                self.say(f"cluster {cluster}: not found for {query!r}")
        return True

    def locations(self) -> None:
        todo = self.conn.execute(LOCATIONS_TO_GEOCODE).fetchall()
        without_centroid = sorted({cluster for _key, cluster, _place in todo if cluster} - self._centroids())
        if without_centroid and not self.clusters(only=without_centroid):
            self.tally.undone += len(todo)
            return
        centroids = self._centroids()
        if not self.apply:
            self._would_ask([location_query(p, c) for _k, c, p in todo if c], "locations")
            return
        for index, (location_key, cluster, place) in enumerate(todo):
            if not cluster or cluster not in centroids:
                self.tally.skipped += 1  # nothing to check a street against: the cluster point will do
                continue
            query = location_query(place, cluster)
            params = {"location_key": location_key, "cluster": cluster, "query": query, "limit_km": WRONG_TOWN_KM}
            try:
                found = self._ask(query)
            except _LookupFailed:
                self._save(SAVE_LOCATION, {**params, "status": "error"}, None)
                continue
            except _BudgetSpent:
                self.tally.undone += len(todo) - index
                return
            status, km = self._save(SAVE_LOCATION, {**params, "status": "ok" if found else "not_found"}, found)
            if status == "ok":
                self.tally.hits += 1
            elif status == "rejected":
                self.tally.rejected += 1
                self.say(f"rejected {query!r}: {km} km from the {cluster} centroid (a street of that name "
                         "elsewhere); the ticket keeps the cluster point")
            else:
                self.tally.misses += 1

    def _centroids(self) -> set[str]:
        return {c for (c,) in self.conn.execute("SELECT cluster FROM tickets.geo_clusters WHERE status = 'ok'")}

    def _save(self, statement: str, params: dict, found: Found | None) -> tuple:
        values = {"lat": None, "lon": None, "osm_type": None, "osm_id": None, "display_name": None,
                  "source": "geocoder", **params}
        if found:
            values.update(lat=found.lat, lon=found.lon, osm_type=found.osm_type, osm_id=found.osm_id,
                          display_name=found.display_name)
        cursor = self.conn.execute(statement, values)  # autocommit: paid-for work is kept at once
        return cursor.fetchone() if cursor.description else ()

    def _would_ask(self, queries: list[str], what: str) -> None:
        self.say(f"dry run: would ask {len(queries)} {what} (budget left today: {self.budget.left()}); "
                 "nothing asked, nothing written")
        for query in queries[:20]:
            self.say(f"  would ask {query!r}")
        if len(queries) > 20:
            self.say(f"  … and {len(queries) - 20} more")

    def finish(self) -> int:
        moved = self.conn.execute("SELECT tickets.resolve_ticket_geoms()").fetchone()[0] if self.apply else 0
        requests = self.geocoder.requests if self.geocoder else 0
        tally = self.tally
        if self.apply:
            self.say(f"geocoding done: {requests} requests, {tally.hits} found, {tally.misses} not found, "
                     f"{tally.rejected} rejected (wrong town), {tally.errors} errors, {tally.skipped} skipped; "
                     f"{moved} tickets moved; budget left today: {self.budget.left()}")
        if tally.undone:
            self.say(f"daily budget spent: {tally.undone} left for the next provider day (00:00 UTC); "
                     "this is normal, not a failure")
        return 1 if tally.errors else 0


def _run(apply: bool, work: Callable[[GeocodeRun], None], say: Callable[[str], None],
         warn: Callable[[str], None]) -> int:
    config = GeocoderSettings.from_env(need_key=apply)
    with settings.connect() as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (settings.LOCK_NAMESPACE, GEOCODE_LOCK)
                            ).fetchone()[0]:
            say("another geocoding run holds the lock; nothing to do")
            return 0
        run = GeocodeRun(conn, config, apply=apply, say=say, warn=warn)
        with run.session():
            work(run)
        return run.finish()


def geocode_clusters(apply: bool, say: Callable[[str], None], warn: Callable[[str], None]) -> int:
    return _run(apply, lambda run: run.clusters(), say, warn)


def geocode_locations(apply: bool, say: Callable[[str], None], warn: Callable[[str], None]) -> int:
    return _run(apply, lambda run: run.locations(), say, warn)


def load_gazetteer(path: Path, apply: bool, say: Callable[[str], None]) -> int:
    """Fill geo_clusters from a CSV of known centroids (cluster,lat,lon) without asking anyone."""
    rows = read_gazetteer(path)
    if not apply:
        say(f"dry run: would load {len(rows)} cluster centroids from {path}; nothing written")
        return 0
    with settings.connect() as conn, conn.transaction():
        changed = sum(conn.execute(LOAD_SEED, {"cluster": cluster, "lat": lat, "lon": lon}).rowcount
                      for cluster, lat, lon in rows)
        moved = conn.execute("SELECT tickets.resolve_ticket_geoms()").fetchone()[0]
    say(f"gazetteer: {len(rows)} cluster centroids in {path}, {changed} new or changed, {moved} tickets placed")
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
