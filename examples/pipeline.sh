#!/usr/bin/env bash
# Shell use over a folder: encode every photo (two workers), then build a descriptor matrix for a
# gallery from the identity layers alone (no pixels decoded). Usage: pipeline.sh PHOTOS OUT
set -euo pipefail
photos=${1:?usage: pipeline.sh PHOTO_FOLDER OUT_FOLDER}
out=${2:?usage: pipeline.sh PHOTO_FOLDER OUT_FOLDER}
sface encode "$photos" --out-dir "$out/sfc" -j 2 || echo "some photos failed (named above); the others are done" >&2
sface extract-features "$out/sfc" -o "$out/gallery.npy"   # rows listed in gallery.files.txt
du -sh "$out/sfc"
