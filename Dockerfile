# The fleettickets image: Coolify keeps it running and execs the two scheduled
# tasks into it (python -m inc.import_inc / crq.import_crq --from-bucket --apply).
FROM python:3.12-slim

ENV TZ=Africa/Nairobi \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 fleettickets
WORKDIR /app

COPY pyproject.toml README.md ./
COPY pipeline.py changefile.py bucket.py geocoding.py history.py settings.py run_migrations.py localstack.py run_ingest.sh ./
COPY inc/ inc/
COPY crq/ crq/
COPY migrations/ migrations/
# Editable, so `python -m …`, the console scripts and run_migrations.py all
# use /app, where migrations/ lives.
RUN pip install --no-compile -e .
USER fleettickets

# Scheduled tasks exec into the running container; nothing runs on its own.
CMD ["tail", "-f", "/dev/null"]
