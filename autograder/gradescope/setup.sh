#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image (choose the Ubuntu
# 24.04 base image: the pinned packages need Python >= 3.11). It installs the bundle's own
# requirement files and nothing else, so what grades is what the bundle names.
#
# torch comes from PyTorch's CPU index (grading runs on CPUs; a fraction of the CUDA build's size);
# where that index cannot be reached, from PyPI (the same version, its CUDA build, which runs on a
# CPU as well): the log says which. The tests run this script into a fresh venv
# (tests/test_gradescope_bundle.py); the variables below exist for them and for dry runs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # /autograder/source
VENV="${LAB_VENV:-/opt/lab-autograder/venv}"
PYTHON="${LAB_SETUP_PYTHON:-python3}"
TORCH_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

if [[ "${SETUP_APT:-1}" == 1 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv util-linux >/dev/null
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# Only the CPU index: no index or wheel folder from pip's configuration may stand in for it.
if env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "${PIP[@]}" install -q --retries 2 --timeout 30 --index-url "$TORCH_INDEX" -r "$HERE/requirements-torch.txt"; then
  echo "setup.sh: torch from the PyTorch CPU index ($TORCH_INDEX)"
else
  echo "setup.sh: the PyTorch CPU index ($TORCH_INDEX) failed; installing torch from PyPI instead"
  "${PIP[@]}" install -q -r "$HERE/requirements-torch.txt"
  echo "setup.sh: torch from PyPI"
fi
"${PIP[@]}" install -q -r "$HERE/requirements.txt"
"$VENV/bin/python" -c "import torch, torchvision; print('setup.sh: torch', torch.__version__, 'torchvision', torchvision.__version__)"
chmod -R a+rX "$(dirname "$VENV")"   # student code runs this interpreter as an unprivileged uid

bash "$HERE/harden.sh"
