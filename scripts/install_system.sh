#!/usr/bin/env bash
# System packages for the tests that use a real one-node Slurm cluster (tests/slurm/):
# Debian's slurm-wlm (22.05), the PMIx library its srun --mpi=pmix plugin loads, and shellcheck
# for the job scripts.
# Needs root and apt-get; elsewhere it says so and leaves the Slurm tests to skip.
set -euo pipefail
have_pmix() { ls /usr/lib/*/libpmix.so >/dev/null 2>&1 || ls /usr/lib/libpmix.so >/dev/null 2>&1; }
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && have_pmix \
    && command -v shellcheck >/dev/null; then
  echo "slurm-wlm, libpmix and shellcheck already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: Slurm (slurm-wlm, libpmix-dev) or shellcheck is not installed and this is not a root Debian machine;" \
       "the tests in tests/slurm/ will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends slurm-wlm libpmix-dev shellcheck
