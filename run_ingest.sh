#!/usr/bin/env bash
# Both imports, INC then CRQ, for a plain host or VM (Coolify uses the image's
# scheduled tasks instead). Crontab, in EAT:
#   CRON_TZ=Africa/Nairobi
#   */20 6-20 * * * /opt/fleettickets/run_ingest.sh >> /var/log/fleettickets.log 2>&1
# Loads .env beside this script if present (FLEETTICKETS_ENV_FILE names
# another), literally: KEY=VALUE lines, # comments, optional quotes around the
# value, nothing expanded or executed — as Coolify reads the same file — and
# only names in the settings registry (python -m fleettickets.settings
# --names): a line setting PYTHON, PATH, LD_PRELOAD or anything else is
# ignored with a warning. Never runs two copies at once: a lock in a
# directory owned by the user running it and writable by nobody else
# (FLEETTICKETS_LOCK_DIR, default $XDG_RUNTIME_DIR/fleettickets, else
# ~/.cache/fleettickets, created 0700), opened without truncating and never
# through a symlink. Exits non-zero when either import fails (CRQ still runs
# after an INC failure).
set -uo pipefail
cd "$(dirname "$0")" || { echo "run_ingest.sh: cannot enter $(dirname "$0")" >&2; exit 1; }

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if ! settings_names=$("$PYTHON" -m fleettickets.settings --names); then
    echo "run_ingest.sh: cannot read the settings registry with $PYTHON (set PYTHON to the project's python)" >&2
    exit 1
fi
declare -A known_setting=()
for name in $settings_names; do
    known_setting[$name]=1
done

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
        if [ -z "${known_setting[$key]:-}" ]; then
            echo "run_ingest.sh: $file line $number sets $key, which is not a fleettickets setting; ignored" >&2
            continue
        fi
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

lock_refused() {
    echo "run_ingest.sh: will not lock in '$1': $2; set FLEETTICKETS_LOCK_DIR to a directory only you can write" >&2
    exit 1
}

lock_dir=${FLEETTICKETS_LOCK_DIR:-}
if [ -z "$lock_dir" ]; then
    if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ]; then
        lock_dir=$XDG_RUNTIME_DIR/fleettickets
    else
        lock_dir=${HOME:?run_ingest.sh: HOME is unset; set FLEETTICKETS_LOCK_DIR}/.cache/fleettickets
    fi
    if [ ! -e "$lock_dir" ] && [ ! -L "$lock_dir" ]; then
        (umask 077 && mkdir -p "$lock_dir") || lock_refused "$lock_dir" "it cannot be created"
    fi
fi
[ -L "$lock_dir" ] && lock_refused "$lock_dir" "it is a symlink"
[ -d "$lock_dir" ] || lock_refused "$lock_dir" "it is not a directory"
[ -O "$lock_dir" ] || lock_refused "$lock_dir" "it belongs to another user"
[[ $(stat -c %A "$lock_dir") =~ ^d.{4}-.{2}-.$ ]] || lock_refused "$lock_dir" "other users may write in it"
lock_file=$lock_dir/fleettickets-run_ingest.lock
[ -L "$lock_file" ] && lock_refused "$lock_dir" "its lock file is a symlink"
if [ -e "$lock_file" ] && { [ ! -f "$lock_file" ] || [ ! -O "$lock_file" ]; }; then
    lock_refused "$lock_dir" "its lock file is not a plain file of yours"
fi
# <> opens read-write, creating the file if needed and never truncating it.
exec 9<>"$lock_file" || lock_refused "$lock_dir" "the lock file cannot be opened"
if ! flock -n 9; then
    echo "run_ingest.sh: another copy is running; nothing to do"
    exit 0
fi

status=0
"$PYTHON" -m inc.import_inc --from-bucket --apply || status=1
"$PYTHON" -m crq.import_crq --from-bucket --apply || status=1
exit $status
