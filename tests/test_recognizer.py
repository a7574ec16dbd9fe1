"""The PyTorch port of dlib's face recognition ResNet against dlib itself."""

import dlib
import numpy as np
import pytest
import skimage.data
import torch

from scalableface import recognizer
from scalableface.errors import ModelError


def _variants():
    img = skimage.data.astronaut()
    noise = np.random.default_rng(0).normal(0.0, 8.0, img.shape)
    return {
        "original": img,
        "flipped": np.ascontiguousarray(img[:, ::-1]),
        "shifted": np.roll(img, (3, 5), axis=(0, 1)),
        "noisy": np.clip(img + noise, 0, 255).astype(np.uint8),
    }


@pytest.fixture(scope="module")
def dlib_faces():
    """Per variant of the astronaut photo: dlib's 150x150 chip, a 128x128 chip of it, and dlib's descriptor."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(recognizer.dlib_model_path("shape_predictor_5_face_landmarks.dat")))
    net = dlib.face_recognition_model_v1(str(recognizer.dlib_model_path(recognizer.WEIGHTS_FILE)))
    faces = {}
    for name, img in _variants().items():
        # The shifted photo also yields a weak false detection on the suit: keep the best.
        rects, scores, _ = detector.run(img, 0)
        shape = predictor(img, rects[int(np.argmax(scores))])
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        small = dlib.get_face_chip(img, shape, size=128, padding=0.25)
        faces[name] = (chip, small, np.array(net.compute_face_descriptor(chip), dtype=np.float32))
    return faces


@pytest.fixture(scope="module")
def port_descriptors(dlib_faces):
    """The port's descriptors of all the 150x150 chips, computed in one batch."""
    chips = np.stack([chip for chip, _, _ in dlib_faces.values()])
    return dict(zip(dlib_faces, recognizer.describe(chips)))


@pytest.mark.parametrize("name", ["original", "flipped", "shifted", "noisy"])
def test_matches_dlib(dlib_faces, port_descriptors, name):
    assert np.abs(port_descriptors[name] - dlib_faces[name][2]).max() < 1e-4


def test_same_face_is_close_and_noise_is_far(port_descriptors):
    original, flipped = port_descriptors["original"], port_descriptors["flipped"]
    noise = np.random.default_rng(1).integers(0, 256, (1, 150, 150, 3), dtype=np.uint8)
    random = recognizer.describe(noise)[0]
    assert np.linalg.norm(original - flipped) < 0.6
    assert np.linalg.norm(original - random) > 0.6


def test_smaller_crop_is_resized_to_the_same_identity(dlib_faces):
    _, small, expected = dlib_faces["original"]
    got = recognizer.describe(small[None])[0]
    assert np.linalg.norm(got - expected) < 0.15


def test_gradient_reaches_the_input(dlib_faces):
    _, small, _ = dlib_faces["original"]
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float().requires_grad_(True)
    recognizer.descriptor_from_crops(x).square().sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().max() > 0


def test_truncated_file_is_a_model_error():
    data = recognizer.dlib_model_path(recognizer.WEIGHTS_FILE).read_bytes()
    with pytest.raises(ModelError):
        recognizer.read_net(data[: len(data) // 2])
