# The fleettickets image: Coolify keeps it running and execs the two scheduled
# tasks into it (python -m inc.import_inc / crq.import_crq --from-bucket --apply).
# The base is pinned to an exact tag: the original system's Python (3.12), at
# the patch release CI tests on. To refresh it, pick a newer
# python:3.12.x-slim-bookworm tag, rebuild and run the tests on that Python
# (docs/deployment-and-operations.md, "Upgrading dependencies").
FROM python:3.12.1-slim-bookworm

ENV TZ=Africa/Nairobi \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN useradd --create-home --uid 10001 fleettickets
WORKDIR /app

# Exactly the versions CI tested, each checked against its hash.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

# The engine's package and its entrypoints, run from /app, where migrations/
# lives, as `python -m …` and `python run_migrations.py`.
COPY fleettickets/ fleettickets/
COPY inc/ inc/
COPY crq/ crq/
COPY migrations/ migrations/
COPY run_migrations.py run_ingest.sh ./
# Bytecode compiled once, at build, by the Python that runs it: with PYTHONDONTWRITEBYTECODE (and /app not the
# runtime user's to write) every run would compile the package again, ~0.2 s of a ~1 s run that finds nothing new.
RUN python -m compileall -q fleettickets inc crq
USER fleettickets

# Scheduled tasks exec into the running container; nothing runs on its own.
CMD ["tail", "-f", "/dev/null"]
