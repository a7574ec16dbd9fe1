"""Gallery record files (.sfr, bitstream_spec.md section 11): round trips at every rate point, equality
with the single .sfc files, a refusal per failure mode, and the CLI verbs pack, unpack, info,
extract-features and index build."""

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from scalableface import codec, container, entropy, modelset, records
from scalableface.cli import main
from scalableface.errors import BitstreamError, InputError, ModelError, SfaceError

RATES = codec.base_rates()


def sample(n=40, rate=None, seed=3):
    """(symbols, identity-only .sfc files) of n faces drawn from the model's tables."""
    rate = rate or RATES[0]
    s = codec.identity_codec(rate).sample_symbols(n, np.random.default_rng(seed))
    return s, codec.identity_files(s, base_rate=rate)


def sfc_payload(data):
    return container.parse(data).layer(container.LayerType.IDENTITY).payload


@pytest.mark.parametrize("rate", RATES)
def test_round_trip_at_every_rate_point_equals_the_sfc_files(rate):
    s, files = sample(150, rate, seed=rate)
    data = records.encode(s, base_rate=rate)
    r, got = records.symbols(data)
    assert r.base_rate == rate and len(r) == 150 and r.names is None
    assert np.array_equal(got, s)
    # the payloads are the .sfc files' identity layers byte for byte, and packing those gives the same file
    assert list(r.payloads) == [sfc_payload(f) for f in files]
    assert records.pack(files, keep_names=False) == data
    # decoded descriptors equal those of the single files exactly (the same batch through the same decoder)
    _, vectors = records.descriptors(data)
    assert np.array_equal(vectors, codec.extract_features_many(files).descriptors)
    one = np.stack([codec.extract_features(f) for f in files])  # one at a time: float32's last bits only
    assert np.allclose(vectors, one, atol=1e-6, rtol=0)
    # and unpacking gives back the identity-only files themselves (default header)
    assert records.sfc_files(data) == files


