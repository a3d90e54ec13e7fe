#!/usr/bin/env bash
# make fetch-data [SOURCE=<dir>]: fill data/ and verify it against Baselines/data.lock.
#   SOURCE=<dir>  copy the pinned files from a local mirror (CI: ../shared/data)
#   (no SOURCE)   download the official archives (SuperGLUE v2, GLUE SST-2, AG News csv) and unpack
# Every pinned file that ends up in data/ must match its sha256, else the script fails and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=Baselines/data.lock
dest=${DEST:-data}
mkdir -p "$dest"

verify() {  # verify <file> <relpath>
  local want got
  want=$(awk -v p="$2" '$2 == p {print $1}' "$lock")
  [ -z "$want" ] && return 0
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "error: $2: sha256 $got does not match the pin $want in $lock" >&2
    rm -f "$1"
    return 1
  fi
}

if [ -n "${SOURCE:-}" ]; then
  [ -d "$SOURCE" ] || { echo "error: SOURCE=$SOURCE is not a directory" >&2; exit 2; }
  n=0
  while read -r sha rel; do
    case "$sha" in \#*|"") continue;; esac
    if [ ! -f "$SOURCE/$rel" ]; then echo "missing in mirror: $rel"; continue; fi
    mkdir -p "$dest/$(dirname "$rel")"
    cp "$SOURCE/$rel" "$dest/$rel"
    verify "$dest/$rel" "$rel"
    n=$((n + 1))
  done < "$lock"
  echo "fetch-data: copied and verified $n pinned files from $SOURCE into $dest/"
  exit 0
fi

# Official archives. Their own bytes are not pinned (they were not reachable when the lock was
# made); the extracted files are verified against the lock wherever the lock pins them.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
get() { echo "downloading $1"; curl -fsSL --retry 3 -o "$2" "$1" || { echo "error: cannot download $1 (no network? use SOURCE=<mirror>)" >&2; exit 1; }; }
get https://dl.fbaipublicfiles.com/glue/superglue/data/v2/combined.zip "$tmp/superglue.zip"
get https://dl.fbaipublicfiles.com/glue/data/SST-2.zip "$tmp/sst2.zip"
get https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv "$tmp/ag_train.csv"
get https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv "$tmp/ag_test.csv"
(cd "$tmp" && unzip -q superglue.zip && unzip -q sst2.zip)
for t in BoolQ:boolq CB:cb COPA:copa MultiRC:multirc ReCoRD:record RTE:rte WiC:wic WSC:wsc; do
  src=${t%%:*}; dst=${t##*:}
  mkdir -p "$dest/superglue/$dst"
  for f in train val; do
    cp "$tmp/combined/$src/$f.jsonl" "$dest/superglue/$dst/$f.jsonl" 2>/dev/null || cp "$tmp/$src/$f.jsonl" "$dest/superglue/$dst/$f.jsonl"
    verify "$dest/superglue/$dst/$f.jsonl" "superglue/$dst/$f.jsonl"
  done
done
mkdir -p "$dest/sst2" "$dest/agnews"
cp "$tmp/SST-2/train.tsv" "$dest/sst2/train.tsv"; cp "$tmp/SST-2/dev.tsv" "$dest/sst2/dev.tsv"
verify "$dest/sst2/dev.tsv" sst2/dev.tsv
cp "$tmp/ag_train.csv" "$dest/agnews/train.csv"; cp "$tmp/ag_test.csv" "$dest/agnews/test.csv"
verify "$dest/agnews/test.csv" agnews/test.csv
echo "fetch-data: official archives unpacked into $dest/ and verified where pinned"
