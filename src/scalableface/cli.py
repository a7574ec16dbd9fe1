"""The `sface` command: parse arguments, call the library, print. No codec logic lives here.

Commands that only read containers (info, strip, models) import neither torch nor dlib.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import SfaceError
from .files import read_bytes, write_bytes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}


class Group(click.Group):
    """Turns the project's own errors into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SfaceError as e:
            click.echo(f"sface: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("sface: interrupted", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sface")
def main():
    """sface: a layered face codec whose base layer is a recognition feature.

    A .sfc file holds an identity layer (a ~10-byte face descriptor), an appearance layer (with it, the
    base layer, which decodes to a rough face) and an enhancement layer (a faithful face). Use `-` for
    stdin/stdout. Errors go to stderr with exit status 1 (2 for usage errors).
    """


def _output_for(inputs, output, out_dir, suffix):
    """Where one input goes: the second positional argument is only ever an output."""
    if out_dir is not None:
        return None
    if len(inputs) != 1 or output is None:
        raise click.UsageError("one input needs one output; several inputs or a folder need --out-dir")
    return output


# ---- commands that only read containers -------------------------------------------------------


def _model_label(model_id: bytes) -> str:
    from . import models

    try:
        return models.find(model_id).name
    except SfaceError:
        return "not installed"


def info_dict(path: str, data: bytes) -> dict:
    from .container import LayerType, parse

    f = parse(data)
    h = f.header
    present = {l.type: l for l in f.layers}
    return {
        "file": path,
        "bytes": len(data),
        "version": "1.0",
        "model_id": h.model_hex,
        "model": _model_label(h.model_id),
        "header_bytes": f.header_size,
        "crop": {"size": h.crop_size, "template": "dlib-5point", "padding": h.padding},
        "base_rate": h.base_rate,
        "quality": h.quality,
        "transform": None
        if h.transform is None
        else {"photo_size": [h.transform.photo_width, h.transform.photo_height], "matrix": list(h.transform.matrix)},
        "layers": [
            {"type": k.name.lower(), "present": k in present}
            | ({"offset": present[k].offset, "bytes": present[k].size, "payload_bytes": len(present[k].payload)} if k in present else {})
            for k in LayerType
        ],
    }


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, for scripts.")
def info(files, as_json):
    """Print the header and layer table of .sfc FILES (checks every CRC)."""
    failed = 0
    for path in files:
        try:
            d = info_dict(path, read_bytes(path))
        except SfaceError as e:
            click.echo(f"sface: error: {path}: {e}", err=True)
            failed += 1
            continue
        if as_json:
            click.echo(json.dumps(d))
            continue
        click.echo(f"{path}: {d['bytes']} bytes, .sfc version {d['version']}, header {d['header_bytes']} bytes")
        click.echo(f"  model      {d['model_id']} ({d['model']})")
        c = d["crop"]
        click.echo(f"  crop       {c['size']}x{c['size']}, dlib 5-point template, padding {c['padding']:g}")
        q = d["quality"]
        click.echo(f"  rates      base rate point {d['base_rate']}, enhancement quality {q if q else 'none'}")
        if d["transform"]:
            t = d["transform"]
            m = " ".join(f"{v:.6g}" for v in t["matrix"])
            click.echo(f"  transform  photo {t['photo_size'][0]}x{t['photo_size'][1]}, crop->photo [{m}]")
        click.echo("  layers")
        for l in d["layers"]:
            if l["present"]:
                click.echo(f"    {l['type']:<12} at {l['offset']:>5}: {l['bytes']:>6} bytes ({l['payload_bytes']} payload), CRC ok")
            else:
                click.echo(f"    {l['type']:<12} absent")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("input")
@click.argument("output")
@click.option("--layer", type=click.Choice(["base", "identity"]), default="base", show_default=True,
              help="Keep the layers up to this one: base = identity + appearance.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def strip(input, output, layer, force):
    """Drop the layers above --layer without re-encoding (a pure truncation of the file)."""
    from .container import LayerType, truncate

    keep = LayerType.APPEARANCE if layer == "base" else LayerType.IDENTITY
    write_bytes(output, truncate(read_bytes(input), keep), force=force)


@main.command(name="models")
@click.option("--json", "as_json", is_flag=True, help="JSON list, for scripts.")
@click.option("--verify", is_flag=True, help="Hash every codec model's weights and compare with the manifest.")
def models_cmd(as_json, verify):
    """List installed models: name, short id, weights hash, size, summary."""
    from . import models

    entries = models.codec_models() + models.reference_models()
    rows = []
    for m in entries:
        row = {"name": m.name, "kind": m.kind, "id": m.short_id.hex() if m.kind != "reference" else "-",
               "sha256": m.sha256, "bytes": m.size, "summary": m.summary, "path": str(m.path)}
        if verify and m.kind != "reference":
            row["verified"] = m.path.is_file() and models.sha256_file(m.path) == m.sha256
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    elif not rows:
        click.echo("no models installed")
    for r in [] if as_json else rows:
        ok = "" if "verified" not in r else ("  hash ok" if r["verified"] else "  HASH MISMATCH")
        click.echo(f"{r['name']:<18} {r['id']:<8}  sha256:{r['sha256'][:12]}  {r['bytes'] / 1e6:6.2f} MB  {r['summary']}{ok}")
    if verify and not all(r.get("verified", True) for r in rows):
        sys.exit(1)
