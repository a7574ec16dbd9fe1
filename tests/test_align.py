"""Face detection, alignment and paste-back, on images made here or shipped by scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

dlib = pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")

from scalableface import align as A  # noqa: E402
from scalableface.dlib_files import dlib_model_path  # noqa: E402
from scalableface.errors import InputError, ModelError  # noqa: E402
from scalableface.images import save_image  # noqa: E402


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def aligned(astronaut) -> A.AlignedFace:
    return A.align(astronaut)


def test_astronaut_aligns(aligned):
    assert aligned.crop.shape == (A.CROP_SIZE, A.CROP_SIZE, 3)
    assert aligned.crop.dtype == np.uint8
    assert aligned.method == "hog"
    assert aligned.transform.shape == (2, 3) and aligned.transform.dtype == np.float64
    assert aligned.landmarks.shape == (5, 2)
    left, top, right, bottom = aligned.box
    assert 150 < left < right < 300 and 50 < top < bottom < 200
    # The landmarks land near the template points in the crop.
    in_crop = A.apply_transform(A.invert_transform(aligned.transform), aligned.landmarks)
    assert np.abs(in_crop - A.template_points()).max() < 4.0
    # A face, not a flat patch.
    assert aligned.crop.std() > 20


def test_matches_dlib_get_face_chip(astronaut, aligned):
    rect = dlib.rectangle(*aligned.box)
    shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in aligned.landmarks])
    reference = dlib.get_face_chip(astronaut, shape, size=A.CROP_SIZE, padding=A.PADDING)
    difference = np.abs(aligned.crop.astype(np.float64) - reference.astype(np.float64))
    assert difference.mean() <= 1.0
    assert difference.max() <= 2


def test_matches_dlib_with_pyramid(astronaut):
    """A face shrunk more than 2x goes through dlib's image pyramid: same chip."""
    big = np.asarray(Image.fromarray(astronaut).resize((1400, 1400), Image.Resampling.BILINEAR))
    big = np.ascontiguousarray(big)
    face = A.align(big)
    assert np.sqrt(np.linalg.det(face.transform[:, :2])) > 2.0
    rect = dlib.rectangle(*face.box)
    shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in face.landmarks])
    reference = dlib.get_face_chip(big, shape, size=A.CROP_SIZE, padding=A.PADDING)
    difference = np.abs(face.crop.astype(np.float64) - reference.astype(np.float64))
    assert difference.mean() <= 1.5  # dlib truncates at each of 2 steps, we round


@pytest.mark.parametrize("angle, scale", [(25, 1.3), (-30, 0.8)])
def test_rotated_and_scaled_gives_the_same_crop(astronaut, aligned, angle, scale):
    side = int(512 * scale)
    photo = Image.fromarray(astronaut).resize((side, side), Image.Resampling.BICUBIC)
    photo = photo.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    face = A.align(np.asarray(photo))
    difference = np.abs(face.crop.astype(np.float64) - aligned.crop.astype(np.float64))
    assert difference.mean() < 6.0
    # The recovered rotation and scale undo the ones applied.
    step = np.sqrt(np.linalg.det(face.transform[:, :2])) / np.sqrt(np.linalg.det(aligned.transform[:, :2]))
    assert step == pytest.approx(scale, rel=0.08)
    turn = np.degrees(np.arctan2(face.transform[1, 0], face.transform[0, 0]))
    turn0 = np.degrees(np.arctan2(aligned.transform[1, 0], aligned.transform[0, 0]))
    assert turn - turn0 == pytest.approx(-angle, abs=4.0)


def test_no_face_raises_input_error_naming_the_file(tmp_path):
    path = tmp_path / "coins.png"
    save_image(skimage_data.coins(), path)
    with pytest.raises(InputError, match="no face found in .*coins.png"):
        A.align(path)
    flat = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(InputError, match="no face found in grey.png"):
        A.align(flat, name="grey.png")
    assert A.detect(flat) == []


def test_fallback_box(tmp_path):
    flat = np.full((250, 250, 3), 128, np.uint8)
    face = A.align(flat, centred=True)
    assert face.method == "fallback"
    assert face.crop.shape == (128, 128, 3)
    left, top, right, bottom = face.box
    assert right - left + 1 == 105 and 0 < left and right < 249
    # The chip is about as large as a HOG box's chip would be on LFW.
    span = np.sqrt(np.linalg.det(face.transform[:, :2])) * 127
    assert 0.8 * 105 < span < 1.7 * 105


