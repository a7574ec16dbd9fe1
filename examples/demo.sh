#!/usr/bin/env bash
# The main job on the bundled example: set up .venv if needed, encode the photo (base + enhancement
# layers), inspect the file, decode it in full and its base layer alone, paste the face back into the
# photo, keep only the identity layer, and read features from it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/sface ] || { python3 -m venv .venv && .venv/bin/pip install --quiet . ; }
sface=.venv/bin/sface
out=$(mktemp -d)
$sface encode examples/astronaut.jpg "$out/astronaut.sfc" -q 8
$sface info "$out/astronaut.sfc"
$sface decode "$out/astronaut.sfc" -o "$out/astronaut-full.png"
$sface decode "$out/astronaut.sfc" -o "$out/astronaut-base.png" --layer base
$sface decode "$out/astronaut.sfc" --paste-into examples/astronaut.jpg -o "$out/astronaut-restored.jpg"
$sface strip --layer identity "$out/astronaut.sfc" "$out/astronaut-id.sfc"
echo "full file: $(wc -c < "$out/astronaut.sfc") bytes; identity-only file: $(wc -c < "$out/astronaut-id.sfc") bytes"
$sface compare "$out/astronaut-id.sfc" examples/astronaut.jpg
echo "outputs in $out"
