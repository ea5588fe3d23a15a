#!/usr/bin/env bash
# Test (evaluate) a checkpoint on several GPUs (or CPU processes) with
# torchrun, the arguments of mmdet's tools/dist_test.sh:
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [PY_ARGS]
#
# PY_ARGS go to tools/test.py (e.g. --work-dir DIR --cfg-options ...).
# Environment variables: NNODES, NODE_RANK, PORT, MASTER_ADDR and PYTHON,
# as in tools/dist_train.sh.
exec bash "$(dirname "$0")/dist_launch.sh" "$0" test "$@"
