#!/usr/bin/env bash
# ferry's main jobs on the embedded default, no cloud account: a local
# directory acts as the bucket. Creates a sample dataset, stores it into the
# bucket the way a container's store.sh does after a job, loads it into a
# fresh DATA_DIR the way load.sh does before the next one (each file checked
# against the checksums the store recorded), loads again (nothing to do),
# and checks the copy is identical.
set -euo pipefail
ferry=${1:-bin/ferry}
work=${FERRY_DEMO_DIR:-$(mktemp -d -t ferry-demo-XXXXXX)}
store=$work/store output=$work/output
mkdir -p "$store" "$output/images/train" "$output/images/val"

echo "demo: creating a sample dataset in $output"
for i in $(seq -w 1 40); do
	head -c $((4096 + 10#$i * 100)) /dev/urandom >"$output/images/train/img-$i.bin"
done
for i in 1 2 3; do head -c 2048 /dev/urandom >"$output/images/val/img-$i.bin"; done
head -c $((48 << 20)) /dev/urandom >"$output/model.ckpt"
printf 'label,count\ncat,40\n' >"$output/labels.csv"
: >"$output/EMPTY"

export DATA_STORE_PROVIDER=local DATA_STORE_BUCKET=$store DATA_STORE_PREFIX=sample
echo "demo: DATA_STORE_PROVIDER=local DATA_STORE_BUCKET=$store DATA_STORE_PREFIX=sample DATA_DIR=$output $ferry store"
DATA_DIR=$output "$ferry" store
export DATA_DIR=$work/data
echo "demo: DATA_STORE_PROVIDER=local DATA_STORE_BUCKET=$store DATA_STORE_PREFIX=sample DATA_DIR=$DATA_DIR $ferry load"
"$ferry" load
echo "demo: loading again (everything is up to date, so only a listing is made)"
"$ferry" load
diff -r "$output" "$DATA_DIR"
echo "demo: $DATA_DIR is identical to $output ($(find "$DATA_DIR" -type f | wc -l) files)"