def test_bytes_per_face_meet_the_target_at_the_lowest_rate_point():
    s, files = sample(1000, RATES[0])
    data = records.encode(s, base_rate=RATES[0])
    payload = sum(len(sfc_payload(f)) for f in files)
    overhead = records.HEADER_SIZE + 1000 + 4 * -(-1000 // records.DEFAULT_BLOCK)
    assert len(data) == payload + overhead
    assert len(data) / 1000 <= 16 < np.mean([len(f) for f in files])


@pytest.mark.parametrize("block", [1, 7, 64, 65535])
def test_block_sizes_and_names(block):
    s, files = sample(20)
    names = [f"lfw/P{i // 3}/P{i // 3}_{i:04d}.sfc" for i in range(20)]
    names[5] = "ünïcode name with spaces"
    data = records.pack(files, names=names, block_records=block)
    r = records.parse(data)
    assert r.names == tuple(names) and r.block_records == block and len(r) == 20
    bare = records.pack(files, keep_names=False, block_records=block)
    assert len(bare) == records.HEADER_SIZE + sum(1 + len(p) for p in r.payloads) + 4 * -(-20 // block)
    text = "".join(n + "\n" for n in names).encode()
    assert len(data) - len(bare) == len(container.varint(len(zlib.compress(text, 9)))) + len(zlib.compress(text, 9)) + 4


def test_an_empty_gallery_is_a_valid_file():
    mid = modelset.load().entry.short_id
    for names in (None, []):
        data = records.to_bytes(mid, RATES[0], [], names)
        r, vectors = records.descriptors(data)
        assert len(r) == 0 and vectors.shape == (0, 128) and r.names == (None if names is None else ())


# ---- refusals: one per failure mode, in the order of section 11.3 ----------------------------------


@pytest.fixture(scope="module")
def good():
    s, files = sample(10)
    return records.pack(files, names=[f"f{i}.sfc" for i in range(10)], block_records=4)


def recrc(data: bytearray, end: int) -> bytearray:
    """Recompute the check field that ends at `end` (the CRC-32 of every byte before it)."""
    data[end - 4 : end] = struct.pack(">I", zlib.crc32(bytes(data[: end - 4])))
    return data


def reseal(data) -> bytes:
    """Recompute every check field of a well-framed record file (they chain: each covers all before it)."""
    d = bytearray(data)
    recrc(d, records.HEADER_SIZE)
    block, count = struct.unpack_from(">HI", d, 10)
    pos = records.HEADER_SIZE
    for start in range(0, count, block):
        for _ in range(start, min(start + block, count)):
            length, pos = container.read_varint(bytes(d), pos, 2)
            pos += length
        pos += 4
        recrc(d, pos)
    if d[4] & records.FLAG_NAMES:
        length, pos = container.read_varint(bytes(d), pos, 4)
        recrc(d, pos + length + 4)
    return bytes(d)


def header_with(good, offset, value):
    d = bytearray(good)
    d[offset] = value
    return bytes(recrc(d, records.HEADER_SIZE))


def refuses(data, match):
    with pytest.raises(BitstreamError, match=match):
        records.descriptors(bytes(data))


def test_refusals_of_the_header(good):
    refuses(b"SFC\x12", "not an .sfr file")
    refuses(b"SF", "not an .sfr file")
    refuses(b"SFR", "truncated .sfr header")
    refuses(header_with(good, 3, 0x20), "unsupported .sfr major version 2")
    refuses(good[:19], "truncated .sfr header: 20 bytes needed, 19 present")
    d = bytearray(good)
    d[5] ^= 1
    refuses(d, "header CRC mismatch")
    refuses(header_with(good, 4, 0x03), "reserved .sfr flag bits")
    refuses(header_with(good, 9, good[9] | 1), "reserved bits of the rates byte")
    refuses(header_with(good, 9, 0), "base rate point 0")
    d = bytearray(good)
    d[10:12] = b"\0\0"
    refuses(recrc(d, 20), "0 records per block")
    d = bytearray(good)
    d[12:16] = struct.pack(">I", 10**6)
    refuses(recrc(d, 20), "declares 1000000 records")


def test_a_later_minor_version_is_read(good):
    d = bytearray(good)
    d[3] = 0x17
    r = records.parse(reseal(d))
    assert r.version == "1.7" and len(r) == 10


def build(payloads, names=None, block=4, model_id=None, rate=None):
    mid = model_id or modelset.load().entry.short_id
    return bytearray(records.to_bytes(mid, rate or RATES[0], payloads, names, block))


def test_refusals_of_the_records(good):
    r = records.parse(good)
    p = list(r.payloads)
    first = records.HEADER_SIZE
    # the file ends inside a length field / a payload / a CRC (the header's count is checked first)
    with pytest.raises(BitstreamError, match="declares 10 records"):
        records.parse(good[:first])
    bare = bytes(build(p))
    last = len(bare) - 4 - 1 - len(p[-1])  # where record 10 starts
    refuses(bare[:last], "ends inside the length field of record 10")
    refuses(bare[: last + 2], r"truncated .sfr file: record 10 needs")
    refuses(bare[:-2], r"ends inside the CRC of block 3 \(records 9..10\)")
    # a length field that is cut, non-minimal, over 2 bytes, 0 or over the limit
    d = build([b"\x80"] + p[1:])  # not a code, but framing comes first
    d[first] = 0x81  # length 1 with the continuation bit: the next byte (0x80) continues it too
    d[first + 1] = 0x80
    refuses(d, "longer than 2 bytes")
    d = build(p)
    d[first : first + 1] = bytes([0x80 | len(p[0]), 0x00])
    refuses(d, "non-minimal length field of record 1")
    d = build(p)
    d[first] = 0
    refuses(d, "record 1 has length 0")
    d = build(p)
    d[first : first + 1] = bytes([0x81, 0x10])  # 2049
    refuses(d, "record 1 has length 2049")
    # a corrupted payload, and two blocks swapped (each block's CRC chains the ones before it)
    d = bytearray(good)
    d[first + 2] ^= 0x10
    refuses(d, r"CRC mismatch in block 1 \(records 1..4\)")
    swapped = bytearray(good)
    size1 = sum(1 + len(y) for y in p[:4]) + 4
    size2 = sum(1 + len(y) for y in p[4:8]) + 4
    swapped[first : first + size1 + size2] = good[first + size1 : first + size1 + size2] + good[first : first + size1]
    refuses(swapped, "CRC mismatch in block 1")
    # bytes after the last section
    refuses(good + b"\0", "trailing bytes")


def test_refusals_of_the_names(good):
    r = records.parse(good)
    no_names = build(list(r.payloads))
    refuses(records.to_bytes(r.model_id, r.base_rate, r.payloads, None, 4)[:-1], "CRC of block 3")
    section_at = len(no_names)
    refuses(good[: section_at + 2], "truncated .sfr file: the names need")
    d = bytearray(good)
    d[section_at + 3] ^= 1
    refuses(d, "CRC mismatch in the names")

    def with_names(raw_section):
        d = bytearray(no_names)
        d[4] |= records.FLAG_NAMES
        return reseal(d + container.varint(len(raw_section)) + raw_section + b"\0\0\0\0")

    assert records.parse(bytes(with_names(zlib.compress("".join(f"f{i}.sfc\n" for i in range(10)).encode())))).names[3] == "f3.sfc"
    refuses(with_names(b"not zlib at all"), "not a zlib stream")
    refuses(with_names(zlib.compress(b"a\nb\n")), "holds 2 line-ended names for 10 records")
    refuses(with_names(zlib.compress(b"a\n" * 9 + b"b")), "holds 9 line-ended names")
    refuses(with_names(zlib.compress(b"\xff\n" * 10)), "not UTF-8")
    refuses(with_names(zlib.compress(b"a\n" * 10) + b"x"), "not one whole zlib stream")
    refuses(with_names(zlib.compress(b"a" * 50000 + b"\n" * 10)), "over 40960 bytes")


def test_refusals_that_need_the_model(good):
    r = records.parse(good)
    d = build([r.payloads[0] + b"\0"] + list(r.payloads[1:]))  # padded: framing and CRC are right
    refuses(d, "record 1: the payload is not the code of")
    with pytest.raises(ModelError, match="not installed|unknown"):
        records.descriptors(bytes(build(list(r.payloads), model_id=b"\0\1\2\3")))
    with pytest.raises(BitstreamError, match="base rate point 15"):
        records.descriptors(bytes(build(list(r.payloads), rate=15)))


def test_every_truncation_and_every_bit_flip_is_refused(good):
    for n in range(len(good)):
        with pytest.raises(BitstreamError):
            records.parse(good[:n])
    for i in range(len(good)):
        for bit in range(8):
            d = bytearray(good)
            d[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                records.parse(bytes(d))


def test_pack_refuses_mixed_rate_points_and_reports_bad_files():
    _, a = sample(3, RATES[0])
    _, b = sample(2, RATES[1])
    with pytest.raises(InputError, match="input 4: coded with model .* at base rate point 2"):
        records.pack(a + b)
    errors = []
    data = records.pack(a + [b"junk", a[0][:-1]] + b, errors=errors)
    assert [e[0] for e in errors] == ["input 4", "input 5", "input 6", "input 7"]
    assert "not an .sfc file" in errors[0][1] and "CRC" in errors[1][1] or "truncated" in errors[1][1]
    assert records.parse(data).names == ("input 1", "input 2", "input 3")
    padded = container.pack(container.parse(a[0]).header, [(container.LayerType.IDENTITY, sfc_payload(a[0]) + b"\0")])
    errors = []
    records.pack([padded] + a, errors=errors)
    assert errors == [("input 1", f"identity layer: {entropy.NOT_CODE.format(n=32)}")]


# ---- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    s, files = sample(12)
    paths = []
    for i, f in enumerate(files):
        p = tmp_path / "sfc" / ("ann" if i < 6 else "bob") / f"{i:02d}.sfc"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f)
        paths.append(p)
    return tmp_path, paths


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])  # .stdout and .stderr apart (click 8.2)


