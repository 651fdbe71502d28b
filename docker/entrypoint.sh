#!/usr/bin/env bash
# Entrypoint of the satsr trainer image.
#
#   (no arguments)             dvc repro                       the whole pipeline
#   dvc ARGS...                dvc ARGS...                     e.g. dvc repro finetune@edsr, dvc exp run -S ...
#   satsr ARGS...              satsr ARGS...                   any satsr subcommand
#   SUBCOMMAND ARGS...         satsr SUBCOMMAND ARGS...        shorthand: train edsr, tune rdn, params ...
#   gpu-check [ARGS...]        python docker/gpu_check.py      list GPUs + one training step on the GPU
#   bash | sh | python | pytest | make | mlflow | optuna | git | nvidia-smi ...   run as given
#
# Before that: an empty Earth Engine key secret (the compose default when EE_KEY_FILE is unset)
# unsets EE_SERVICE_ACCOUNT_KEY_FILE, so the gee provider reports "no credentials" instead of
# failing on an empty file; the key's contents are never printed.
set -euo pipefail

WORKSPACE="${SATSR_WORKSPACE:-/workspace}"

if [[ -n "${EE_SERVICE_ACCOUNT_KEY_FILE:-}" && ! -s "${EE_SERVICE_ACCOUNT_KEY_FILE}" ]]; then
    unset EE_SERVICE_ACCOUNT_KEY_FILE
fi

if [[ $# -eq 0 ]]; then
    set -- dvc repro
fi

case "$1" in
    dvc)
        if [[ ! -e "${WORKSPACE}/.git" ]]; then
            echo "satsr-entrypoint: ${WORKSPACE} is not a git checkout; DVC needs one." \
                 "Mount the repository (compose does: ..:/workspace)." >&2
        fi
        ;;
    satsr | bash | sh | python | python3 | pytest | make | mlflow | optuna | git | nvidia-smi | uv | env)
        ;;
    gpu-check)
        shift
        set -- python "${WORKSPACE}/docker/gpu_check.py" "$@"
        ;;
    -*)
        set -- satsr "$@"
        ;;
    *)
        if command -v -- "$1" >/dev/null 2>&1 && [[ "$1" == */* ]]; then
            :  # an explicit path to a program
        else
            set -- satsr "$@"
        fi
        ;;
esac

exec "$@"
