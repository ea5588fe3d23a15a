#!/usr/bin/env bash
# What tools/slurm_train.sh and tools/slurm_test.sh run: tools/train.py or
# tools/test.py as a Slurm job, one task per GPU.
#
#   bash tools/slurm_launch.sh WRAPPER train PARTITION JOB_NAME CONFIG \
#       WORK_DIR [PY_ARGS]
#   bash tools/slurm_launch.sh WRAPPER test PARTITION JOB_NAME CONFIG \
#       CHECKPOINT [PY_ARGS]
#
# WRAPPER is the calling script, named in the messages. The environment
# variables are documented in tools/slurm_train.sh.
WRAPPER=$1
MODE=$2
shift 2
case "$MODE" in
  train) LAST=WORK_DIR ;;
  test) LAST=CHECKPOINT ;;
  *) echo "$0: the mode is train or test, not '$MODE'" >&2; exit 2 ;;
esac
if [ $# -lt 4 ]; then
  echo "usage: bash $WRAPPER PARTITION JOB_NAME CONFIG $LAST [PY_ARGS]" >&2
  exit 2
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
for NAME in GPUS GPUS_PER_NODE CPUS_PER_TASK; do
  VALUE=${!NAME}
  if ! [[ "$VALUE" =~ ^[0-9]+$ ]] || [ "$((10#$VALUE))" -lt 1 ]; then
    echo "bash $WRAPPER: $NAME must be a whole number >= 1, got '$VALUE'" >&2
    exit 2
  fi
done
if ! command -v srun >/dev/null 2>&1; then
  echo "$WRAPPER: 'srun' not found: this script submits to a Slurm cluster;" \
       "on one machine use tools/dist_$MODE.sh" >&2
  exit 1
fi
PARTITION=$1
JOB_NAME=$2
# tools/train.py CONFIG --work-dir=WORK_DIR, tools/test.py CONFIG CHECKPOINT
if [ "$MODE" = train ]; then
  PY_ARGS=("$3" "--work-dir=$4")
else
  PY_ARGS=("$3" "$4")
fi
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
    "$PYTHON" -u "$(dirname "$0")/$MODE.py" "${PY_ARGS[@]}" \
    --launcher=slurm "${@:5}"
