#!/usr/bin/env bash
# Both imports, INC then CRQ, for a plain host or VM (Coolify uses the image's
# scheduled tasks instead). Crontab, in EAT:
#   CRON_TZ=Africa/Nairobi
#   */20 6-20 * * * /opt/fleettickets/run_ingest.sh >> /var/log/fleettickets.log 2>&1
# Loads .env beside this script if present (FLEETTICKETS_ENV_FILE names
# another), literally: KEY=VALUE lines, # comments, optional quotes around the
# value, nothing expanded or executed — as Coolify reads the same file. Never
# runs two copies at once (a lock in FLEETTICKETS_LOCK_DIR, default
# $XDG_RUNTIME_DIR, else /run/lock, else ~/.cache: places other users cannot
# write); exits non-zero when either import fails (CRQ still runs after an
# INC failure).
set -uo pipefail
cd "$(dirname "$0")" || { echo "run_ingest.sh: cannot enter $(dirname "$0")" >&2; exit 1; }

load_env_file() {
    local file=$1 line key value number=0
    while IFS= read -r line || [ -n "$line" ]; do
        number=$((number + 1))
        line=${line%$'\r'}
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ ! $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
            echo "run_ingest.sh: $file line $number is not KEY=VALUE; ignored" >&2
            continue
        fi
        key=${BASH_REMATCH[2]}
        value=${BASH_REMATCH[3]}
        if [[ $value =~ ^\"(.*)\"[[:space:]]*$ || $value =~ ^\'(.*)\'[[:space:]]*$ ]]; then
            value=${BASH_REMATCH[1]}
        fi
        export "$key=$value"
    done < "$file"
}

env_file=${FLEETTICKETS_ENV_FILE:-.env}
if [ -f "$env_file" ]; then
    load_env_file "$env_file"
fi
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

lock_dir=${FLEETTICKETS_LOCK_DIR:-}
if [ -z "$lock_dir" ]; then
    for candidate in "${XDG_RUNTIME_DIR:-}" /run/lock "$HOME/.cache"; do
        if [ -n "$candidate" ] && [ -d "$candidate" ] && [ -w "$candidate" ]; then
            lock_dir=$candidate
            break
        fi
    done
fi
if [ -z "$lock_dir" ] || ! exec 9>"$lock_dir/fleettickets-run_ingest.lock"; then
    echo "run_ingest.sh: cannot create a lock file in '${lock_dir:-(none found)}': set FLEETTICKETS_LOCK_DIR" >&2
    exit 1
fi
if ! flock -n 9; then
    echo "run_ingest.sh: another copy is running; nothing to do"
    exit 0
fi

status=0
"$PYTHON" -m inc.import_inc --from-bucket --apply || status=1
"$PYTHON" -m crq.import_crq --from-bucket --apply || status=1
exit $status
