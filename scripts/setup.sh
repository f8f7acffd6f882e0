#!/usr/bin/env bash
# Set up efnas in a local virtual environment (.venv) from this checkout.
# Idempotent: re-running only installs what changed.  CPU TensorFlow by default;
# on a GPU node use EFNAS_TF_EXTRA=gpu (tensorflow[and-cuda]).  The edge extra (LiteRT) comes too:
# efnas infer and efnas latency run TFLite models with it, as on a device without TensorFlow.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRA="${EFNAS_TF_EXTRA:-cpu}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${EXTRA},edge,test]"
echo "efnas installed in $(pwd)/.venv  ($(.venv/bin/efnas --version))"
