#!/usr/bin/env bash
# Create an account on the stack's MLflow server (basic-auth app) as its admin. Run it from docker/
# on the tracking host once `docker compose up -d mlflow` is healthy:
#
#   ./mlflow-user.sh              the trainers' account: MLFLOW_TRACKING_USERNAME (default `trainer`)
#                                 with MLFLOW_TRACKING_PASSWORD, both from docker/.env
#   ./mlflow-user.sh NAME         another account (e.g. an analyst: READ on everything by default);
#                                 its password is asked for (or read from MLFLOW_NEW_USER_PASSWORD)
#
# The admin is MLFLOW_ADMIN_USERNAME (default `admin`) / MLFLOW_ADMIN_PASSWORD of docker/.env (asked
# for when unset). The server is MLFLOW_URL, default http://127.0.0.1:${MLFLOW_PORT:-5000}.
# Exit 0 when the account was created or already exists. No password is put on a command line
# (curl reads them from a pipe), echoed or logged.
set -euo pipefail

ENV_FILE="${SATSR_ENV_FILE:-$(dirname -- "$0")/.env}"

# A KEY=value of docker/.env (the environment wins), quotes around the value removed.
setting() {
    local key="$1" default="${2:-}" line value
    if [[ -n "${!key:-}" ]]; then
        printf '%s' "${!key}"
        return
    fi
    value="$default"
    if [[ -f "$ENV_FILE" ]]; then
        line="$(grep -E "^[[:space:]]*${key}=" "$ENV_FILE" | tail -n 1 || true)"
        if [[ -n "$line" ]]; then
            value="${line#*=}"
            value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
            [[ -z "$value" ]] && value="$default"
        fi
    fi
    printf '%s' "$value"
}

# JSON / curl-config string escaping (backslash and double quote).
quote() {
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}

ask() {  # ask PROMPT -> the answer on stdout, not echoed
    local answer
    read -rsp "$1" answer </dev/tty
    echo >/dev/tty
    printf '%s' "$answer"
}

url="$(setting MLFLOW_URL "http://127.0.0.1:$(setting MLFLOW_PORT 5000)")"
admin="$(setting MLFLOW_ADMIN_USERNAME admin)"
admin_pw="$(setting MLFLOW_ADMIN_PASSWORD)"
if [[ $# -ge 1 ]]; then
    user="$1"
    user_pw="${MLFLOW_NEW_USER_PASSWORD:-}"
    [[ -n "$user_pw" ]] || user_pw="$(ask "password for the new MLflow user ${user}: ")"
else
    user="$(setting MLFLOW_TRACKING_USERNAME trainer)"
    user_pw="$(setting MLFLOW_TRACKING_PASSWORD)"
    if [[ -z "$user_pw" ]]; then
        echo "mlflow-user: set MLFLOW_TRACKING_PASSWORD in ${ENV_FILE} (the trainers use it too)" >&2
        exit 2
    fi
fi
[[ -n "$admin_pw" ]] || admin_pw="$(ask "password of the MLflow admin ${admin}: ")"
if [[ -z "$user" || -z "$user_pw" ]]; then
    echo "mlflow-user: the user name and password must not be empty" >&2
    exit 2
fi

body="$(mktemp)"
trap 'rm -f "$body"' EXIT
status="$(curl --silent --show-error --output "$body" --write-out '%{http_code}' --max-time 60 \
    --config - --header 'Content-Type: application/json' \
    --data-binary @<(printf '{"username": %s, "password": %s}' "$(quote "$user")" "$(quote "$user_pw")") \
    "${url%/}/api/2.0/mlflow/users/create" \
    <<<"user = $(quote "${admin}:${admin_pw}")")" || {
    echo "mlflow-user: cannot reach ${url} (is \`docker compose up -d mlflow\` healthy?)" >&2
    exit 1
}
case "$status" in
    200) echo "mlflow-user: created ${user} on ${url}" ;;
    401) echo "mlflow-user: ${url} refused the admin ${admin}: wrong password?" >&2; exit 1 ;;
    403) echo "mlflow-user: ${admin} is not an admin of ${url}" >&2; exit 1 ;;
    *)
        if grep -q "RESOURCE_ALREADY_EXISTS\|already exists\|UNIQUE constraint\|duplicate key" "$body"; then
            echo "mlflow-user: ${user} already exists on ${url} (password unchanged)"
        else
            echo "mlflow-user: ${url} answered HTTP ${status}: $(head -c 300 "$body")" >&2
            exit 1
        fi
        ;;
esac
