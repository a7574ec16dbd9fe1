#!/usr/bin/env bash
# Shell use over folders: encode every photo under a folder, keep identity-only copies for search,
# and write a descriptor matrix (with the file list beside it) for a gallery.
set -euo pipefail
photos=${1:?usage: pipeline.sh PHOTO_FOLDER OUT_FOLDER}
out=${2:?usage: pipeline.sh PHOTO_FOLDER OUT_FOLDER}
sface encode "$photos" --out-dir "$out/sfc" || echo "some photos failed (named above); the others are done" >&2
find "$out/sfc" -name '*.sfc' | while read -r f; do
  sface strip --layer identity "$f" "$out/ids/${f#"$out/sfc/"}" 2>/dev/null || { mkdir -p "$(dirname "$out/ids/${f#"$out/sfc/"}")"; sface strip --layer identity "$f" "$out/ids/${f#"$out/sfc/"}"; }
done
sface extract-features "$out/ids" -o "$out/gallery.npy"
du -sh "$out/sfc" "$out/ids"