def test_face_at_the_border_is_padded(astronaut, aligned):
    x0, y0 = 190, 90
    photo = np.ascontiguousarray(astronaut[y0:, x0:])
    face = A.align(photo)
    assert face.crop.shape == (128, 128, 3)
    np.testing.assert_allclose(face.landmarks + [x0, y0], aligned.landmarks, atol=2.0)
    # The crop reaches past the top-left corner: those pixels repeat the corner pixel.
    gx, gy = np.meshgrid(np.arange(128), np.arange(128))
    mapped = A.apply_transform(face.transform, np.stack([gx.ravel(), gy.ravel()], axis=1))
    outside = (mapped[:, 0] < 0) & (mapped[:, 1] < 0)
    assert outside.sum() > 100
    np.testing.assert_array_equal(face.crop.reshape(-1, 3)[outside], np.broadcast_to(photo[0, 0], (outside.sum(), 3)))
    # Inside the photo the crop is exactly what the same transform gives on the full photo.
    shifted = face.transform + np.array([[0, 0, x0], [0, 0, y0]])
    full = A.warp_crop(astronaut, shifted, 128)
    inside = (mapped[:, 0] >= 0) & (mapped[:, 1] >= 0)
    np.testing.assert_array_equal(face.crop.reshape(-1, 3)[inside], full.reshape(-1, 3)[inside])


def test_all_faces_returns_a_list_largest_first(astronaut):
    faces = A.align(astronaut, all_faces=True)
    assert isinstance(faces, list) and len(faces) >= 1
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_align_reads_paths_and_bytes(tmp_path, astronaut, aligned):
    path = tmp_path / "astronaut.png"
    save_image(astronaut, path)
    from_path = A.align(str(path))
    from_bytes = A.align(path.read_bytes())
    np.testing.assert_array_equal(from_path.crop, aligned.crop)
    np.testing.assert_array_equal(from_bytes.crop, aligned.crop)


def test_paste_back_of_the_unmodified_crop_keeps_the_photo(astronaut, aligned):
    pasted = A.paste_back(astronaut, aligned.crop, aligned.transform)
    assert pasted.shape == astronaut.shape and pasted.dtype == np.uint8
    assert pasted is not astronaut
    left, top, right, bottom = aligned.box
    region = (slice(top, bottom + 1), slice(left, right + 1))
    difference = np.abs(pasted[region].astype(np.float64) - astronaut[region].astype(np.float64))
    assert difference.mean() < 3.0
    # Far from the crop nothing changes.
    corners = A.apply_transform(aligned.transform, [(0, 0), (127, 0), (0, 127), (127, 127)])
    x_max, y_max = corners.max(axis=0)
    np.testing.assert_array_equal(pasted[int(y_max) + 2 :], astronaut[int(y_max) + 2 :])
    np.testing.assert_array_equal(pasted[:, int(x_max) + 2 :], astronaut[:, int(x_max) + 2 :])


def test_paste_back_feathers_the_seam(astronaut, aligned):
    """A black crop blends in: dark at the face's centre, untouched at the crop edge."""
    black = np.zeros_like(aligned.crop)
    pasted = A.paste_back(astronaut, black, aligned.transform)
    cx, cy = A.apply_transform(aligned.transform, [(63.5, 63.5)])[0]
    assert pasted[int(cy), int(cx)].max() == 0
    # Just inside the crop's border the weight is still small.
    ex, ey = A.apply_transform(aligned.transform, [(63.5, 0.5)])[0]
    original = astronaut[int(round(ey)), int(round(ex))].astype(int)
    assert np.abs(pasted[int(round(ey)), int(round(ex))].astype(int) - original).max() <= 0.1 * original.max() + 2


def test_from_aligned(astronaut, aligned):
    face = A.from_aligned(aligned.crop)
    assert face.method == "aligned"
    np.testing.assert_array_equal(face.crop, aligned.crop)
    np.testing.assert_array_equal(face.transform, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(face.landmarks, A.template_points())
    bigger = np.asarray(Image.fromarray(aligned.crop).resize((256, 256), Image.Resampling.BICUBIC))
    face2 = A.from_aligned(bigger)
    assert face2.crop.shape == (128, 128, 3)
    np.testing.assert_allclose(A.apply_transform(face2.transform, [(-0.5, -0.5), (127.5, 127.5)]), [(-0.5, -0.5), (255.5, 255.5)])
    assert np.abs(face2.crop.astype(int) - aligned.crop.astype(int)).mean() < 3
    with pytest.raises(InputError, match="square"):
        A.from_aligned(np.zeros((128, 100, 3), np.uint8), name="wide.png")


def test_similarity_fit_recovers_a_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.4, 1.7, np.array([12.0, -5.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rotation.T + shift
    fit = A.similarity_fit(src, dst)
    np.testing.assert_allclose(fit[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(fit[:, 2], shift, atol=1e-9)
    # Mirrored points are never fitted with a reflection.
    fit = A.similarity_fit(src, src * [-1, 1])
    assert np.linalg.det(fit[:, :2]) >= 0


def test_dlib_model_path():
    assert dlib_model_path(A.SHAPE_PREDICTOR_FILE).is_file()
    with pytest.raises(ModelError, match="no_such_model.dat"):
        dlib_model_path("no_such_model.dat")


def test_dlib_model_path_without_the_package(monkeypatch):
    import importlib.util

    from scalableface import dlib_files

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="face-recognition-models"):
        dlib_files.dlib_model_path("shape_predictor_5_face_landmarks.dat")
