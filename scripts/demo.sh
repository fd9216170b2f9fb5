#!/usr/bin/env bash
# The main job end to end on a small built-in data set: synthesise an archive, convert it into
# shards, inspect them, and train ResNet18 data-parallel on 2 MPI ranks (DDP over gloo); a
# BigEarthNet v2.0 leg converts an LMDB archive with reference maps and Sentinel-1.
# Usage: scripts/demo.sh [OUTPUT_DIR]
set -euo pipefail
out="${1:-demo-output}"
rm -rf "$out"
mkdir -p "$out"
if [ "$(id -u)" = 0 ]; then  # Open MPI refuses root unless told
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
echo "== jeoparda synth: a 600-patch archive in the BigEarthNet-S2 v1.0 layout"
jeoparda synth --out "$out/archive" --patches 600 --seed 0
echo "== jeoparda convert: archive -> sharded 12-band HDF5"
jeoparda convert --source "$out/archive" --out "$out/shards" --shard-size 64 --workers 2 \
  --exclude "$out/archive/patches_with_seasonal_snow.csv" \
  --exclude "$out/archive/patches_with_cloud_and_shadow.csv"
echo "== jeoparda inspect"
jeoparda inspect "$out/shards"
echo "== BigEarthNet v2.0: a 200-patch archive as rico-hdl encodes it (LMDB, reference maps, Sentinel-1)"
jeoparda synth --out "$out/reben" --patches 200 --seed 0 --layout lmdb
echo "== jeoparda convert: LMDB + reference maps + Sentinel-1 -> shard format v2 (tasks multilabel, segmentation)"
jeoparda convert --source "$out/reben" --out "$out/reben-shards" --shard-size 64 --workers 2 --with-s1
jeoparda inspect "$out/reben-shards" > "$out/reben-inspect.txt"
head -n 8 "$out/reben-inspect.txt"
echo "== jeoparda train: one epoch on the 14 channels (12 optical + VV, VH)"
jeoparda train --config benchmarks/configs/resnet18.yaml --set data.path="$out/reben-shards" \
  --set data.bands=s2+s1 --set train.epochs=1 --set train.batch_size=32 --set data.workers=1 \
  --set dist.backend=single --out "$out/runs-reben/resnet18-s2s1"
echo "== jeoparda sr: learned super-resolution of the 20 m / 60 m bands, 2 ranks, then used by convert"
mpirun -np 2 --oversubscribe jeoparda sr train --data "$out/reben" --out "$out/sr/sr.pt" --run-dir "$out/sr/run" \
  --steps 600 --patches 100 --eval-patches 20
jeoparda convert --source "$out/reben" --out "$out/sr/shards" --shard-size 64 --workers 2 \
  --resample learned --sr-model "$out/sr/sr.pt" | tail -n 1
for ranks in 1 2; do
  echo "== jeoparda train: ResNet18, $ranks rank(s) (mpirun), 4 epochs, one thread per rank"
  mpirun -np "$ranks" --oversubscribe jeoparda train --config benchmarks/configs/resnet18.yaml \
    --set data.path="$out/shards" --set train.epochs=4 --set train.batch_size=32 \
    --set train.threads=1 --set data.workers=1 --set dist.backend=ddp --out "$out/runs/resnet18-${ranks}rank"
done
echo "== jeoparda bench allreduce: 2 ranks, up to ResNet18's gradient size (45 MB)"
mpirun -np 2 --oversubscribe jeoparda bench allreduce --max-bytes 44857932 --iters 5 --json > "$out/allreduce.txt"
head -n -1 "$out/allreduce.txt"
echo "== jeoparda project: the 1-rank step and the measured all-reduce, projected to 8 workers"
jeoparda project --from "$out/runs/resnet18-1rank" --allreduce "$out/allreduce.txt" --max-gpus 8 \
  --out "$out/projection"
echo "== jeoparda report: weak scaling 1 -> 2 ranks, next to the projection"
jeoparda report "$out"/runs/* --out "$out/report" --projection "$out/projection/projection.json"
echo
echo "demo data: archive in $out/archive, shards in $out/shards; v2.0 archive in $out/reben, shards in $out/reben-shards"
echo "training runs: $out/runs/resnet18-1rank and -2rank (results.jsonl, config.yaml, checkpoints/)"
echo "super-resolution: model $out/sr/sr.pt (jeoparda sr eval --model ... --data ...), shards $out/sr/shards"
echo "projection: $out/projection/projection.json and projection.csv"
echo "scaling report: $out/report/report.html (also report.md, scaling.csv, PNG plots)"
