#!/usr/bin/env bash
# ferry's main job on the embedded default, no cloud account: a local
# directory acts as the bucket. Creates a sample dataset there, loads it into
# a DATA_DIR the way a container's load.sh does, loads again (nothing to do),
# and checks the copy is identical.
set -euo pipefail
ferry=${1:-bin/ferry}
work=${FERRY_DEMO_DIR:-$(mktemp -d -t ferry-demo-XXXXXX)}
store=$work/store
mkdir -p "$store/sample/images/train" "$store/sample/images/val"

echo "demo: creating a sample dataset in $store/sample"
for i in $(seq -w 1 40); do
	head -c $((4096 + 10#$i * 100)) /dev/urandom >"$store/sample/images/train/img-$i.bin"
done
for i in 1 2 3; do head -c 2048 /dev/urandom >"$store/sample/images/val/img-$i.bin"; done
head -c $((48 << 20)) /dev/urandom >"$store/sample/model.ckpt"
printf 'label,count\ncat,40\n' >"$store/sample/labels.csv"
: >"$store/sample/EMPTY"

export DATA_DIR=$work/data DATA_STORE_PROVIDER=local DATA_STORE_BUCKET=$store DATA_STORE_PREFIX=sample
echo "demo: DATA_STORE_PROVIDER=local DATA_STORE_BUCKET=$store DATA_STORE_PREFIX=sample DATA_DIR=$DATA_DIR $ferry load"
"$ferry" load
echo "demo: loading again (everything is up to date, so only a listing is made)"
"$ferry" load
diff -r "$store/sample" "$DATA_DIR"
echo "demo: $DATA_DIR is identical to the store ($(find "$DATA_DIR" -type f | wc -l) files)"