def test_cli_pack_unpack_info_extract(folder, monkeypatch):
    root, paths = folder
    monkeypatch.chdir(root)
    r = run("pack", "sfc", "-o", "g.sfr")
    assert r.exit_code == 0, r.stderr
    assert "12 faces" in r.stderr
    assert run("pack", "sfc", "-o", "g.sfr").exit_code == 1  # never overwritten without --force
    assert run("pack", "sfc", "-o", "g.sfr", "--force", "--no-names", "--block-records", "5").exit_code == 0
    info = json.loads(run("info", "--json", "g.sfr").stdout)
    assert info["records"] == 12 and info["block_records"] == 5 and not info["names"] and info["format"] == "sfr"
    run("pack", "sfc", "-o", "g.sfr", "--force")
    feats = json.loads(run("extract-features", "g.sfr").stdout)
    single = json.loads(run("extract-features", "sfc").stdout)
    assert feats == single  # names and descriptors, row for row
    r = run("unpack", "g.sfr", "--out-dir", "out")
    assert r.exit_code == 0, r.stderr
    for p in paths:
        assert (root / "out" / p.relative_to(root)).read_bytes() == p.read_bytes()
    r = run("unpack", "g.sfr", "--out-dir", "out")
    assert r.exit_code == 1 and "exists" in r.stderr
    assert "pack" in run("--help").stdout and "unpack" in run("--help").stdout
    assert "CRC-32" in run("pack", "--help").stdout


