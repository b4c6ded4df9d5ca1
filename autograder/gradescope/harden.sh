#!/usr/bin/env bash
# The part of setup.sh that needs no network (the tests run it): the grading users, and an
# autograder that student code cannot read.
#
# Gradescope gives the sandbox's `setuid` level (a container without CAP_SYS_ADMIN): student code
# runs as an unprivileged uid (61000 + slot), and files are hidden from it only by their
# permissions. Here every file of the bundle (the reference solution in lib/, the grader, the
# anomaly test features) becomes root's alone, and /autograder itself is closed, so the gap that
# level leaves is closed by construction. The interpreter and its packages stay in
# /opt/lab-autograder/venv, readable by all: the student's code needs them.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SLOTS="${LAB_AUTOGRADER_SLOTS:-4}"

if [[ "${HARDEN_USERS:-1}" == 1 ]]; then
  for ((i = 0; i < SLOTS; i++)); do
    uid=$((61000 + i))
    if ! getent passwd "$uid" >/dev/null; then
      useradd --system --uid "$uid" --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "lab-job-$i"
    fi
  done
fi

chown -R root:root "$ROOT/source"
chmod -R u+rwX,go-rwx "$ROOT/source"
chmod 0700 "$ROOT"
echo "harden.sh: $ROOT is root's alone; grading users 61000..$((61000 + SLOTS - 1))"
