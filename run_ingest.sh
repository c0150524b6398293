#!/usr/bin/env bash
# Both imports, INC then CRQ, for a plain host or VM (Coolify uses the image's
# scheduled tasks instead). Crontab, in EAT:
#   CRON_TZ=Africa/Nairobi
#   */20 6-20 * * * /opt/fleettickets/run_ingest.sh >> /var/log/fleettickets.log 2>&1
# Loads .env beside this script if present (FLEETTICKETS_ENV_FILE names
# another); never runs two copies at once (FLEETTICKETS_LOCK_FILE, default
# /tmp/fleettickets-run_ingest.lock); exits non-zero when either import fails
# (CRQ still runs after an INC failure).
set -uo pipefail
cd "$(dirname "$0")"

env_file=${FLEETTICKETS_ENV_FILE:-.env}
if [ -f "$env_file" ]; then
    set -a; . "$env_file"; set +a
fi
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

exec 9>"${FLEETTICKETS_LOCK_FILE:-/tmp/fleettickets-run_ingest.lock}"
if ! flock -n 9; then
    echo "run_ingest.sh: another copy is running; nothing to do"
    exit 0
fi

status=0
"$PYTHON" -m inc.import_inc --from-bucket --apply || status=1
"$PYTHON" -m crq.import_crq --from-bucket --apply || status=1
exit $status
