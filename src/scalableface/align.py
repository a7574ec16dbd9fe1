"""Face detection and alignment to dlib's canonical face chip, and pasting a chip back.

Geometry (the same as dlib's ``get_face_chip(img, shape, size, padding)``):

* dlib's HOG frontal face detector finds the face box; dlib's 5-point shape predictor
  finds the eye corners and the bottom of the nose inside it;
* a least-squares similarity transform (rotation, uniform scale, translation; never a
  reflection) maps the template points ``(PADDING + t) / (2 * PADDING + 1) * size``
  (``t`` = ``TEMPLATE``, in the unit square) onto the 5 landmarks;
* like dlib, the chip is then the ``size*scale`` square centred on the image of the
  chip centre ``(size/2, size/2)``, sampled with its corner pixels on that square's
  corners: crop pixel ``(x, y)`` (integer coordinates at pixel centres) maps to photo
  pixel ``transform @ (x, y, 1)``;
* pixels are sampled bilinearly; when the face shrinks by more than 2x, the photo is
  first reduced with dlib's 2x image pyramid (5-tap [1 4 6 4 1] Gaussian, then every
  other pixel), as many times as dlib would, so the chip is not aliased;
* unlike dlib (which fills black), parts of the chip that fall outside the photo repeat
  the edge pixels;
* values are rounded to the nearest integer, where dlib truncates: with the same
  landmarks the crop matches ``dlib.get_face_chip`` to within 1 grey level (mean
  difference about 0.5 level, plus about 0.5 per pyramid reduction), the rest being
  dlib's downward bias. (With truncation instead of rounding the match is exact.)

This module imports numpy, Pillow and (lazily) dlib only: never torch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from typing import List, Optional, Tuple, Union

import numpy as np

from .canonical import CROP_SIZE
from .errors import InputError, ModelError

PADDING = 0.25

# dlib's mean 5-point face shape in the unit square, in the 5-point model's order:
# outer and inner corner of the eye on the image's right (the person's left eye),
# outer and inner corner of the other eye, bottom of the nose.
TEMPLATE = np.array(
    [
        (0.8595674595992, 0.2134981538014),
        (0.6460604764104, 0.2289674387677),
        (0.1205750620789, 0.2137274526848),
        (0.3340850613712, 0.2290642403242),
        (0.4901123135679, 0.6277975316475),
    ],
    dtype=np.float64,
)

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"

# One upsampling doubles each side: on a 12-megapixel photo that costs seconds and
# hundreds of MB for faces that would be tiny anyway, so it is only tried on photos up
# to this many pixels (LFW's 250x250 images are far below it).
MAX_UPSAMPLE_PIXELS = 4_000_000

# The fallback box (align(..., centred=True)), measured on LFW (250 x 250, face
# centred): HOG boxes there are a median 105 pixels wide (0.42 of the side), centred
# 0.018 (x) and 0.046 (y) of the side right of and below the image centre.
FALLBACK_BOX_FRACTION = 0.42
FALLBACK_BOX_SHIFT = (0.018, 0.046)
# On LFW's HOG detections, the chip's span (size - 1 steps) is 0.94..1.32 box widths
# (5th..95th percentile, median 1.106) and the chip centre lies within 0.1 box widths of
# the box centre (median offset -0.019, -0.016). A fallback whose landmarks give a chip
# outside the looser bounds below is rejected for a landmark-free chip placed in the box.
FALLBACK_SPAN = 1.106
FALLBACK_CENTRE = (-0.019, -0.016)
FALLBACK_SPAN_RANGE = (0.8, 1.7)
FALLBACK_MAX_CENTRE_OFFSET = 0.25

Box = Tuple[int, int, int, int]  # left, top, right, bottom (inclusive, dlib's convention)


@dataclasses.dataclass
class Face:
    """One detected face: its detector box and the 5 landmarks (x, y) in the photo."""

    box: Box
    landmarks: np.ndarray  # 5 x 2 float64
    method: str  # "hog", "hog-upsampled" or "fallback"

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left + 1) * max(0, bottom - top + 1)


@dataclasses.dataclass
class AlignedFace:
    """An aligned face crop and where it came from.

    ``transform`` is a 2 x 3 float64 affine matrix mapping crop pixel coordinates
    (x, y, 1) to photo pixel coordinates; pixel centres are at integer coordinates.
    """

    crop: np.ndarray  # size x size x 3 uint8
    transform: np.ndarray  # 2 x 3 float64, crop -> photo
    landmarks: np.ndarray  # 5 x 2 float64, in the photo
    box: Box  # detector rectangle (left, top, right, bottom), in the photo
    method: str  # "hog", "hog-upsampled", "fallback" or "aligned"
    photo_size: Tuple[int, int] = (0, 0)  # width, height of the photo the crop came from

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])


# ---------------------------------------------------------------------------------------
# Models, loaded once per process

_lock = threading.Lock()
_models: Optional[tuple] = None


def load_models():
    """(dlib module, HOG detector, 5-point shape predictor), cached per process."""
    global _models
    if _models is not None:
        return _models
    with _lock:
        if _models is None:
            try:
                import dlib
            except ImportError as exc:
                raise ModelError(f"dlib is not installed ({exc}); install the package 'dlib-bin'") from None
            from .dlib_files import dlib_model_path

            path = dlib_model_path(SHAPE_PREDICTOR_FILE)
            try:
                predictor = dlib.shape_predictor(str(path))
            except RuntimeError as exc:
                raise ModelError(f"cannot load dlib's shape predictor {path}: {exc}") from None
            _models = (dlib, dlib.get_frontal_face_detector(), predictor)
    return _models


# ---------------------------------------------------------------------------------------
# Input handling


def _as_rgb(image, name: Optional[str]) -> Tuple[np.ndarray, str]:
    """A C-contiguous H x W x 3 uint8 array and a name for messages."""
    if isinstance(image, np.ndarray):
        array = image
        label = name or "the image"
    else:
        from .images import load_rgb

        label = name or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "<image bytes>")
        array = load_rgb(image, name=label)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise InputError(f"{label} has no pixels")
    return np.ascontiguousarray(array), label


# ---------------------------------------------------------------------------------------
# Detection


def _box_of(rect) -> Box:
    return (int(rect.left()), int(rect.top()), int(rect.right()), int(rect.bottom()))


def _landmarks(image: np.ndarray, rect) -> np.ndarray:
    _, _, predictor = load_models()
    shape = predictor(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def detect(image, *, name: Optional[str] = None) -> List[Face]:
    """All faces the HOG detector finds, largest first, each with its 5 landmarks.

    The detector runs at the photo's own scale; if that finds nothing it runs once more
    on the photo upsampled 2x (finding faces down to about 40 pixels), unless the photo
    has more than MAX_UPSAMPLE_PIXELS pixels. Returns [] when there is no face.
    ``image`` is an H x W x 3 uint8 array, or a path / bytes (read with load_rgb).
    """
    array, _ = _as_rgb(image, name)
    dlib, detector, _ = load_models()
    method = "hog"
    rects = list(detector(array, 0))
    if not rects and array.shape[0] * array.shape[1] <= MAX_UPSAMPLE_PIXELS:
        rects = list(detector(array, 1))
        method = "hog-upsampled"
    faces = [Face(_box_of(r), _landmarks(array, r), method) for r in rects]
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def fallback_face(image, *, name: Optional[str] = None) -> Face:
    """A face guessed in the middle of the photo, for images where HOG finds none.

    The box is a square FALLBACK_BOX_FRACTION of the shorter side, placed where HOG
    boxes sit on LFW (about 105 pixels on its 250 x 250 images); the shape predictor
    then places the 5 landmarks inside it. If those landmarks give an implausible chip
    (far too large or small for the box, or off its centre: the predictor found no real
    face), the landmarks are instead the template laid out in the box the way it lies
    in a typical HOG box, with no rotation.
    """
    array, _ = _as_rgb(image, name)
    dlib, _, _ = load_models()
    height, width = array.shape[:2]
    short = min(height, width)
    side = max(1, int(round(FALLBACK_BOX_FRACTION * short)))
    cx = (width - 1) / 2.0 + FALLBACK_BOX_SHIFT[0] * short
    cy = (height - 1) / 2.0 + FALLBACK_BOX_SHIFT[1] * short
    left = int(round(cx - (side - 1) / 2.0))
    top = int(round(cy - (side - 1) / 2.0))
    box = (left, top, left + side - 1, top + side - 1)
    landmarks = _landmarks(array, dlib.rectangle(*box))
    if not _plausible_for_box(landmarks, box):
        landmarks = _box_landmarks(box)
    return Face(box, landmarks, "fallback")


def _box_geometry(box: Box) -> Tuple[float, np.ndarray]:
    left, top, right, bottom = box
    return float(right - left + 1), np.array([(left + right) / 2.0, (top + bottom) / 2.0])


def _plausible_for_box(landmarks: np.ndarray, box: Box) -> bool:
    """Do these landmarks give a chip of the size and place a HOG box would?"""
    box_width, box_centre = _box_geometry(box)
    transform = chip_transform(landmarks, CROP_SIZE)
    span = float(np.sqrt(abs(np.linalg.det(transform[:, :2])))) * (CROP_SIZE - 1) / box_width
    centre = apply_transform(transform, [((CROP_SIZE - 1) / 2.0, (CROP_SIZE - 1) / 2.0)])[0]
    offset = float(np.hypot(*(centre - box_centre))) / box_width
    low, high = FALLBACK_SPAN_RANGE
    return low <= span <= high and offset <= FALLBACK_MAX_CENTRE_OFFSET


def _box_landmarks(box: Box) -> np.ndarray:
    """The template's 5 points laid out in ``box`` as in a typical LFW HOG detection."""
    box_width, box_centre = _box_geometry(box)
    centre = box_centre + np.array(FALLBACK_CENTRE) * box_width
    points = template_points(CROP_SIZE) - (CROP_SIZE - 1) / 2.0
    return centre + points * (FALLBACK_SPAN * box_width / (CROP_SIZE - 1))


