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
exec bash "$(dirname "$0")/slurm_launch.sh" "$0" train "$@"
