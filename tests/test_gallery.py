"""Gallery search: build/add/search/save/load, equality with brute force, refusals, and the CLI."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import scalableface as sf
from scalableface import codec, container
from scalableface.cli import main
from scalableface.errors import InputError, ModelError, SfaceError

faiss = pytest.importorskip("faiss", reason="gallery search needs the extra scalableface[search] (faiss-cpu)")

from scalableface.gallery import Gallery  # noqa: E402  (after the skip: it needs faiss)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """200 identity-only .sfc files of symbols drawn from the model's tables, in two folders."""
    rng = np.random.default_rng(7)
    symbols = codec.identity_codec().sample_symbols(200, rng)
    files = codec.identity_files(symbols)
    root = tmp_path_factory.mktemp("gallery")
    paths = []
    for i, data in enumerate(files):
        p = root / ("ann" if i < 100 else "bob") / f"{i:03d}.sfc"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths.append(str(p))
    return root, paths


def brute_force(paths, probes, k):
    gallery = np.stack([sf.extract_features(p) for p in paths])  # the reference, one file at a time
    q = np.stack([sf.extract_features(p) for p in probes])
    d = np.linalg.norm(q[:, None] - gallery[None], axis=2)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def test_batched_features_equal_the_reference(faces):
    _, paths = faces
    feats = codec.extract_features_many(paths)
    assert feats.index == list(range(len(paths))) and not feats.failures
    identity = codec.identity_codec()
    payloads = [container.parse(open(p, "rb").read()).layer(container.LayerType.IDENTITY).payload for p in paths]
    symbols, canonical = identity.decode_symbols_many(payloads)
    assert canonical.all() and np.array_equal(symbols, np.stack([identity.decode_symbols(p) for p in payloads]))
    _, canonical = identity.decode_symbols_many([payloads[0] + b"\x00", payloads[1]])
    assert canonical.tolist() == [False, True]  # padding is refused by the batch path too
    # the MLP on a batch rounds differently from one row at a time, by float32's last bits only
    assert np.allclose(feats.descriptors, np.stack([sf.extract_features(p) for p in paths]), atol=1e-6, rtol=0)


def test_build_add_save_load_search_equals_brute_force(faces, tmp_path):
    _, paths = faces
    g = Gallery.build(paths[:150])
    assert g.add(paths[150:]) == 50 and len(g) == 200 and g.kind == "exact"
    g.save(tmp_path / "p.sfx")
    g = Gallery.load(tmp_path / "p.sfx")
    probes = paths[::17]
    results = g.search(probes, k=5)
    order, dist = brute_force(paths, probes, 5)
    for matches, o, d in zip(results, order, dist):
        assert [m.file for m in matches] == [paths[i] for i in o]
        assert np.allclose([m.distance for m in matches], d, atol=1e-5)
        assert [m.same for m in matches] == list(d < g.threshold)
    assert results[0][0].distance < 1e-6  # a probe finds itself


def test_approximate_index_is_recorded_and_exhaustive_when_probing_every_list(faces, tmp_path):
    _, paths = faces
    g = Gallery.build(paths, approximate=True)
    assert g.kind == "approximate" and g.index.nlist <= g.nprobe
    g.save(tmp_path / "a.sfx")
    g = Gallery.load(tmp_path / "a.sfx")
    assert g.kind == "approximate"
    order, _ = brute_force(paths, paths[:10], 3)
    assert [[m.file for m in ms] for ms in g.search(paths[:10], k=3)] == [[paths[i] for i in o] for o in order]