# ---------------------------------------------------------------------------------------
# Geometry


def template_points(size: int = CROP_SIZE, padding: float = PADDING) -> np.ndarray:
    """The 5 template points in crop pixel coordinates (5 x 2)."""
    return (padding + TEMPLATE) / (2.0 * padding + 1.0) * size


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (2 x 3) taking points ``src`` to ``dst``.

    Rotation, uniform scale and translation only (no reflection, no shear): with the
    points as complex numbers, dst ~ a * src + b, solved in closed form.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    ms, md = zs.mean(), zd.mean()
    cs, cd = zs - ms, zd - md
    denominator = float(np.sum(np.abs(cs) ** 2))
    a = complex(np.sum(cd * np.conj(cs)) / denominator) if denominator > 0 else 1.0 + 0j
    b = md - a * ms
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float64)


def chip_transform(landmarks: np.ndarray, size: int = CROP_SIZE, padding: float = PADDING) -> np.ndarray:
    """The 2 x 3 crop -> photo transform dlib's get_face_chip uses for these landmarks.

    dlib fits ``tform`` (template -> landmarks), then extracts the square of side
    ``size * scale`` centred on ``tform(size/2, size/2)`` with the crop's corner pixel
    centres on the square's corners, i.e. a step of ``(size*scale - 1) / (size - 1)``
    photo pixels per crop pixel.
    """
    fit = similarity_fit(template_points(size, padding), landmarks)
    scale = float(np.hypot(fit[0, 0], fit[1, 0]))
    if scale <= 0:
        raise InputError("degenerate face landmarks")
    rotation = fit[:, :2] / scale
    centre = fit[:, :2] @ np.array([size / 2.0, size / 2.0]) + fit[:, 2]
    step = (size * scale - 1.0) / (size - 1.0) if size > 1 else scale
    matrix = rotation * step
    offset = centre - matrix @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return np.concatenate([matrix, offset[:, None]], axis=1)


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map N x 2 points with a 2 x 3 affine transform."""
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:, :2].T + transform[:, 2]


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine transform."""
    inverse = np.linalg.inv(transform[:, :2])
    return np.concatenate([inverse, (-inverse @ transform[:, 2])[:, None]], axis=1)


