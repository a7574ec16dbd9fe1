"""Search a gallery of faces by the descriptors in their identity layers (no pixel is decoded).

    import scalableface as sf
    g = sf.Gallery.build(["a.sfc", "b.sfc"], labels=["ann", "bob"])
    g.add(["c.sfc"])
    matches = g.search(["probe.jpg"], k=5)[0]        # nearest first: file, label, distance, same
    g.save("people.sfx"); g = sf.Gallery.load("people.sfx")

FAISS does the search (the optional extra `scalableface[search]`, i.e. faiss-cpu). The index is exact
(every distance computed) below APPROXIMATE_FROM entries and an inverted-file index (IVF, the
probed lists searched exhaustively) from there on, or whenever asked for.

An index file (.sfx) is MAGIC, an 8-byte big-endian length, a JSON header (model name and id,
descriptor space, index kind and parameters, the threshold, the file list with labels), the FAISS
index as faiss.serialize_index writes it, and the SHA-256 of everything before it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import codec, models, modelset
from .canonical import DESCRIPTOR_DIM
from .errors import InputError, ModelError, SfaceError, named
from .files import expand_inputs, read_bytes, write_bytes

MAGIC = b"SFX1"
FORMAT_VERSION = 1
SPACE = {"recognizer": "dlib-resnet-v1", "dims": DESCRIPTOR_DIM, "descriptor": "identity layer, decoded"}
# Past this many entries an exact search of one query costs more than a few milliseconds on one core
# (python -m scalableface.eval.search_bench measures both kinds at 1,000,000).
APPROXIMATE_FROM = 200_000
# Inverted lists searched per query. At 1,000,000 entries (1,000 lists; search_bench speed) the nearest
# entry of a probe near an enrolled face is always found; for random faces recall@1 is 0.93.
NPROBE = 32
_TRAIN_PER_LIST = 64  # training points per inverted list; more change the centroids little
_HASH_BYTES = 32


def _faiss():
    try:
        import faiss
    except ImportError:
        raise SfaceError("gallery search needs FAISS: pip install 'scalableface[search]'") from None
    return faiss


@dataclass(frozen=True)
class Match:
    file: str
    label: Optional[str]
    distance: float
    same: bool  # distance below the threshold


def _lists_for(n: int) -> int:
    """Inverted lists for n entries: about sqrt(n) (training and adding stay minutes, not hours, on
    one core at 10**6), with enough entries per list to train on."""
    return max(1, min(int(math.sqrt(n)), n // 39))


class Gallery:
    """Descriptors of many faces, their files and labels, in a FAISS index."""

    def __init__(self, model: str, model_id: bytes, threshold: float, index, files=(), labels=(), nprobe: int = NPROBE):
        self.model, self.model_id, self.threshold = model, model_id, threshold
        self.index, self.files, self.labels, self.nprobe = index, list(files), list(labels), nprobe

    # ---- building ----------------------------------------------------------------------------

    @classmethod
    def empty(cls, model: Optional[str] = None) -> "Gallery":
        ms = modelset.load(model)
        return cls(ms.entry.name, ms.entry.short_id, ms.base.threshold, _faiss().IndexFlatL2(DESCRIPTOR_DIM))

    @classmethod
    def build(cls, sources: Sequence, *, names: Optional[Sequence[str]] = None, labels: Optional[Sequence] = None,
              model: Optional[str] = None, approximate: Optional[bool] = None, errors: Optional[list] = None) -> "Gallery":
        """A gallery of .sfc files (paths or bytes; `names` name bytes sources). `approximate`: True
        or False forces the index kind, None chooses it by size. See add() for `errors`."""
        g = cls.empty(model)
        g.add(sources, names=names, labels=labels, errors=errors, approximate=approximate)
        return g

    @property
    def kind(self) -> str:
        return "exact" if isinstance(self.index, _faiss().IndexFlat) else "approximate"

    def __len__(self) -> int:
        return len(self.files)

    def add(self, sources: Sequence, *, names: Optional[Sequence[str]] = None, labels: Optional[Sequence] = None,
            errors: Optional[list] = None, approximate: Optional[bool] = None) -> int:
        """Add .sfc files of this gallery's model (or photos, coded with it); returns how many were
        added. An input that fails (unreadable, corrupted, of another model) raises, or with an `errors` list is appended to it as
        (name, message) and skipped. Past APPROXIMATE_FROM entries an exact index becomes approximate
        unless `approximate` is False."""
        names = codec.source_names(sources, names)
        labels = [None] * len(sources) if labels is None else list(labels)
        feats = codec.extract_features_many(sources, model=self.model_id, names=names)
        _report(feats.failures, names, errors)
        self.add_descriptors(feats.descriptors, [names[k] for k in feats.index], [labels[k] for k in feats.index], approximate)
        return len(feats.index)

    def add_records(self, source, *, name: Optional[str] = None, label_folders: bool = False, skip=(),
                    approximate: Optional[bool] = None) -> int:
        """Add every face of a gallery record file (.sfr: a path, its bytes or records.Records),
        decoded in one vectorised pass; entries are named by the names stored in it (else NAME#k)
        and, with `label_folders`, labelled by their folder. Names in `skip` are left out. Returns how
        many were added. A damaged file, or one of another model, raises and adds nothing."""
        from . import records

        name = name or (str(source) if isinstance(source, (str, Path)) else "records")
        try:
            r = source if isinstance(source, records.Records) else records.parse(
                read_bytes(str(source)) if isinstance(source, (str, Path)) else bytes(source))
            if r.model_id != self.model_id:
                raise InputError(f"coded with model {r.model_hex}, not {self.model_id.hex()} as the index")
            r, vectors = records.descriptors(r)
        except SfaceError as e:
            raise named(e, name) from None
        entry_names = records.record_names(r, name)
        keep = [k for k, n in enumerate(entry_names) if n not in skip]
        files = [entry_names[k] for k in keep]
        labels = [Path(n.split("#")[0]).parent.name or None for n in files] if label_folders else [None] * len(files)
        self.add_descriptors(vectors[keep], files, labels, approximate)
        return len(keep)

    def add_descriptors(self, vectors: np.ndarray, files: list, labels: list, approximate: Optional[bool] = None) -> None:
        """Add entries by their descriptors (N x 128, in this model's space, e.g. a gallery table's column)."""
        vectors = np.ascontiguousarray(vectors, np.float32)
        total = len(self.files) + len(vectors)
        if self.kind == "exact" and (approximate or approximate is None and total >= APPROXIMATE_FROM):
            old = self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else np.zeros((0, DESCRIPTOR_DIM), np.float32)
            self.index = self._ivf(np.concatenate([old, vectors]))
        elif len(vectors):
            self.index.add(vectors)
        self.files += files
        self.labels += labels

    def _ivf(self, vectors: np.ndarray):
        """An IVF index trained on (a sample of) `vectors` and holding all of them."""
        faiss = _faiss()
        if len(vectors) == 0:
            raise InputError("an approximate index needs entries to train on")
        lists = _lists_for(len(vectors))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(DESCRIPTOR_DIM), DESCRIPTOR_DIM, lists)
        sample = vectors
        if len(vectors) > lists * _TRAIN_PER_LIST:
            sample = vectors[np.random.default_rng(0).choice(len(vectors), lists * _TRAIN_PER_LIST, replace=False)]
        index.train(sample)
        index.add(vectors)
        return index

    # ---- searching ---------------------------------------------------------------------------

    def search_descriptors(self, descriptors: np.ndarray, k: int = 5, threshold: Optional[float] = None) -> list[list[Match]]:
        """The k nearest entries of each descriptor (M x 128), nearest first."""
        if k < 1:
            raise SfaceError("k must be at least 1")
        threshold = self.threshold if threshold is None else threshold
        q = np.ascontiguousarray(np.atleast_2d(descriptors), np.float32)
        if self.kind == "approximate":
            self.index.nprobe = self.nprobe
        squared, ids = self.index.search(q, min(k, max(1, len(self))))
        out = []
        for row_d, row_i in zip(squared, ids):
            dist = np.sqrt(np.maximum(row_d, 0))
            out.append([Match(self.files[i], self.labels[i], float(d), bool(d < threshold))
                        for d, i in zip(dist, row_i) if i >= 0])
        return out

    def search(self, probes: Sequence, k: int = 5, *, threshold: Optional[float] = None,
               names: Optional[Sequence[str]] = None, errors: Optional[list] = None) -> list[list[Match]]:
        """The k nearest entries of each probe (.sfc file of this model or photo; paths or bytes),
        nearest first, `same` at the model's threshold unless one is given. A probe that fails raises,
        or with an `errors` list is appended to it as (name, message) and gets []."""
        names = codec.source_names(probes, names)
        feats = codec.extract_features_many(probes, model=self.model_id, names=names)
        _report(feats.failures, names, errors)
        found = self.search_descriptors(feats.descriptors, k, threshold) if feats.index else []
        out: list[list[Match]] = [[] for _ in probes]
        for pos, matches in zip(feats.index, found):
            out[pos] = matches
        return out

    # ---- the index file ----------------------------------------------------------------------

    def header(self) -> dict:
        h = {"format": FORMAT_VERSION, "model": self.model, "model_id": self.model_id.hex(), "space": SPACE,
             "kind": self.kind, "threshold": self.threshold, "entries": len(self), "files": self.files, "labels": self.labels}
        if self.kind == "approximate":
            h |= {"lists": int(self.index.nlist), "nprobe": self.nprobe}
        return h

    def to_bytes(self) -> bytes:
        head = json.dumps(self.header()).encode()
        body = MAGIC + len(head).to_bytes(8, "big") + head + _faiss().serialize_index(self.index).tobytes()
        return body + hashlib.sha256(body).digest()

    def save(self, path: str, *, force: bool = False) -> None:
        write_bytes(str(path), self.to_bytes(), force=force)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "index") -> "Gallery":
        """Refuses a file that is not an index, is corrupted, or holds another descriptor space."""
        head, index_bytes = _unpack(data, name)
        if head.get("space") != SPACE:
            raise InputError(f"{name} holds descriptors of another space ({head.get('space')}), not {SPACE}")
        index = _faiss().deserialize_index(np.frombuffer(index_bytes, np.uint8))
        if index.ntotal != len(head["files"]) or index.d != DESCRIPTOR_DIM:
            raise InputError(f"{name}: the index and its file list disagree")
        return cls(head["model"], bytes.fromhex(head["model_id"]), float(head["threshold"]), index,
                   head["files"], head["labels"], int(head.get("nprobe", NPROBE)))

    @classmethod
    def load(cls, path: str) -> "Gallery":
        """An index file, refused when corrupted or when its model is not installed (its entries and
        probes could not be decoded)."""
        g = cls.from_bytes(read_bytes(str(path)), str(path))
        try:
            models.find(g.model_id)
        except ModelError:
            raise ModelError(f"{path} was built with model {g.model} ({g.model_id.hex()}), which is not installed") from None
        return g


def _report(failures: list, names: list, errors: Optional[list]) -> None:
    """Raise the first failure, or record them all in `errors`."""
    for k, message in failures:
        if errors is None:
            raise InputError(f"{names[k]}: {message}")
        errors.append((names[k], message))


def _unpack(data: bytes, name: str) -> tuple[dict, bytes]:
    if data[:4] != MAGIC:
        raise InputError(f"{name} is not an sface index (.sfx) file")
    if len(data) < 12 + _HASH_BYTES or hashlib.sha256(data[:-_HASH_BYTES]).digest() != data[-_HASH_BYTES:]:
        raise InputError(f"{name} is corrupted: its integrity hash does not match")
    size = int.from_bytes(data[4:12], "big")
    try:
        head = json.loads(data[12 : 12 + size])
        if head["format"] != FORMAT_VERSION:
            raise InputError(f"{name} is index format {head['format']}; this sface reads {FORMAT_VERSION}")
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{name} has an unreadable header") from None
    return head, data[12 + size : -_HASH_BYTES]


def info(path: str) -> dict:
    """The header of an index file without the file list, and its size; checks the hash, needs no FAISS."""
    data = read_bytes(str(path))
    head, _ = _unpack(data, str(path))
    labels = head.pop("labels")
    head.pop("files")
    return {"file": str(path), "bytes": len(data), "labelled": sum(l is not None for l in labels)} | head


def collect(paths: Sequence[str], *, label_folders: bool = False) -> tuple[list, list[str], list, list, list]:
    """(sources, names, labels, failures, record_files) for building an index: .sfc files, folders of
    them (recursing), and Parquet gallery tables (a .parquet file, or a folder of them as the Ray
    pipeline writes one), whose failed rows are failures; gallery record files (.sfr, also found in
    folders) are listed apart, for add_records. With `label_folders`, an entry's label is its folder's name."""
    sources, names, failures, record_files = [], [], [], []
    for p in paths:
        path = Path(p)
        if path.suffix.lower() == ".parquet" or path.is_dir() and any(path.glob("*.parquet")):
            from .distributed import table_entries

            table_names, datas, bad = table_entries(p)
            sources += datas
            names += table_names
            failures += bad
        else:
            found = [src for src, _ in expand_inputs([p], {".sfc", ".sfr"})[0]]
            for src in found:
                suffix = Path(src).suffix.lower()
                if suffix == ".sfr" or suffix != ".sfc" and _starts_with(src, b"SFR"):
                    record_files.append(src)
                else:
                    sources.append(src)
                    names.append(src)
    labels = [Path(n.split("#")[0]).parent.name or None for n in names] if label_folders else [None] * len(names)
    return sources, names, labels, failures, record_files


def _starts_with(path: str, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False  # reported when it is read
