#!/usr/bin/env bash
# Train on a Slurm cluster, the arguments of mmdet's tools/slurm_train.sh:
#
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [PY_ARGS]
#
# PY_ARGS go to tools/train.py. Environment variables:
#   GPUS           processes (one per GPU) in all  (default: 8)
#   GPUS_PER_NODE  GPUs per node                   (default: 8)
#   CPUS_PER_TASK  CPU cores per process           (default: 5)
#   SRUN_ARGS      extra srun arguments            (default: none)
#   PYTHON         interpreter on the nodes        (default: python on PATH)
if [ $# -lt 4 ]; then
  echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [PY_ARGS]" >&2
  exit 2
fi
if ! command -v srun >/dev/null 2>&1; then
  echo "$0: 'srun' not found: this script submits to a Slurm cluster;" \
       "on one machine use tools/dist_train.sh" >&2
  exit 1
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}

set -x
# SRUN_ARGS is split into words on purpose.
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$(dirname "$0")/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
