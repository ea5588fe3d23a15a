#!/usr/bin/env bash
# Train on several GPUs (or CPU processes) of one or more machines with
# torchrun, the arguments of mmdet's tools/dist_train.sh:
#
#   bash tools/dist_train.sh CONFIG GPUS [PY_ARGS]
#
# PY_ARGS go to tools/train.py (e.g. --work-dir DIR --amp --resume).
# Environment variables:
#   NNODES       number of machines                   (default: 1)
#   NODE_RANK    rank of this machine                 (default: 0)
#   PORT         rendezvous port on MASTER_ADDR       (default: 29500)
#   MASTER_ADDR  address of the rank-0 machine        (default: 127.0.0.1)
#   PYTHON       interpreter (e.g. .venv/bin/python)  (default: python on PATH)
# Without a visible CUDA GPU, tools/train.py runs the processes on the CPU
# with the gloo backend.
exec bash "$(dirname "$0")/dist_launch.sh" "$0" train "$@"
