"""Encode an archive of photos on a Ray cluster (the optional extra `scalableface[ray]`).

    sface encode --ray [ADDRESS] photos/ --out-dir sfc/ --table gallery.parquet

Ray Data lists the inputs (local paths, or any URI pyarrow can read: s3://, gs://, hdfs://), an
actor pool of `workers` encoders (each loads the models once and keeps them for all its batches)
codes them exactly as `sface encode` does, and the results go to .sfc files and/or a Parquet gallery
table with one row per face: source, face (1 = largest; 0 for a failed input), model_id, sfc (the
file's bytes), descriptor (the 128-d vector its identity layer decodes to), error. A bad input is a
row with its error, never a failed job. `sface index build` reads the table.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import codec
from .container import parse_header
from .errors import InputError, SfaceError
from .files import expand_inputs, numbered, read_path, write_bytes

COLUMNS = ("source", "face", "model_id", "sfc", "descriptor", "error")
BATCH_SIZE = 8  # photos per call of an encoder: small, so a slow photo holds up few others


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise SfaceError("the Ray pipeline needs Ray and pyarrow: pip install 'scalableface[ray]'") from None
    return ray


def _is_uri(path: str) -> bool:
    return "://" in path


def list_inputs(paths: Sequence[str], suffixes) -> list[tuple[str, str]]:
    """(input, output-relative path) pairs as `sface encode` makes them: folders recurse, sorted."""
    from pyarrow import fs

    out = []
    for p in paths:
        if not _is_uri(p):
            out += [(src, str(rel)) for src, rel in expand_inputs([p], suffixes)[0]]
            continue
        filesystem, root = fs.FileSystem.from_uri(p)
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.Directory:
            found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
            scheme = p.split("://", 1)[0]
            out += sorted((f"{scheme}://{f.path}", str(Path(f.path).relative_to(root))) for f in found
                          if f.type == fs.FileType.File and Path(f.path).suffix.lower() in suffixes)
        else:
            out.append((p, Path(root).name))
    return out


def _read(path: str) -> bytes:
    if not _is_uri(path):
        return read_path(path)
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(inner) as f:
            return f.read()
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {path}: {e}") from None


def _write(path: str, data: bytes, force: bool) -> None:
    if not _is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data, force=force)
        return
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    filesystem.create_dir(str(Path(inner).parent), recursive=True)
    with filesystem.open_output_stream(inner) as f:
        f.write(data)


class Encoder:
    """One per worker. The models load on the first photo and stay loaded (codec's caches) for the
    worker's life, so a cluster loads them once per worker, not once per photo."""

    def __init__(self, options: dict, out_dir: Optional[str], all_faces: bool, force: bool):
        self.options, self.out_dir, self.all_faces, self.force = options, out_dir, all_faces, force

    def encode_one(self, source: str, output: str) -> list[dict]:
        data = _read(source)
        if self.all_faces:
            files = codec.encode_all(data, name=source, **self.options)
        else:
            files = [codec.encode(data, name=source, **self.options)]
        feats = codec.extract_features_many(files)
        rows = []
        for face, (sfc, descriptor) in enumerate(zip(files, feats.descriptors), 1):
            if self.out_dir is not None:
                target = str(Path(self.out_dir) / Path(output).with_suffix(".sfc"))
                _write(numbered(target, face) if self.all_faces else target, sfc, self.force)
            rows.append({"source": source, "face": face, "model_id": parse_header(sfc)[0].model_hex, "sfc": sfc,
                         "descriptor": descriptor.astype(np.float32), "error": None})
        return rows

    def __call__(self, batch: dict) -> dict:
        rows = []
        for source, output in zip(batch["source"], batch["output"]):
            try:
                rows += self.encode_one(str(source), str(output))
            except SfaceError as e:
                rows.append({"source": str(source), "face": 0, "model_id": None, "sfc": None, "descriptor": None,
                             "error": str(e)})
        return {c: [r[c] for r in rows] for c in COLUMNS}


@dataclass(frozen=True)
class Report:
    inputs: int
    faces: int
    failures: list  # (source, message)


def encode_dataset(paths: Sequence[str], *, out_dir: Optional[str] = None, table: Optional[str] = None,
                   workers: int = 2, address: Optional[str] = None, all_faces: bool = False, force: bool = False,
                   suffixes=frozenset(), **options) -> Report:
    """Encode every photo under `paths` on Ray (`address`: a running cluster's, None for a local one)
    with `options` as codec.encode takes them; .sfc files under `out_dir` laid out as `sface encode
    --out-dir` lays them out, and/or the Parquet table `table` (a folder of part files)."""
    if out_dir is None and table is None:
        raise SfaceError("the Ray pipeline needs an output: --out-dir and/or --table")
    ray = _ray()
    if table is not None and not _is_uri(table) and Path(table).exists():
        if not force:
            raise SfaceError(f"{table} exists (use --force to overwrite)")
        shutil.rmtree(table) if Path(table).is_dir() else Path(table).unlink()
    jobs = list_inputs(paths, suffixes)
    if not jobs:
        raise InputError("no input photo found")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    ds = ray.data.from_items([{"source": s, "output": o} for s, o in jobs])
    ds = ds.map_batches(Encoder, fn_constructor_kwargs={"options": options, "out_dir": out_dir, "all_faces": all_faces,
                                                        "force": force},
                        compute=ray.data.ActorPoolStrategy(size=workers), batch_size=BATCH_SIZE, num_cpus=1)
    if table is not None:
        import pyarrow.parquet as pq

        ds.write_parquet(table)
        summary = pq.read_table(table, columns=["source", "face", "error"]).to_pylist()
    else:
        summary = list(ds.select_columns(["source", "face", "error"]).iter_rows())
    failures = sorted((r["source"], r["error"]) for r in summary if r["error"] is not None)
    return Report(len(jobs), sum(r["error"] is None for r in summary), failures)


def table_entries(path: str) -> tuple[list[str], list[bytes], list[tuple[str, str]]]:
    """(names, .sfc bytes, failures) of a gallery table's rows; a row's name is its source, with
    #k for the k-th face of a photo that had more than one; rows with an error are failures."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SfaceError("reading a Parquet table needs pyarrow: pip install 'scalableface[ray]'") from None
    try:
        rows = pq.read_table(path, columns=["source", "face", "sfc", "error"]).to_pylist()
    except (OSError, ValueError) as e:
        raise InputError(f"{path} is not a readable gallery table: {e}") from None
    several = {r["source"] for r in rows if r["face"] and r["face"] > 1}
    names, datas, failures = [], [], []
    for r in rows:
        if r["error"] is not None:
            failures.append((r["source"], r["error"]))
            continue
        names.append(f"{r['source']}#{r['face']}" if r["source"] in several else r["source"])
        datas.append(r["sfc"])
    return names, datas, failures
