"""The `sface` command: parse arguments, call the library, print. No codec logic lives here.

Commands that only read containers (info, strip, models) import neither torch nor dlib.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .errors import SalvageableError, SfaceError, Terminated, named
from .files import IMAGE_SUFFIXES, expand_inputs, numbered, read_bytes, refuse_existing, write_bytes, write_files


def _terminate(signum, frame):
    raise Terminated()


def _quiet_stdout():
    """Point stdout at /dev/null, so that the interpreter's last flush of text that could not be
    written does not print a second error at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class Group(click.Group):
    """Turns the project's own errors into one line on stderr and exit status 1; SIGTERM unwinds like
    Ctrl-C (temporaries removed) and exits 143."""

    def invoke(self, ctx):
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except SfaceError as e:
            click.echo(f"sface: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("sface: interrupted", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("sface: terminated", err=True)
            sys.exit(143)
        except BrokenPipeError:
            _quiet_stdout()
            sys.exit(1)
        except OSError as e:  # what is left: printing to a stdout that fails (a full disk, /dev/full)
            if e.filename:
                click.echo(f"sface: error: {e.filename}: {e.strerror or e}", err=True)
            else:
                _quiet_stdout()
                click.echo(f"sface: error: cannot write to standard output: {e.strerror or e}", err=True)
            sys.exit(1)
        finally:
            signal.signal(signal.SIGTERM, previous)  # for callers in-process (tests, scripts)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sface")
def main():
    """sface: a layered face codec whose base layer is a recognition feature.

    A .sfc file holds an identity layer (a ~10-byte face descriptor), an appearance layer (with it, the
    base layer, which decodes to a rough face) and an enhancement layer (a faithful face). Use `-` for
    stdin/stdout. Errors go to stderr with exit status 1 (2 for usage errors).
    """


def _jobs(inputs, output, out_dir, in_suffixes, out_suffix):
    """((input, output) pairs, [(path, reason)] passed over by folder walks). Without --out-dir there
    is exactly one input and one output; a second positional argument is only ever an output,
    never an input to overwrite. Two inputs that would be written to one output are refused
    before any work."""
    if out_dir is None:
        if len(inputs) != 1 or output is None or Path(inputs[0]).is_dir():
            raise click.UsageError("one input needs one output; several inputs or a folder need --out-dir")
        return [(inputs[0], output)], []
    if output is not None:
        raise click.UsageError("give either an output or --out-dir, not both")
    pairs, passed_over = expand_inputs(inputs, in_suffixes)
    jobs = [(src, str(Path(out_dir) / rel.with_suffix(out_suffix))) for src, rel in pairs]
    first: dict[str, str] = {}
    for src, dst in jobs:
        key = os.path.normpath(os.path.abspath(dst))
        if key in first:
            raise SfaceError(f"{first[key]} and {src} would both be written to {dst} (an output is named by the "
                             "input's path below its folder argument, or by its file name for absolute and .. "
                             "paths, with the suffix replaced): rename one or run them separately")
        first[key] = src
    return jobs, passed_over


def _run_jobs(planned, work, verb, workers=1, as_json=False, *, force=False, skip_existing=None):
    """Run work(src, dst) for each job of `planned` (from _jobs); a failure is reported by name, the
    others go on, and the exit status is 1 if any failed or was passed over. An output that exists
    fails without any work (unless `force`); with `skip_existing` (a check of an output's bytes) an
    existing output that passes it is skipped and counted apart. A progress bar shows on a terminal only."""
    from . import batch

    jobs, passed_over = planned
    failures = [{"input": path, "error": reason} for path, reason in passed_over]
    for f in failures:
        click.echo(f"sface: error: {f['input']}: passed over: {f['error']}", err=True)
    todo, skipped = [], 0
    for src, dst in jobs:
        exists = dst != "-" and os.path.lexists(dst)
        if exists and skip_existing is not None and _output_ok(dst, skip_existing):
            skipped += 1
        elif exists and not force:
            failures.append({"input": src, "error": f"{dst} exists" + (" but is not a valid output" if skip_existing else "")
                             + " (use --force to overwrite)"})
            click.echo(f"sface: error: {src}: {failures[-1]['error']}", err=True)
        else:
            todo.append((src, dst))
    done = 0
    show = len(todo) > 1 and sys.stderr.isatty()
    outcomes = batch.run(todo, work, workers)
    with click.progressbar(outcomes, length=len(todo), label=verb, file=sys.stderr) if show else _nullbar(outcomes) as bar:
        for src, dst, error in bar:
            if error is not None:
                failures.append({"input": src, "error": error})
                click.echo(f"sface: error: {src}: {error}", err=True)
            else:
                done += 1
    total = len(jobs) + len(passed_over)
    if total > 1:
        click.echo(f"{verb}: {done} of {total} done, {skipped} skipped (already there), {len(failures)} failed", err=True)
    if as_json:
        click.echo(json.dumps({"done": done, "skipped": skipped, "failed": failures}))
    if failures:
        sys.exit(1)


def _output_ok(path, check) -> bool:
    try:
        return check(Path(path).read_bytes())
    except OSError:
        return False


class _nullbar:
    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return self.items

    def __exit__(self, *exc):
        return False


def _inputs(paths, files_from):
    """Positional inputs plus the paths listed in --files-from (one per line; - for stdin)."""
    listed = []
    if files_from:
        text = sys.stdin.read() if files_from == "-" else read_bytes(files_from).decode("utf-8", "replace")
        listed = [line for line in text.splitlines() if line.strip()]
    return tuple(paths) + tuple(listed)


# ---- commands that code faces -----------------------------------------------------------------


BATCH_OPTIONS = [
    click.option("--files-from", default=None, help="Also read input paths from this file, one per line (- for stdin)."),
    click.option("-j", "--jobs", "workers", type=click.IntRange(1, 64), default=1, show_default=True,
                 help="Worker processes for many files."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON report (done, failed files) on stdout at the end."),
]


def batch_options(f):
    for option in reversed(BATCH_OPTIONS):
        f = option(f)
    return f


@main.command()
@click.argument("paths", nargs=-1)
@click.option("--out-dir", type=click.Path(file_okay=False), help="Write one .sfc per input image here (folders recurse).")
@click.option("--layers", type=click.Choice(["identity", "base", "full"]), default="full", show_default=True,
              help="Layers to write: identity (~10 bytes), base (+ appearance, ~30 bytes), full (+ enhancement).")
@click.option("-q", "--quality", type=click.IntRange(1, 15), default=None,
              help="Enhancement quality, 1 (smallest) to the model's highest (15 for sface-v7, sface-v5 and sface-v4, 9 for sface-v2); default: the model's (8 for sface-v7 and sface-v5, 9 for sface-v4, 5 for sface-v2).")
@click.option("--effort", type=click.IntRange(0, 3), default=None,
              help="How long to search for a cheaper enhancement layer at the same quality (README, \"Encode "
                   "effort\"; decoding is the same): 0 not at all (fastest, ~0.05 s a face); default 1 "
                   "(~0.25 s a face, ~3% fewer bytes); 2 and 3 seconds per face for 1-2% more.")
@click.option("--base-rate", type=click.IntRange(1, 15), default=None, help="Base rate point (default: the model's).")
@click.option("--aligned", is_flag=True, help="Inputs are already 128x128 canonical crops: skip detection.")
@click.option("--model", default=None, help="Model set name or id (default: the installed one).")
@click.option("--no-transform", is_flag=True, help="Leave out where the face sat in the photo (saves 28 bytes; no paste-back).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--skip-existing", is_flag=True,
              help="Leave an output that is already a valid .sfc file as it is (resumes an interrupted batch).")
@click.option("--all", "all_faces", is_flag=True,
              help="Every face of each photo, largest first: NAME-1.sfc, NAME-2.sfc, ... each with its own transform.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on a Ray cluster (extra scalableface[ray]): a local one, or the cluster at ADDRESS; "
                   "-j sets the encoder actors. Inputs may be URIs pyarrow reads (s3://...).")
@click.option("--table", default=None, help="With --ray: also write a Parquet gallery table (a folder) here.")
@batch_options
def encode(paths, out_dir, layers, quality, effort, base_rate, aligned, model, no_transform, force, skip_existing,
           all_faces, ray_address, table, files_from, workers, as_json):
    """Encode the largest face of each image: `encode IN OUT` or `encode IN... --out-dir DIR`.

    Folders recurse; a bad, unreadable or faceless image is reported by name and skipped. Two
    inputs that would have one output name are refused before any work. Re-running the same command
    with --skip-existing finishes an interrupted batch. With --all, every face: `encode group.jpg
    --all --out-dir faces/` writes faces/group-1.sfc, group-2.sfc, ... With --ray, the same encoding
    on a Ray cluster, to --out-dir and/or a Parquet --table that `sface index build` reads."""
    from . import codec
    from .container import is_valid

    if quality is not None and layers != "full":
        raise click.UsageError("--quality sets the enhancement layer: it needs --layers full")
    if effort and layers != "full":
        raise click.UsageError("--effort searches the enhancement layer: it needs --layers full")
    if all_faces and aligned:
        raise click.UsageError("--all finds faces in photos; --aligned inputs are one face each")
    if table and not ray_address:
        raise click.UsageError("--table is written by the Ray pipeline: it needs --ray")
    options = dict(layers=layers, quality=quality, base_rate=base_rate, model=model, keep_transform=not no_transform,
                   effort=effort)
    if ray_address:
        if aligned:
            raise click.UsageError("--ray codes photos; --aligned is not supported with it")
        if not out_dir and not table:
            raise click.UsageError("--ray needs --out-dir and/or --table")
        _encode_on_ray(_inputs(paths, files_from), out_dir, table, ray_address, workers, all_faces, force, options, as_json)
        return
    if out_dir:
        inputs, output = _inputs(paths, files_from), None
    else:
        if files_from:
            raise click.UsageError("--files-from needs --out-dir")
        inputs, output = paths[:-1], (paths[-1] if len(paths) > 1 else None)
    if not inputs:
        raise click.UsageError("no input given")
    if output and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        raise click.UsageError(f"the output {output} looks like an image; several inputs need --out-dir")
    if output == "-" and all_faces:
        raise click.UsageError("--all writes one file per face: give an output name or --out-dir")

    def work(src, dst):
        data = read_bytes(src)
        if not all_faces:
            write_bytes(dst, codec.encode(data, aligned=aligned, name=src, **options), force=force)
            return
        for i, f in enumerate(codec.encode_all(data, name=src, **options), 1):
            write_bytes(numbered(dst, i), f, force=force)

    _run_jobs(_jobs(inputs, output, out_dir, IMAGE_SUFFIXES, ".sfc"), work, "encoding", workers, as_json,
              force=force, skip_existing=is_valid if skip_existing else None)


def _encode_on_ray(inputs, out_dir, table, address, workers, all_faces, force, options, as_json):
    from .distributed import encode_dataset

    if not inputs:
        raise click.UsageError("no input given")
    report = encode_dataset(inputs, out_dir=out_dir, table=table, workers=workers, all_faces=all_faces, force=force,
                            address=None if address == "local" else address, suffixes=IMAGE_SUFFIXES, **options)
    for src, error in report.failures:
        click.echo(f"sface: error: {src}: {error}", err=True)
    done = report.inputs - len(report.failures)
    click.echo(f"encoding: {done} of {report.inputs} done ({report.faces} faces), {len(report.failures)} failed", err=True)
    if as_json:
        click.echo(json.dumps({"done": done, "faces": report.faces,
                               "failed": [{"input": s, "error": e} for s, e in report.failures]}))
    if report.failures:
        sys.exit(1)


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", default=None, help="Output image (.png, .jpg, .webp; - for PNG on stdout).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Write one PNG per .sfc input here (folders recurse).")
@click.option("--layer", type=click.Choice(["base", "full"]), default="full", show_default=True,
              help="Stop after this layer; a file without it decodes its best layer and says so.")
@click.option("--paste-into", "photo", default=None, metavar="PHOTO",
              help="Put the decoded face(s) back into PHOTO, the photo they were encoded from, and write the whole photo.")
@click.option("--salvage", is_flag=True,
              help="When the enhancement layer is damaged, decode the base layer instead (and say so) rather than fail.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--skip-existing", is_flag=True,
              help="Leave an output that is already a readable image as it is (resumes an interrupted batch).")
@batch_options
def decode(inputs, output, out_dir, layer, photo, salvage, force, skip_existing, files_from, workers, as_json):
    """Decode .sfc files to face images: `decode IN -o OUT` or `decode IN... --out-dir DIR`.

    With --paste-into, the faces go back where they were cut from (each header keeps its transform),
    e.g. `decode face.sfc --paste-into photo.jpg -o restored.jpg`, or every face `encode --all` wrote:
    `decode --paste-into group.jpg faces/group-*.sfc -o restored.jpg`. `--layer base` reads and
    checks only the layers below the enhancement layer."""
    from . import codec
    from .images import encode_image, format_for, is_image

    def work(src, dst):
        fmt = format_for(dst)
        try:
            d = codec.decode(read_bytes(src), layer=layer, salvage=salvage)
        except SalvageableError as e:
            raise SfaceError(f"{e} (--salvage decodes it)") from None
        if d.note:
            click.echo(f"sface: {src}: {d.note}", err=True)
        write_bytes(dst, encode_image(d.image, fmt), force=force)

    inputs = _inputs(inputs, files_from)
    if not inputs:
        raise click.UsageError("no input given")
    if photo:
        if out_dir or not output:
            raise click.UsageError("--paste-into takes .sfc inputs of one photo and -o OUTPUT")
        try:
            decoded = codec.decode_many([read_bytes(src) for src in inputs], layer=layer, salvage=salvage)
        except SalvageableError as e:
            raise SfaceError(f"{e} (--salvage decodes it)") from None
        for src, d in zip(inputs, decoded):
            if d.note:
                click.echo(f"sface: {src}: {d.note}", err=True)
        write_bytes(output, encode_image(codec.paste_into(decoded, read_bytes(photo)), format_for(output)), force=force)
        return
    _run_jobs(_jobs(inputs, output, out_dir, {".sfc"}, ".png"), work, "decoding", workers, as_json,
              force=force, skip_existing=is_image if skip_existing else None)


@main.command(name="extract-features")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="-", show_default=True, help="Output file (- for stdout).")
@click.option("--format", "fmt", type=click.Choice(["npy", "json", "csv"]), default=None,
              help="Default: from the output's suffix, else json.")
@click.option("--aligned", is_flag=True, help="Image inputs are already 128x128 canonical crops.")
@click.option("--force", is_flag=True, help="Overwrite the output.")
def extract_features(inputs, output, fmt, aligned, force):
    """128-d descriptors of .sfc files (identity layer only: no pixels decoded, no look at the layers
    above it), gallery record files (.sfr: one row per face, named by its stored name) or images.

    Folders recurse. The descriptors are in the space of dlib's face recognizer: compare them by
    L2 distance with the model's threshold (see `sface compare`). With .npy output to a file, the
    rows' file names go to NAME.files.txt beside it: both files are written, or neither."""
    import numpy as np

    from . import codec

    pairs, passed_over = expand_inputs(inputs, IMAGE_SUFFIXES | {".sfc", ".sfr"})
    fmt = fmt or {".npy": "npy", ".csv": "csv"}.get(Path(output).suffix.lower(), "json")
    outputs = [output] + ([str(Path(output).with_suffix(".files.txt"))] if fmt == "npy" and output != "-" else [])
    if not force:
        refuse_existing(outputs)  # before any work
    for path, reason in passed_over:
        click.echo(f"sface: error: {path}: passed over: {reason}", err=True)
    names, array, failures = _features([src for src, _ in pairs], aligned)
    for name, e in failures:
        click.echo(f"sface: error: {name}: {e}", err=True)
    failed = len(passed_over) + len(failures)
    if fmt == "npy":
        import io

        buf = io.BytesIO()
        np.save(buf, array)
        data = [buf.getvalue(), ("\n".join(names) + "\n").encode()]
    elif fmt == "json":
        data = [(json.dumps([{"file": n, "descriptor": [round(float(x), 7) for x in v]} for n, v in zip(names, array)]) + "\n").encode()]
    else:
        import csv
        import io

        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([n, *(f"{x:.7g}" for x in v)] for n, v in zip(names, array))
        data = [text.getvalue().encode()]
    write_files(list(zip(outputs, data)), force=force)
    if failed:
        sys.exit(1)



def _is_records(path: str) -> bool:
    """A gallery record file, by its suffix, or by its magic bytes when the suffix is not .sfc (stdin is never one)."""
    from .gallery import _starts_with

    suffix = Path(path).suffix.lower()
    return path != "-" and (suffix == ".sfr" or suffix != ".sfc" and _starts_with(path, b"SFR"))


def _features(files, aligned):
    """(row names, N x 128 descriptors, [(name, error)]) of .sfc files, .sfr record files (one row per
    record, named by its stored name or FILE#k) and images, rows in input order."""
    import numpy as np

    from . import codec, records

    kinds = [_is_records(f) for f in files]
    plain = [f for f, r in zip(files, kinds) if not r]
    feats = codec.extract_features_many(plain, aligned=aligned)
    at = dict(zip(feats.index, range(len(feats.index))))  # position in plain -> row
    failed = dict(feats.failures)
    names, rows, failures, k = [], [], [], 0
    for f, is_rec in zip(files, kinds):
        if is_rec:
            try:
                r, vectors = records.descriptors(read_bytes(f))
            except SfaceError as e:
                failures.append((f, str(e)))
                continue
            names += records.record_names(r, f)
            rows.append(vectors)
            continue
        if k in at:
            names.append(f)
            rows.append(feats.descriptors[at[k] : at[k] + 1])
        else:
            failures.append((f, failed[k]))
        k += 1
    return names, np.concatenate(rows) if rows else feats.descriptors[:0], failures


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", required=True, help="The record file to write (.sfr).")
@click.option("--no-names", is_flag=True, help="Leave the files' names out (about 1 byte per face less than with short names).")
@click.option("--block-records", type=click.IntRange(1, 65535), default=64, show_default=True,
              help="Records per CRC-32 block: damage is located to a block; each block costs 4 bytes.")
@click.option("--files-from", default=None, help="Also read input paths from this file, one per line (- for stdin).")
@click.option("--force", is_flag=True, help="Overwrite the output.")
def pack(inputs, output, no_names, block_records, files_from, force):
    """Gather the identity layers of .sfc files into one gallery record file (.sfr): `pack sfc/ -o
    gallery.sfr`.

    About 7.6 bytes per face at base rate point 1 instead of 26.5 for identity-only .sfc files: one
    header, then per face a length byte and the identity payload as it is (no re-coding), a CRC-32 per
    block of records, and the files' names. All files must share one model and base rate point.
    Folders recurse; a bad file is reported by name and left out (exit status 1). `sface
    extract-features`, `sface index build` and `sface unpack` read the result."""
    from . import records

    paths = _inputs(inputs, files_from)
    if not paths:
        raise click.UsageError("no input given")
    if not force:
        refuse_existing([output])  # before any work
    pairs, passed_over = expand_inputs(paths, {".sfc"})
    failures = list(passed_over)
    files = [src for src, _ in pairs]
    try:
        data = records.pack(files, keep_names=not no_names, block_records=block_records, errors=failures)
    except SfaceError as e:
        _report_failures(failures)
        raise SfaceError(f"{e}; {output} not written") from None
    _report_failures(failures)
    write_bytes(output, data, force=force)
    n = len(files) + len(passed_over) - len(failures)
    click.echo(f"{output}: {n} faces, {len(data)} bytes ({len(data) / n:.2f} per face), {len(failures)} failed", err=True)
    if failures:
        sys.exit(1)


@main.command()
@click.argument("input")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Write one identity-only .sfc file per record here.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
def unpack(input, out_dir, force):
    """Write each face of a gallery record file (.sfr) as an identity-only .sfc file: `unpack
    gallery.sfr --out-dir sfc/`.

    A face is named by its stored name (the path it was packed from, below --out-dir; its file name
    for absolute and .. paths), else NAME-k.sfc. The identity layer is the record's payload byte for
    byte; the header is the default one (128 crop, no transform). Every output is checked before
    any is written: an existing one, or two faces with one name, stop the command."""
    from . import records

    try:
        r = records.parse(read_bytes(input))
        records.symbols(r)  # the model is installed and every payload is a valid code
    except SfaceError as e:
        raise named(e, input) from None
    rel = []
    for k, name in enumerate(r.names or [""] * len(r), 1):
        p = Path(name)
        if not name or p.is_absolute() or ".." in p.parts:
            p = Path(p.name) if p.name not in ("", ".", "..") else Path(f"{Path(input).stem}-{k}")
        rel.append(p)
    targets = [str(Path(out_dir) / q.with_suffix(".sfc")) for q in rel]
    seen: dict[str, int] = {}
    for k, t in enumerate(targets):
        key = os.path.normpath(t)
        if key in seen:
            raise SfaceError(f"records {seen[key] + 1} and {k + 1} of {input} would both be written to {t}")
        seen[key] = k
    if not force:
        refuse_existing(targets)
    for t in {str(Path(t).parent) for t in targets}:
        Path(t).mkdir(parents=True, exist_ok=True)
    write_files(list(zip(targets, records.sfc_files(r))), force=force)
    click.echo(f"{out_dir}: {len(targets)} identity-only .sfc files written", err=True)


@main.command()
@click.argument("a")
@click.argument("b")
@click.option("--aligned", is_flag=True, help="Image inputs are already 128x128 canonical crops.")
@click.option("--json", "as_json", is_flag=True)
def compare(a, b, aligned, as_json):
    """Distance between two faces (.sfc files or images) and same/different at the model's threshold.

    Exit status 0 either way; read the verdict from the output."""
    from . import codec

    c = codec.compare(read_bytes(a), read_bytes(b), aligned=aligned, names=[a, b])
    if as_json:
        click.echo(json.dumps({"a": a, "b": b, "distance": c.distance, "threshold": c.threshold, "same": c.same}))
    else:
        click.echo(f"{c.distance:.4f} {'same' if c.same else 'different'} (threshold {c.threshold:.4f})")


@main.command()
@click.argument("input")
@click.option("-o", "--output", required=True, help="Crop image; with --all, faces go to NAME-1.png, NAME-2.png, ...")
@click.option("--all", "all_faces", is_flag=True, help="Write every face found, largest first.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
def align(input, output, all_faces, force):
    """Write the canonical 128x128 face crop of a photo (the input every layer codes)."""
    from . import codec
    from .images import encode_image, format_for

    faces = codec.align_image(read_bytes(input), all_faces=all_faces, name=input)
    fmt = format_for(Path(output))
    if not all_faces:
        write_bytes(output, encode_image(faces.crop, fmt), force=force)
        return
    for i, face in enumerate(faces, 1):
        write_bytes(numbered(output, i), encode_image(face.crop, fmt), force=force)
    click.echo(f"{len(faces)} face(s) written", err=True)


@main.group(name="index")
def index_group():
    """Searchable indexes (.sfx) of .sfc files, built from their identity layers alone (extra scalableface[search])."""


def _gallery_inputs(inputs, label_folders):
    from .gallery import collect

    sources, names, labels, failures, record_files = collect(inputs, label_folders=label_folders)
    if not sources and not failures and not record_files:
        raise click.UsageError("no .sfc file, .sfr record file or gallery table found in the inputs")
    return sources, names, labels, failures, record_files


def _add_record_files(g, record_files, label_folders, failures, skip=(), approximate=None) -> tuple[int, int]:
    """Add the faces of each .sfr file to gallery g; a file that fails is a failure and adds nothing.
    Returns (faces added, faces left out as already present)."""
    from .records import parse

    added = skipped = 0
    for path in record_files:
        try:
            r = parse(read_bytes(path))
            n = g.add_records(r, name=path, label_folders=label_folders, skip=skip, approximate=approximate)
        except SfaceError as e:
            failures.append((path, str(e).removeprefix(f"{path}: ")))
            continue
        added, skipped = added + n, skipped + len(r) - n
    return added, skipped


def _report_failures(failures):
    for name, error in failures:
        click.echo(f"sface: error: {name}: {error}", err=True)


@index_group.command(name="build")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="The index file to write (.sfx).")
@click.option("--approximate/--exact", default=None,
              help="Force the index kind; default: exact, and approximate (IVF) past the size where exact search gets slow.")
@click.option("--label-folders", is_flag=True, help="Label each entry with the name of its file's folder (e.g. the person).")
@click.option("--model", default=None, help="Model set name or id (default: the installed one); files of other models are refused.")
@click.option("--force", is_flag=True, help="Overwrite the output.")
def index_build(inputs, output, approximate, label_folders, model, force):
    """Build an index of .sfc files, folders of them, gallery record files (.sfr, `sface pack`) or
    Parquet gallery tables (`sface encode --ray --table`): `index build sfc/ -o people.sfx`. No pixel
    is decoded. Bad files are reported by name and left out (exit status 1)."""
    import numpy as np

    from .gallery import Gallery
    from .canonical import DESCRIPTOR_DIM

    if Path(output).exists() and not force:
        raise SfaceError(f"{output} exists (use --force to overwrite)")
    sources, names, labels, failures, record_files = _gallery_inputs(inputs, label_folders)
    g = Gallery.empty(model)
    g.add(sources, names=names, labels=labels, approximate=False if record_files else approximate, errors=failures)
    _add_record_files(g, record_files, label_folders, failures, approximate=False)  # the kind is chosen below
    if record_files and len(g) and approximate is not False:  # the kind by the whole gallery's size, as Gallery.build chooses it
        g.add_descriptors(np.zeros((0, DESCRIPTOR_DIM), np.float32), [], [], approximate)
    _report_failures(failures)
    if not len(g):
        raise SfaceError(f"no input could be indexed; {output} not written")
    g.save(output, force=force)
    click.echo(f"{output}: {len(g)} entries ({g.kind}), {len(failures)} failed", err=True)
    if failures:
        sys.exit(1)


@index_group.command(name="add")
@click.argument("index")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--label-folders", is_flag=True, help="Label each entry with the name of its file's folder.")
def index_add(index, inputs, label_folders):
    """Append .sfc files (folders, .sfr record files, Parquet tables) to an index, in place; files
    already in it are skipped."""
    from .gallery import Gallery

    g = Gallery.load(index)
    sources, names, labels, failures, record_files = _gallery_inputs(inputs, label_folders)
    present = set(g.files)
    keep = [k for k, n in enumerate(names) if n not in present]
    added = g.add([sources[k] for k in keep], names=[names[k] for k in keep], labels=[labels[k] for k in keep],
                  errors=failures)
    more, skipped = _add_record_files(g, record_files, label_folders, failures, skip=present)
    g.save(index, force=True)
    _report_failures(failures)
    click.echo(f"{index}: {added + more} added, {len(names) - len(keep) + skipped} already present, {len(failures)} failed; "
               f"{len(g)} entries ({g.kind})", err=True)
    if failures:
        sys.exit(1)


@index_group.command(name="info")
@click.argument("index")
@click.option("--json", "as_json", is_flag=True)
def index_info(index, as_json):
    """Model, descriptor space, kind and size of an index (checks its integrity hash)."""
    from .gallery import info

    d = info(index)
    if as_json:
        click.echo(json.dumps(d))
        return
    click.echo(f"{index}: {d['entries']} entries ({d['labelled']} labelled), {d['bytes']} bytes, integrity ok")
    click.echo(f"  model      {d['model']} ({d['model_id']})")
    sp = d["space"]
    click.echo(f"  space      {sp['recognizer']} {sp['dims']}-d, {sp['descriptor']}")
    kind = d["kind"] + (f", IVF {d['lists']} lists, {d['nprobe']} probed" if d["kind"] == "approximate" else ", every distance")
    click.echo(f"  kind       {kind}")
    click.echo(f"  threshold  {d['threshold']:.4f}")


@main.command()
@click.argument("index")
@click.argument("probes", nargs=-1, required=True)
@click.option("-k", type=click.IntRange(1), default=5, show_default=True, help="Matches per probe.")
@click.option("--threshold", type=float, default=None, help="Same/different threshold (default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per probe with its matches.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: probe,rank,file,label,distance,same.")
def search(index, probes, k, threshold, as_json, as_csv):
    """The k nearest faces in INDEX to each probe (.sfc files, folders of them, or photos), with their
    distance and same/different at the model's threshold: `search people.sfx probe.jpg -k 5`."""
    from .gallery import Gallery

    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    g = Gallery.load(index)
    pairs, passed_over = expand_inputs(probes, IMAGE_SUFFIXES | {".sfc"})
    files = [src for src, _ in pairs]
    errors = list(passed_over)
    results = g.search(files, k, threshold=threshold, errors=errors)
    _report_failures(errors)
    failed = {n for n, _ in errors}
    if as_json:
        click.echo(json.dumps([{"probe": p, "matches": [{"rank": r, "file": m.file, "label": m.label, "distance": round(m.distance, 6),
                                                        "same": m.same} for r, m in enumerate(ms, 1)]}
                               for p, ms in zip(files, results) if p not in failed]))
    elif as_csv:
        click.echo("probe,rank,file,label,distance,same")
        for p, ms in zip(files, results):
            for r, m in enumerate(ms, 1):
                click.echo(",".join([_csv(p), str(r), _csv(m.file), _csv(m.label or ""), f"{m.distance:.6f}", str(m.same).lower()]))
    else:
        used = g.threshold if threshold is None else threshold
        for p, ms in zip(files, results):
            if p in failed:
                continue
            click.echo(f"{p}:")
            for r, m in enumerate(ms, 1):
                label = f" [{m.label}]" if m.label else ""
                click.echo(f"  {r:>2}. {m.distance:.4f} {'same' if m.same else 'different'}  {m.file}{label}")
        click.echo(f"(threshold {used:.4f})", err=True)
    if errors:
        sys.exit(1)


def _csv(field: str) -> str:
    return '"' + field.replace('"', '""') + '"' if any(c in field for c in ',"\n') else field


@main.group(name="eval")
def eval_group():
    """Measurements on LFW (evaluation only; results cached outside the repository)."""


@eval_group.command(name="lfw")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="LFW folder with pairs.txt (default: $SFACE_DATA/lfw or ../shared/data/lfw).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("-o", "--output", default=None, help="Also write the results as JSON here.")
def eval_lfw(data, workers, output):
    """LFW View-2 10-fold accuracy of the reference pipeline (alignment + recognizer)."""
    from .eval.reference import lfw_reference
    from .paths import data_dir

    res = lfw_reference(Path(data) if data else data_dir() / "lfw", workers)
    click.echo(f"{res['images']} images, {res['pairs']} pairs; alignment: {res['alignment']}")
    for k, a in res["accuracy"].items():
        click.echo(f"  {k:<16} {100 * a['mean']:.2f}% +- {100 * a['std']:.2f}")
    if output:
        write_bytes(output, (json.dumps(res, indent=1) + "\n").encode(), force=True)


@eval_group.command(name="base")
@click.option("--data", type=click.Path(file_okay=False), default=None, help="LFW folder with pairs.txt.")
@click.option("--model", default=None, help="Model set name or id (default: the installed one).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("-o", "--output", default=None, help="Also write the results as JSON here.")
@click.option("--grid", default=None, help="Write a PNG: LFW originals on top, base-layer faces per rate point below.")
def eval_base(data, model, workers, output, grid):
    """Rate-accuracy of the base layer per rate point on LFW, beside PCA anchors."""
    import numpy as np

    from . import modelset
    from .eval.base_layer import evaluate
    from .paths import cache_dir, data_dir

    utk = cache_dir() / "utk_desc.npy"
    if not utk.exists():
        raise SfaceError("the PCA anchors need UTKFace descriptors: run `python -m scalableface.train.prepare` first")
    ms = modelset.load(model)
    res = evaluate(Path(data) if data else data_dir() / "lfw", ms.base, ms.entry.short_id, np.load(utk).mean(axis=1), workers, grid)
    res["model"] = {"name": ms.entry.name, "id": ms.entry.short_id.hex()}
    ref = res["reference_flip"]
    click.echo(f"reference (flip-averaged descriptors): {100 * ref['mean']:.2f}% +- {100 * ref['std']:.2f}")
    click.echo("rate  id bytes  id file  in .sfr  base bytes  base file  id accuracy      generated acc    PSNR   MS-SSIM  vs PCA")
    for r in res["rates"]:
        ia, ga = r["identity_accuracy"], r["generated_accuracy"]
        click.echo(f"{r['rate']:>4}  {r['identity_payload_bytes']:8.2f}  {r['identity_file_bytes']:7.2f}  "
                   f"{r['gallery_bytes_per_face']:7.2f}  "
                   f"{r['base_payload_bytes']:10.2f}  {r['base_file_bytes']:9.2f}  "
                   f"{100 * ia['mean']:.2f} +- {100 * ia['std']:.2f}  {100 * ga['mean']:.2f} +- {100 * ga['std']:.2f}  "
                   f"{r['generated_psnr_rgb']:5.2f}  {r['generated_ms_ssim_win7']:.4f}  "
                   + ("-" if r["bytes_saved_vs_pca_anchor"] is None else f"{-100 * r['bytes_saved_vs_pca_anchor']:+.0f}% bytes"))
    for a in res["anchors"]:
        click.echo(f"  anchor PCA {a['pca_dims']:>2} dims {a['bits']} bits: {a['payload_bytes']:6.2f} bytes, "
                   f"{100 * a['accuracy']['mean']:.2f} +- {100 * a['accuracy']['std']:.2f}")
    if output:
        write_bytes(output, (json.dumps(res, indent=1) + "\n").encode(), force=True)


@main.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="The LFW folder holding pairs.txt (default: $SFACE_DATA/lfw or ../shared/data/lfw).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="results/bench", show_default=True,
              help="Where the JSON files, the BD-rate table and the plots go (the resumable cache of measured "
                   "points is under $SFACE_CACHE/bench, ~/.cache/scalableface by default).")
@click.option("--limit", type=click.IntRange(0), default=0,
              help="Use about N images (the first pairs of every fold) for a quick run; 0 = all 7,701.")
@click.option("--codecs", default=None, help="Comma-separated codec names to run (e.g. jpeg,webp); default: all.")
@click.option("--model", default=None, help="The sface model to measure (default: the installed one).")
@click.option("--also", multiple=True, help="Another sface model to draw beside it, coded at effort 0 (repeatable; the measured model itself, too).")
@click.option("--sharp", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of sharper face photos never trained on, measured side by side with LFW "
                   "(default: $SFACE_DATA/utkface-extra when present).")
@click.option("--sharp-limit", type=click.IntRange(0), default=1000, show_default=True,
              help="How many of the sharp photos (spread evenly over the folder); 0 = all.")
@click.option("--no-sharp", is_flag=True, help="Measure LFW only.")
@click.option("--effort", type=click.IntRange(0, 3), default=None,
              help="Encode the measured model at this effort (default: the encoder's, 1; codec name "
                   "<model>-e<effort> above 0). Efforts 2 and 3 take seconds per face per quality: use a small --limit.")
def bench(data, out_dir, limit, codecs, model, also, sharp, sharp_limit, no_sharp, effort):
    """Rate-fidelity and rate-accuracy curves of sface against JPEG, WebP, AVIF, JPEG XL, HEVC, AV1
    and a single-layer learned codec on LFW and on a set of sharper faces, with a BD-rate table and
    plots (results for the sharp set under OUT/sharp/).

    Every point is cached as soon as it is measured: re-running resumes. A full run codes 7,701 crops
    at about 45 points and takes hours on 2 cores; sface's points at the default effort 1 cost about
    0.25-0.7 s per face each (--effort 0: about 0.1 s), so --limit 1000 takes about an hour."""
    from .eval import bench
    from .paths import data_dir

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lfw = Path(data) if data else data_dir() / "lfw"
    sharp_dir = None if no_sharp else Path(sharp) if sharp else data_dir() / "utkface-extra"
    if sharp_dir is not None and not sharp_dir.is_dir():
        sharp_dir = None
    bench.run(lfw, out, limit=limit, model=model, only=codecs.split(",") if codecs else None, extra_models=also,
        sharp=sharp_dir, sharp_limit=sharp_limit, effort=effort, log=lambda m: click.echo(m, err=True))


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
        "version": f.version,
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


def records_info_dict(path: str, data: bytes) -> dict:
    from .records import parse

    r = parse(data)
    payload = sum(len(p) for p in r.payloads)
    return {"file": path, "bytes": len(data), "format": "sfr", "version": r.version, "model_id": r.model_hex,
            "model": _model_label(r.model_id), "base_rate": r.base_rate, "records": len(r),
            "block_records": r.block_records, "names": r.names is not None, "payload_bytes": payload,
            "bytes_per_face": len(data) / len(r) if len(r) else None}


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, for scripts.")
def info(files, as_json):
    """Print the header and layer table of .sfc FILES, or the header of gallery record files (.sfr)
    (checks every CRC)."""
    from .records import is_sfr

    failed = 0
    for path in files:
        try:
            data = read_bytes(path)
            d = records_info_dict(path, data) if is_sfr(data) else info_dict(path, data)
        except SfaceError as e:
            click.echo(f"sface: error: {path}: {e}", err=True)
            failed += 1
            continue
        if as_json:
            click.echo(json.dumps(d))
            continue
        if d.get("format") == "sfr":
            per = f", {d['bytes_per_face']:.2f} per face" if d["records"] else ""
            click.echo(f"{path}: {d['bytes']} bytes, .sfr version {d['version']}, {d['records']} faces{per}, CRCs ok")
            click.echo(f"  model      {d['model_id']} ({d['model']})")
            click.echo(f"  rates      base rate point {d['base_rate']}")
            click.echo(f"  records    {d['payload_bytes']} payload bytes, {d['block_records']} per CRC block, "
                       + ("names stored" if d["names"] else "no names"))
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
    try:
        cut = truncate(read_bytes(input), keep)
    except SfaceError as e:
        raise named(e, input) from None
    write_bytes(output, cut, force=force)


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
               "sha256": m.sha256, "bytes": m.size, "summary": m.summary, "path": str(m.path), "extends": m.extends}
        if verify and m.kind != "reference":
            row["status"] = models.verify(m)
            row["verified"] = row["status"] == "ok"
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    elif not rows:
        click.echo("no models installed")
    for r in [] if as_json else rows:
        ok = "" if "verified" not in r else f"  {'hash ok' if r['verified'] else r['status'].upper()}"
        extends = f" (+ {r['extends']})" if r["extends"] else ""
        click.echo(f"{r['name']:<18} {r['id']:<8}  sha256:{r['sha256'][:12]}  {r['bytes'] / 1e6:6.2f} MB  {r['summary']}{extends}{ok}")
    if verify and not all(r.get("verified", True) for r in rows):
        sys.exit(1)
