#!/usr/bin/env bash
# The main job end to end on a small built-in data set: synthesise an archive, convert it into
# shards (2 worker processes), and inspect the result. Usage: scripts/demo.sh [OUTPUT_DIR]
set -euo pipefail
out="${1:-demo-output}"
rm -rf "$out"
mkdir -p "$out"
echo "== jeoparda synth: a 600-patch archive in the BigEarthNet-S2 v1.0 layout"
jeoparda synth --out "$out/archive" --patches 600 --seed 0
echo "== jeoparda convert: archive -> sharded 12-band HDF5"
jeoparda convert --source "$out/archive" --out "$out/shards" --shard-size 64 --workers 2 \
  --exclude "$out/archive/patches_with_seasonal_snow.csv" \
  --exclude "$out/archive/patches_with_cloud_and_shadow.csv"
echo "== jeoparda inspect"
jeoparda inspect "$out/shards"
echo
echo "demo data: archive in $out/archive, shards and manifest in $out/shards"