def _pyramid_depth(step: float, size: int) -> int:
    """How many 2x pyramid reductions dlib applies before sampling (0 = none).

    dlib keeps halving the chip's footprint (width w -> (w - 1)/2 + 1) while the halved
    footprint still has more pixels than the chip.
    """
    width = step * (size - 1) + 1.0
    depth = 0
    while True:
        halved = (width - 1.0) / 2.0 + 1.0
        if halved * halved <= float(size * size):
            return depth
        width = halved
        depth += 1


def _pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>: [1 4 6 4 1]/16 in both directions, keep every other pixel.

    Output pixel (i, j) sits on input pixel (2i + 2, 2j + 2); the output is
    ((rows - 3) // 2) x ((cols - 3) // 2).
    """
    rows, cols = image.shape[:2]
    out_cols = (cols - 3) // 2
    out_rows = (rows - 3) // 2
    if out_rows < 1 or out_cols < 1:
        raise ValueError("image too small for a pyramid reduction")

    def taps(array, axis, count):
        def s(k):
            index = [slice(None)] * array.ndim
            index[axis] = slice(k, k + 2 * count - 1, 2)
            return array[tuple(index)]

        return s(0) + 4.0 * s(1) + 6.0 * s(2) + 4.0 * s(3) + s(4)

    horizontal = taps(image, 1, out_cols)
    return taps(horizontal, 0, out_rows) * (1.0 / 256.0)


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of an H x W x C image at float coordinates, edges repeated."""
    height, width = image.shape[:2]
    xs = np.clip(xs, 0.0, width - 1.0)
    ys = np.clip(ys, 0.0, height - 1.0)
    x0 = xs.astype(np.intp)  # floor: the coordinates are >= 0
    y0 = ys.astype(np.intp)
    fx = (xs - x0).astype(np.float32)[..., None]
    fy = (ys - y0).astype(np.float32)[..., None]
    dx = (x0 < width - 1).astype(np.intp)
    dy = np.where(y0 < height - 1, width, 0)
    flat = image.reshape(height * width, -1)
    index = y0 * width + x0
    tl = np.take(flat, index, axis=0).astype(np.float32)
    tr = np.take(flat, index + dx, axis=0).astype(np.float32)
    bl = np.take(flat, index + dy, axis=0).astype(np.float32)
    br = np.take(flat, index + dy + dx, axis=0).astype(np.float32)
    top = tl + fx * (tr - tl)
    bottom = bl + fx * (br - bl)
    return top + fy * (bottom - top)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# dlib's pyramid_down<2>::point_down(p) = p / 2 - (1.25, 0.75).
_POINT_DOWN_SHIFT = np.array([1.25, 0.75])


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    grid = np.arange(size, dtype=np.float64)
    gx, gy = np.meshgrid(grid, grid)
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


def warp_crop(photo: np.ndarray, transform: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Sample the size x size crop whose pixel (x, y) lies at ``transform @ (x, y, 1)``.

    Bilinear, with dlib's 2x pyramid pre-reduction when the crop shrinks the photo by
    more than 2x, and repeated edge pixels outside the photo.
    """
    gx, gy = _grid(size)
    step = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    depth = _pyramid_depth(step, size)
    if depth == 0:
        xs = transform[0, 0] * gx + transform[0, 1] * gy + transform[0, 2]
        ys = transform[1, 0] * gx + transform[1, 1] * gy + transform[1, 2]
        return _to_uint8(_bilinear(photo, xs, ys))

    # Cut out the crop's footprint plus the margin dlib keeps for the filter taps, as
    # dlib does (same origin, so the same pyramid phase), repeating edge pixels.
    corners = apply_transform(transform, [(0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)])
    grow = 2.0
    for _ in range(depth):
        grow = grow * 2.0 + 2.0
    left, top = np.floor(corners.min(axis=0) - grow + 0.5).astype(int)
    right, bottom = np.floor(corners.max(axis=0) + grow + 0.5).astype(int)
    rows = np.clip(np.arange(top, bottom + 1), 0, photo.shape[0] - 1)
    cols = np.clip(np.arange(left, right + 1), 0, photo.shape[1] - 1)
    level = photo[rows[:, None], cols[None, :]].astype(np.float32)

    # Photo point p -> level point: translate to the cut-out, then dlib's point_down
    # (p / 2 - (1.25, 0.75)) once per reduction. (Level pixel j sits on cut-out pixel
    # 2j + 2, so the exact shift would be (1, 1): dlib's is off by a quarter of a level
    # pixel, kept here to match its chips.)
    matrix = transform[:, :2].copy()
    offset = transform[:, 2] - np.array([left, top], dtype=np.float64)
    for _ in range(depth):
        level = _pyramid_down(level)
        matrix = matrix / 2.0
        offset = offset / 2.0 - _POINT_DOWN_SHIFT
    xs = matrix[0, 0] * gx + matrix[0, 1] * gy + offset[0]
    ys = matrix[1, 0] * gx + matrix[1, 1] * gy + offset[1]
    return _to_uint8(_bilinear(level, xs, ys))


# ---------------------------------------------------------------------------------------
# Alignment


def _aligned(array: np.ndarray, face: Face, size: int) -> AlignedFace:
    transform = chip_transform(face.landmarks, size)
    crop = warp_crop(array, transform, size)
    return AlignedFace(crop, transform, face.landmarks.copy(), face.box, face.method, (array.shape[1], array.shape[0]))


def align(
    image,
    *,
    size: int = CROP_SIZE,
    all_faces: bool = False,
    centred: bool = False,
    name: Optional[str] = None,
) -> Union[AlignedFace, List[AlignedFace]]:
    """Detect and align the face(s) in ``image`` to size x size crops.

    ``image``: an H x W x 3 uint8 RGB array, or a path / bytes (read with load_rgb).
    Returns the largest face's AlignedFace, or with ``all_faces=True`` a list of every
    face, largest first. No face raises InputError("no face found in <name>").
    ``centred=True`` is for data sets whose subject is centred (LFW): the face nearest the
    image centre is chosen (in 45 LFW images a bystander's face is larger), and a photo
    with no detected face gets a box in the middle of the image (method "fallback").
    """
    if size < 2:
        raise ValueError("size must be at least 2")
    array, label = _as_rgb(image, name)
    faces = detect(array)
    if not faces:
        if not centred:
            raise InputError(f"no face found in {label}")
        faces = [fallback_face(array)]
    if all_faces:
        return [_aligned(array, face, size) for face in faces]
    if centred:
        centre = np.array([array.shape[1] - 1, array.shape[0] - 1]) / 2
        faces = sorted(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(axis=0) - centre)))
    return _aligned(array, faces[0], size)


def from_aligned(image, *, size: int = CROP_SIZE, name: Optional[str] = None) -> AlignedFace:
    """Wrap an already aligned square face crop (the ``--aligned`` input).

    A size x size image is used as is (identity transform); another square image is
    resized to size x size and the transform maps back to its pixels. Non-square
    images raise InputError.
    """
    array, label = _as_rgb(image, name)
    height, width = array.shape[:2]
    if height != width:
        raise InputError(f"{label} is {width}x{height}: a pre-aligned face crop must be square")
    if height == size:
        crop = array.copy()
        transform = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    else:
        from PIL import Image

        resample = Image.Resampling.LANCZOS if height > size else Image.Resampling.BICUBIC
        crop = np.asarray(Image.fromarray(array).resize((size, size), resample))
        crop = np.ascontiguousarray(crop, dtype=np.uint8)
        scale = height / size  # pixel-area convention: centres map (x + 0.5) * s - 0.5
        transform = np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5]])
    landmarks = apply_transform(transform, template_points(size))
    return AlignedFace(crop, transform, landmarks, (0, 0, width - 1, height - 1), "aligned", (width, height))


# ---------------------------------------------------------------------------------------
# Pasting back


def paste_back(
    photo: np.ndarray,
    crop: np.ndarray,
    transform: np.ndarray,
    *,
    feather: Optional[float] = None,
) -> np.ndarray:
    """A copy of ``photo`` with ``crop`` warped back where ``transform`` took it from.

    The crop is blended in with a soft mask that ramps from 0 at the crop's border to 1
    at ``feather`` crop pixels inside it (default: 8% of the crop size) with a
    smoothstep, so the seam does not show; photo pixels outside the crop are unchanged.
    ``crop`` must have the size ``transform`` was made for. Returns H x W x 3 uint8
    (a greyscale photo comes back as RGB).
    """
    photo = np.asarray(photo)
    crop = np.asarray(crop)
    if photo.dtype != np.uint8 or crop.dtype != np.uint8:
        raise ValueError("paste_back expects uint8 images")
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    work = np.repeat(photo[:, :, None], 3, axis=2) if photo.ndim == 2 else photo
    result = work.copy()
    crop_h, crop_w = crop.shape[:2]
    if feather is None:
        feather = 0.08 * min(crop_h, crop_w)
    feather = max(float(feather), 1e-6)

    # The crop's footprint in the photo, clipped to the photo.
    corners = apply_transform(
        transform, [(-0.5, -0.5), (crop_w - 0.5, -0.5), (-0.5, crop_h - 0.5), (crop_w - 0.5, crop_h - 0.5)]
    )
    left = max(int(np.floor(corners[:, 0].min())), 0)
    top = max(int(np.floor(corners[:, 1].min())), 0)
    right = min(int(np.ceil(corners[:, 0].max())), work.shape[1] - 1)
    bottom = min(int(np.ceil(corners[:, 1].max())), work.shape[0] - 1)
    if right < left or bottom < top:
        return result

    inverse = invert_transform(transform)
    px, py = np.meshgrid(np.arange(left, right + 1, dtype=np.float64), np.arange(top, bottom + 1, dtype=np.float64))
    cx = inverse[0, 0] * px + inverse[0, 1] * py + inverse[0, 2]
    cy = inverse[1, 0] * px + inverse[1, 1] * py + inverse[1, 2]
    inside = np.minimum.reduce([cx + 0.5, crop_w - 0.5 - cx, cy + 0.5, crop_h - 0.5 - cy])
    weight = np.clip(inside / feather, 0.0, 1.0)
    weight = (weight * weight * (3.0 - 2.0 * weight)).astype(np.float32)[..., None]
    warped = _bilinear(crop, cx, cy)
    region = work[top : bottom + 1, left : right + 1].astype(np.float32)
    blended = region + weight * (warped - region)
    result[top : bottom + 1, left : right + 1] = _to_uint8(blended)
    return result
