#!/usr/bin/env bash
# Test (evaluate) a checkpoint on several GPUs (or CPU processes) with
# torchrun, the arguments of mmdet's tools/dist_test.sh:
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [PY_ARGS]
#
# PY_ARGS go to tools/test.py (e.g. --work-dir DIR --cfg-options ...).
# Environment variables: NNODES, NODE_RANK, PORT, MASTER_ADDR and PYTHON,
# as in tools/dist_train.sh.
if [ $# -lt 3 ]; then
  echo "usage: bash $0 CONFIG CHECKPOINT GPUS [PY_ARGS]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}"
