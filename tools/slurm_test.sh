#!/usr/bin/env bash
# Test (evaluate) a checkpoint on a Slurm cluster, the arguments of mmdet's
# tools/slurm_test.sh:
#
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS]
#
# PY_ARGS go to tools/test.py. Environment variables: GPUS, GPUS_PER_NODE,
# CPUS_PER_TASK, SRUN_ARGS and PYTHON, as in tools/slurm_train.sh.
exec bash "$(dirname "$0")/slurm_launch.sh" "$0" test "$@"
