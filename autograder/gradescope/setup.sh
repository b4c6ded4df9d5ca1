#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image (choose the Ubuntu
# 24.04 base image: the pinned packages need Python >= 3.11). It needs the network (apt, PyPI,
# download.pytorch.org), so it cannot run in this project's offline tests: they check it with
# `bash -n`, check its pins against the versions the tests ran with, and run harden.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # /autograder/source
VENV=/opt/lab-autograder/venv

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv util-linux >/dev/null

mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# The CPU build of torch: grading runs on CPUs, and it is a fraction of the CUDA build's size.
"$VENV/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu -r "$HERE/requirements-torch.txt"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
chmod -R a+rX "$(dirname "$VENV")"   # student code runs this interpreter as an unprivileged uid

bash "$HERE/harden.sh"