def test_cli_pack_reports_a_bad_file_and_writes_the_rest(folder, monkeypatch):
    root, paths = folder
    monkeypatch.chdir(root)
    paths[3].write_bytes(paths[3].read_bytes()[:-1])
    r = run("pack", "sfc", "-o", "g.sfr")
    assert r.exit_code == 1 and "sfc/ann/03.sfc" in r.stderr
    assert len(records.parse((root / "g.sfr").read_bytes())) == 11


def test_cli_damaged_record_file_is_one_line(folder, monkeypatch):
    root, _ = folder
    monkeypatch.chdir(root)
    run("pack", "sfc", "-o", "g.sfr")
    d = bytearray((root / "g.sfr").read_bytes())
    d[30] ^= 4
    (root / "bad.sfr").write_bytes(bytes(d))
    for cmd in (["info"], ["extract-features"], ["unpack", "--out-dir", "x"]):
        r = run(*cmd, "bad.sfr")
        assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "bad.sfr" in r.stderr and "CRC" in r.stderr, r.stderr


def test_cli_index_build_from_a_record_file_equals_from_the_sfc_files(folder, monkeypatch):
    pytest.importorskip("faiss")
    root, paths = folder
    monkeypatch.chdir(root)
    run("pack", "sfc", "-o", "g.sfr")
    assert run("index", "build", "sfc", "-o", "a.sfx", "--label-folders").exit_code == 0
    assert run("index", "build", "g.sfr", "-o", "b.sfx", "--label-folders").exit_code == 0
    sa = json.loads(run("search", "a.sfx", "sfc/bob", "--json", "-k", "3").stdout)
    sb = json.loads(run("search", "b.sfx", "sfc/bob", "--json", "-k", "3").stdout)
    assert sa == sb and sa[0]["matches"][0]["label"] == "bob"
    r = run("index", "add", "b.sfx", "g.sfr")
    assert r.exit_code == 0 and "0 added, 12 already present" in r.stderr


def test_record_commands_do_not_import_torch(folder, tmp_path):
    root, _ = folder
    code = (
        "import sys, os; from scalableface.cli import main\n"
        f"os.chdir({str(root)!r})\n"
        "for argv in (['pack', 'sfc', '-o', 'g.sfr'], ['info', 'g.sfr'], ['extract-features', 'g.sfr', '-o', 'f.npy']):\n"
        "    sys.argv = ['sface'] + argv\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, argv\n"
        "assert 'torch' not in sys.modules and 'dlib' not in sys.modules, 'heavy import'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_eval_counts_real_bytes():
    from scalableface.eval.records import gallery_bytes

    s, files = sample(100)
    g = gallery_bytes(s, RATES[0], [f"sfc/{i}.sfc" for i in range(100)])
    payload = np.mean([len(sfc_payload(f)) for f in files])
    assert g["payload"] == pytest.approx(payload) and g["sfc_file"] == pytest.approx(payload + 20)
    assert g["gallery_bytes_per_face"] == pytest.approx(payload + 1 + (20 + 4 * 2) / 100)
    assert g["sfr_block1"] == pytest.approx(payload + 1 + 4 + 0.2) and g["sfr_with_names"] > g["sfr_block64"]
    assert g["information"] < g["payload"]
