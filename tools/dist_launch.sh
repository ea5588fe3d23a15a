#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh run: tools/train.py or
# tools/test.py in GPUS processes per machine with torchrun.
#
#   bash tools/dist_launch.sh WRAPPER train CONFIG GPUS [PY_ARGS]
#   bash tools/dist_launch.sh WRAPPER test CONFIG CHECKPOINT GPUS [PY_ARGS]
#
# WRAPPER is the calling script, named in the usage message. The
# environment variables are documented in tools/dist_train.sh.
WRAPPER=$1
MODE=$2
shift 2
case "$MODE" in
  train) USAGE="CONFIG GPUS [PY_ARGS]"; NUM_ARGS=2 ;;
  test) USAGE="CONFIG CHECKPOINT GPUS [PY_ARGS]"; NUM_ARGS=3 ;;
  *) echo "$0: the mode is train or test, not '$MODE'" >&2; exit 2 ;;
esac
# NUM_ARGS positional arguments: those of tools/$MODE.py, then GPUS
if [ $# -lt $NUM_ARGS ]; then
  echo "usage: bash $WRAPPER $USAGE" >&2
  exit 2
fi
GPUS=${!NUM_ARGS}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
# positive integers, checked here rather than deep inside torchrun
positive() {  # NAME VALUE
  if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$((10#$2))" -lt 1 ]; then
    echo "bash $WRAPPER: $1 must be a whole number >= 1, got '$2'" \
      "(usage: bash $WRAPPER $USAGE)" >&2
    exit 2
  fi
}
positive GPUS "$GPUS"
positive NNODES "$NNODES"
positive PORT "$PORT"
if ! [[ "$NODE_RANK" =~ ^[0-9]+$ ]] || [ "$((10#$NODE_RANK))" -ge "$((10#$NNODES))" ]; then
  echo "bash $WRAPPER: NODE_RANK must be a whole number from 0 to NNODES - 1" \
    "($((10#$NNODES - 1))), got '$NODE_RANK'" >&2
  exit 2
fi
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

# the files named on the command line, checked before torchrun starts
# processes that would each fail on them
for ARG in "${@:1:NUM_ARGS-1}"; do
  if [[ "$ARG" != *://* ]] && [ ! -f "$ARG" ]; then
    echo "bash $WRAPPER: $ARG does not exist (usage: bash $WRAPPER $USAGE)" >&2
    exit 2
  fi
done

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/$MODE.py" \
    "${@:1:NUM_ARGS-1}" \
    --launcher pytorch \
    "${@:NUM_ARGS+1}"
