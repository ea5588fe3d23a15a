#!/usr/bin/env bash
# Create the mmboat environment (.venv in the repository root) with the
# pinned OpenMMLab stack, building mmcv 2.1.0 with its compiled ops from the
# source distribution when no compatible wheel is cached.
#
#   bash tools/setup_env.sh
#
# Idempotent: a second run checks what is there and takes seconds.
# Environment variables:
#   MMBOAT_VENV        where the environment goes       (default: <repo>/.venv)
#   MMBOAT_CACHE       where built mmcv wheels are kept (default: ~/.cache/mmboat)
#   MMBOAT_PYTHON      the Python used to create it      (default: python3.11, else python3)
#   MAX_JOBS           parallel compile jobs for mmcv    (default: number of cores)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMBOAT_VENV:-$REPO/.venv}"
CACHE="${MMBOAT_CACHE:-$HOME/.cache/mmboat}"
MMCV_VERSION=2.1.0

step() { printf '\n[mmboat setup] %s\n' "$*"; }
die() { printf '\n[mmboat setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
step "checking prerequisites"
if [ -n "${MMBOAT_PYTHON:-}" ]; then PY="$MMBOAT_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then PY=python3.11
else PY=python3; fi
command -v "$PY" >/dev/null 2>&1 || die "no '$PY' found. Install Python 3.11 (or set MMBOAT_PYTHON to one)."
"$PY" - <<'EOF' || die "Python 3.11 is required (the pinned torch wheels are built for it). Set MMBOAT_PYTHON to a Python 3.11 interpreter."
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
EOF
"$PY" -c "import venv" 2>/dev/null || die "the Python 'venv' module is missing (Debian: apt-get install python3-venv)."
echo "  python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

# ---------------------------------------------------------------- environment
if [ ! -x "$VENV/bin/python" ]; then
  step "creating the virtual environment at $VENV"
  "$PY" -m venv "$VENV"
else
  step "using the existing virtual environment at $VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install --disable-pip-version-check)
CHANGED=0

# ---------------------------------------------------------------- torch
if "$VPY" - <<'EOF' 2>/dev/null
import torch, torchvision, sys
sys.exit(0 if (torch.__version__.split('+')[0], torchvision.__version__.split('+')[0]) == ('2.14.1', '0.29.1') else 1)
EOF
then
  step "torch 2.14.1 / torchvision 0.29.1 already installed"
else
  step "installing torch 2.14.1 + torchvision 0.29.1 (several GB; about 1-2 min from a local wheel cache)"
  CHANGED=1
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi

# ---------------------------------------------------------------- mmcv
mmcv_ok() {
  "$VPY" - <<'EOF' 2>/dev/null
import sys
import mmcv
from mmcv.ops import nms  # compiled ops must import
sys.exit(0 if mmcv.__version__ == '2.1.0' else 1)
EOF
}

if mmcv_ok; then
  step "mmcv $MMCV_VERSION with compiled ops already installed"
else
  TORCH_TAG="$("$VPY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  if "$VPY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    OPS=cuda; export FORCE_CUDA=1
  else
    OPS=cpu
  fi
  WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$OPS"
  WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)"
  if [ -z "$WHEEL" ]; then
    step "no cached mmcv wheel for torch $TORCH_TAG ($OPS ops): building mmcv $MMCV_VERSION from source"
    echo "  This compiles ~77 C++ sources: about 30 min on 2 cores. The wheel is cached in"
    echo "  $WHEEL_DIR and reused by later setups."
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
      || die "no C++ compiler found; mmcv's ops must be compiled (Debian: apt-get install g++)."
    PYINC="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    [ -f "$PYINC/Python.h" ] || die "Python headers not found ($PYINC/Python.h); install them (Debian: apt-get install python3-dev)."
    "${PIP[@]}" -r "$REPO/requirements/build.txt"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "$VPY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$BUILD" >/dev/null
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes c++14/c++17.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    echo "  compiling (log: $CACHE/mmcv-build.log)"
    mkdir -p "$CACHE" "$WHEEL_DIR"
    (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" CFLAGS="${CFLAGS:-} -g0" \
      "$VPY" -m pip wheel --no-build-isolation --no-deps -w "$BUILD/dist" . >"$CACHE/mmcv-build.log" 2>&1) \
      || die "building mmcv failed; see the end of $CACHE/mmcv-build.log"
    cp "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR/"
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl | head -n 1)"
  else
    step "installing the cached mmcv wheel $(basename "$WHEEL")"
  fi
  "${PIP[@]}" "$WHEEL"
  CHANGED=1
  mmcv_ok || die "mmcv installed but 'from mmcv.ops import nms' fails; delete $WHEEL_DIR and run again."
fi

# ---------------------------------------------------------------- the rest
# A stamp of the requirement files, setup.py and the sources of mmboat's
# compiled op: unchanged (and the op built) means installed.
STAMP_FILE="$VENV/.mmboat-install-stamp"
STAMP="$(cd "$REPO" && cat requirements/*.txt setup.py mmboat/version.py mmboat/ops/csrc/* | sha256sum | cut -d' ' -f1) $REPO"
if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] \
    && ls "$REPO"/mmboat/_ext*.so >/dev/null 2>&1; then
  step "the pinned OpenMMLab stack and mmboat are already installed"
else
  step "installing the pinned OpenMMLab stack, test tools and mmboat (editable)"
  CHANGED=1
  "${PIP[@]}" -q -r "$REPO/requirements/runtime.txt" -r "$REPO/requirements/tests.txt"
  # without build isolation, so that setup.py compiles mmboat's clustering
  # op (mmboat/_ext*.so, in place) against this environment's torch; PEP 517
  # (PEP 660 editable), since setuptools' legacy `develop` re-runs pip with
  # build isolation, where torch is missing and no op is built
  mkdir -p "$CACHE"
  if ! "${PIP[@]}" -q --no-deps --no-build-isolation --use-pep517 -e "$REPO" >"$CACHE/mmboat-install.log" 2>&1; then
    echo "  building mmboat's compiled clustering op failed (log: $CACHE/mmboat-install.log);"
    echo "  installing mmboat without it: the clustering runs its slower torch code"
    "${PIP[@]}" -q --no-deps -e "$REPO"
  elif ! ls "$REPO"/mmboat/_ext*.so >/dev/null 2>&1; then
    echo "  mmboat's compiled clustering op was not built (log: $CACHE/mmboat-install.log):"
    echo "  the clustering runs its slower torch code"
  fi
  # MIM finds a package's folder from its distribution's location, which
  # for an editable install is site-packages (no mmboat folder there): the
  # checkout's own mmboat.egg-info lets `PYTHONPATH=$PWD mim search mmboat`
  # find the repository instead
  (cd "$REPO" && "$VPY" setup.py -q egg_info >/dev/null 2>&1)
fi

if [ "$CHANGED" = 1 ]; then
step "checking the installation"
"$VPY" - <<'EOF'
import mmcv, mmdet, mmseg, mmpretrain, mmengine, timm, torch
from mmcv.ops import nms
import mmboat
print(f'  torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}, '
      f'timm {timm.__version__}, mmboat {mmboat.__version__}')
EOF
fi
echo "$STAMP" > "$STAMP_FILE"
step "done. Run the tests with: bash tools/run_tests.sh"
