"""python -m inc.import_inc: drain INC change files into tickets.inc; geocoding and history actions live here too."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fleettickets import cli, edge, history
from fleettickets.dataset import Dataset
from fleettickets.log import Log

DATASET = Dataset.standard("inc", post_apply=history.capture)

# Geocoding is cross-dataset (one gazetteer and one budget over INC ∪ CRQ) and
# runs from here; its lines are prefixed 'geocode'. It is imported on use: the
# 20-minute ingest never needs httpx.
_geocode_log = Log("geocode")


def _geocode_clusters(args: argparse.Namespace) -> int:
    from fleettickets import geocoding
    return geocoding.geocode_clusters(args.apply, _geocode_log)


def _geocode_locations(args: argparse.Namespace) -> int:
    from fleettickets import geocoding
    return geocoding.geocode_locations(args.apply, _geocode_log)


def _load_gazetteer(args: argparse.Namespace) -> int:
    from fleettickets import geocoding
    return geocoding.load_gazetteer(args.load_gazetteer, args.apply, _geocode_log)


COMMANDS = (
    edge.Command("--geocode-clusters",
                "geocode every cluster of either dataset that has no usable centroid (needs GEOCODER_API_KEY with "
                "--apply)", _geocode_clusters, log_name="geocode"),
    edge.Command("--geocode-locations",
                "geocode the locations of open, actionable tickets without a feed coordinate or a cached result",
                _geocode_locations, log_name="geocode"),
    history.capture_command(DATASET),
    edge.Command("--load-gazetteer",
                "fill the cluster gazetteer from a CSV of known centroids (cluster,lat,lon), asking no geocoder",
                _load_gazetteer, log_name="geocode", metavar="FILE"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(DATASET, argv, COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
