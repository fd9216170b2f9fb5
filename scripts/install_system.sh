#!/usr/bin/env bash
# System packages for the tests that use a real one-node Slurm cluster (tests/slurm/):
# Debian's slurm-wlm (22.05), the PMIx library its srun --mpi=pmix plugin loads, shellcheck
# for the job scripts, and Chromium, the browser that renders the HTML report in
# tests/report/test_html_render.py.
# Needs root and apt-get; elsewhere it says so and leaves the Slurm tests to skip.
set -euo pipefail
have_pmix() { ls /usr/lib/*/libpmix.so >/dev/null 2>&1 || ls /usr/lib/libpmix.so >/dev/null 2>&1; }
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && have_pmix \
    && command -v shellcheck >/dev/null && command -v chromium >/dev/null; then
  echo "slurm-wlm, libpmix, shellcheck and chromium already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: Slurm (slurm-wlm, libpmix-dev), shellcheck or chromium is not installed and this is not a root" \
       "Debian machine; the tests in tests/slurm/ and the report's browser test will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends slurm-wlm libpmix-dev shellcheck chromium