def test_corrupted_index_is_refused(faces, tmp_path):
    _, paths = faces
    Gallery.build(paths[:20]).save(tmp_path / "p.sfx")
    data = bytearray((tmp_path / "p.sfx").read_bytes())
    for pos in (20, len(data) // 2, len(data) - 1):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        (tmp_path / "bad.sfx").write_bytes(bytes(bad))
        with pytest.raises(InputError, match="corrupted"):
            Gallery.load(tmp_path / "bad.sfx")
    r = CliRunner().invoke(main, ["search", str(tmp_path / "bad.sfx"), paths[0]])
    assert r.exit_code == 1 and "corrupted" in r.output and "Traceback" not in r.output
    (tmp_path / "no.sfx").write_bytes(b"not an index")
    with pytest.raises(InputError, match="not an sface index"):
        Gallery.load(tmp_path / "no.sfx")


def _other_model(data: bytes) -> bytes:
    f = container.parse(data)
    h = f.header
    other = container.Header(model_id=b"\xde\xad\xbe\xef", crop_size=h.crop_size, base_rate=h.base_rate, quality=0)
    return container.pack(other, [(container.LayerType.IDENTITY, f.layer(container.LayerType.IDENTITY).payload)])


def test_files_and_indexes_of_another_model_are_refused(faces, tmp_path):
    _, paths = faces
    g = Gallery.build(paths[:10])
    stranger = tmp_path / "stranger.sfc"
    stranger.write_bytes(_other_model(open(paths[0], "rb").read()))
    errors = []
    assert g.add([str(stranger), paths[10]], errors=errors) == 1
    assert errors[0][0] == str(stranger) and "coded with model deadbeef" in errors[0][1]
    with pytest.raises(InputError, match="coded with model deadbeef"):
        g.search([str(stranger)])
    foreign = Gallery("other-model", b"\xde\xad\xbe\xef", 0.5, faiss.IndexFlatL2(128))
    foreign.save(tmp_path / "foreign.sfx")
    with pytest.raises(ModelError, match="built with model other-model .deadbeef., which is not installed"):
        Gallery.load(tmp_path / "foreign.sfx")


def test_cli_build_info_add_search(faces, tmp_path, photo):
    root, paths = faces
    astro = tmp_path / "astro" / "astronaut.sfc"
    astro.parent.mkdir()
    astro.write_bytes(sf.encode(str(photo), layers="identity"))
    out = tmp_path / "people.sfx"
    r = CliRunner().invoke(main, ["index", "build", str(root / "ann"), "-o", str(out), "--label-folders"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["index", "add", str(out), str(root), str(astro), "--label-folders"])
    assert r.exit_code == 0, r.output
    assert "101 added, 100 already present" in r.output
    info = json.loads(CliRunner().invoke(main, ["index", "info", "--json", str(out)]).output)
    assert info["entries"] == 201 and info["kind"] == "exact" and info["labelled"] == 201
    assert info["model_id"] == codec.models.default_model().short_id.hex() and info["space"]["dims"] == 128
    r = CliRunner().invoke(main, ["search", str(out), str(photo), paths[150], "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    found = json.loads(r.output.splitlines()[0])
    assert found[0]["matches"][0]["file"] == str(astro) and found[0]["matches"][0]["same"]
    assert found[0]["matches"][0]["label"] == "astro"
    assert found[1]["matches"][0]["file"] == paths[150] and found[1]["matches"][0]["label"] == "bob"
    r = CliRunner().invoke(main, ["search", str(out), str(photo), "--csv", "-k", "1", "--threshold", "0"])
    assert r.output.splitlines()[1] == f"{photo},1,{astro},astro,{found[0]['matches'][0]['distance']:.6f},false"


def test_cli_reports_bad_inputs_by_name(faces, tmp_path):
    _, paths = faces
    bad = tmp_path / "bad.sfc"
    bad.write_bytes(b"SFC garbage")
    r = CliRunner().invoke(main, ["index", "build", paths[0], str(bad), "-o", str(tmp_path / "p.sfx")])
    assert r.exit_code == 1 and f"{bad}:" in r.output and "1 entries" in r.output and "Traceback" not in r.output


def test_without_faiss_the_extra_is_named(monkeypatch, faces, tmp_path):
    _, paths = faces
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(SfaceError, match=r"scalableface\[search\]"):
        Gallery.build(paths[:2])
    r = CliRunner().invoke(main, ["index", "build", paths[0], "-o", str(tmp_path / "p.sfx")])
    assert r.exit_code == 1 and "pip install 'scalableface[search]'" in r.output
