"""Face crops for emotion recognition on real videos.

Each sampled frame is searched for faces with the frontal-face Haar cascade that
OpenCV 4.x ships (``cv2.data.haarcascades``; OpenCV 5.0 wheels no longer ship
it, hence the ``opencv-python-headless<5`` dependency). The largest face is
cropped as a square with a margin, kept in colour or turned grey, and then
resized to the backbone's input like any frame.

Detection runs on a grey copy of the full-resolution frame, scaled down so that
its longer side is at most :attr:`FaceCrop.detect_size` pixels (for speed;
faces smaller than about ``24 * longer side / detect_size`` pixels are then
missed), with histogram equalisation. The crop itself is cut from the
full-resolution frame.

When no face is found, the previous frame's crop box is used again (a centre
square at the start), and the frame is marked as without a face: the reader
returns a per-frame ``face_found`` flag that the cache stores as a row-aligned
dataset.

The Haar cascade is a 2001-era detector: it finds upright, roughly frontal
faces in fair light, misses profiles, tilted or small faces, and sometimes fires
on textured background. ``face_found`` tells how often it worked.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.decode.sampling import as_float

CASCADE_FILE = "haarcascade_frontalface_default.xml"
_local = threading.local()


@dataclass(frozen=True)
class FaceCrop:
    """How faces are found and cut out of each frame.

    Args:
        margin: Extra room around the detected face on each side, as a fraction
            of the face's size: the square crop's side is
            ``max(face width, face height) * (1 + 2 * margin)``, moved inside
            the frame when it overlaps an edge, shrunk only when larger than the
            frame's shorter side.
        gray: Convert the crop to grey (replicated to 3 channels for ImageNet
            backbones, like FER-2013 images); False keeps colour.
        detect_size: Longer side, in pixels, of the grey copy that detection
            runs on (frames smaller than that are not enlarged).
        scale_factor: ``detectMultiScale``'s image pyramid step.
        min_neighbors: ``detectMultiScale``'s minimum overlapping detections.

    Raises:
        UsageError: For a value out of range.
    """

    margin: float = 0.2
    gray: bool = False
    detect_size: int = 480
    scale_factor: float = 1.1
    min_neighbors: int = 5

    def __post_init__(self):
        checks = (
            ("margin", as_float(self.margin), lambda v: v >= 0, "a number >= 0"),
            ("detect_size", as_float(self.detect_size), lambda v: v >= 24, "an integer >= 24"),
            ("scale_factor", as_float(self.scale_factor), lambda v: v > 1, "a number > 1"),
            ("min_neighbors", as_float(self.min_neighbors), lambda v: v >= 0, "an integer >= 0"),
        )
        for name, value, valid, expected in checks:
            if value is None or not math.isfinite(value) or not valid(value):
                raise UsageError(
                    f"face crop {name} must be {expected}. Received: {name}={getattr(self, name)!r}"
                )
        if not isinstance(self.gray, (bool, np.bool_)):
            raise UsageError(f"face crop gray must be True or False. Received: gray={self.gray!r}")
        object.__setattr__(self, "margin", float(self.margin))
        object.__setattr__(self, "gray", bool(self.gray))
        object.__setattr__(self, "detect_size", int(self.detect_size))
        object.__setattr__(self, "scale_factor", float(self.scale_factor))
        object.__setattr__(self, "min_neighbors", int(self.min_neighbors))

    def to_dict(self) -> dict:
        """Returns the configuration as a JSON-serialisable dict (for the cache)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FaceCrop:
        """Builds a configuration from :meth:`to_dict`'s output (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def face_crop_from_sampling(sampling: dict) -> FaceCrop | None:
    """The face crop a cache's ``sampling`` dict records, or None if it has none.

    Predict and finetune use it to read frames the way the cache was made.

    Args:
        sampling: The cache's ``sampling`` attribute (a dict).

    Returns:
        The :class:`FaceCrop`, or None.
    """
    value = sampling.get("face_crop")
    return FaceCrop.from_dict(value) if value else None


def cascade() -> cv2.CascadeClassifier:
    """This thread's frontal-face Haar cascade (classifiers are not thread-safe).

    Raises:
        UsageError: The installed OpenCV ships no Haar cascades (OpenCV 5 wheels).
    """
    classifier = getattr(_local, "cascade", None)
    if classifier is None:
        directory = getattr(getattr(cv2, "data", None), "haarcascades", None)
        classifier = (
            cv2.CascadeClassifier(directory + CASCADE_FILE)
            if directory and hasattr(cv2, "CascadeClassifier")
            else None
        )
        if classifier is None or classifier.empty():
            raise UsageError(
                f"face crops need OpenCV's {CASCADE_FILE}, which this OpenCV "
                f"({cv2.__version__}) does not ship; install opencv-python-headless<5"
            )
        _local.cascade = classifier
    return classifier


def detect_faces(image: np.ndarray, config: FaceCrop = FaceCrop()) -> np.ndarray:
    """Finds faces in one frame.

    Args:
        image: (H, W, 3) BGR, (H, W, 4) BGRA or (H, W) grey uint8 frame.
        config: Detection settings.

    Returns:
        (N, 4) int64 boxes ``(x, y, width, height)`` in the frame's pixels,
        largest first.
    """
    gray = _to_gray(image)
    height, width = gray.shape
    scale = min(1.0, config.detect_size / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    found = cascade().detectMultiScale(
        gray, scaleFactor=config.scale_factor, minNeighbors=config.min_neighbors
    )
    if len(found) == 0:
        return np.empty((0, 4), dtype=np.int64)
    boxes = np.round(np.asarray(found, dtype=np.float64) / scale).astype(np.int64)
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
    return boxes[order]


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def square_box(face, frame_shape, margin: float) -> tuple[int, int, int, int]:
    """The square crop ``(x, y, side, side)`` around a face box, inside the frame.

    Args:
        face: ``(x, y, width, height)`` of the face.
        frame_shape: ``(height, width, ...)`` of the frame.
        margin: Extra room on each side, as a fraction of the face's size.

    Returns:
        ``(x, y, side, side)``: centred on the face, moved inside the frame,
        and no larger than the frame's shorter side.
    """
    height, width = frame_shape[:2]
    x, y, w, h = (int(v) for v in face)
    side = max(1, min(round(max(w, h) * (1 + 2 * margin)), height, width))
    left = min(max(round(x + w / 2 - side / 2), 0), width - side)
    top = min(max(round(y + h / 2 - side / 2), 0), height - side)
    return left, top, side, side


def center_box(frame_shape) -> tuple[int, int, int, int]:
    """The largest centred square ``(x, y, side, side)`` of a frame."""
    height, width = frame_shape[:2]
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


class FaceTracker:
    """Crops the largest face of consecutive frames; remembers the last box.

    Make one per pass over a video (or clip) and feed it the frames in order.

    Args:
        config: The face crop settings.

    Attributes:
        box: The crop box ``(x, y, width, height)`` used for the last frame, or
            None before the first frame.
    """

    def __init__(self, config: FaceCrop):
        self.config = config
        self.box: tuple[int, int, int, int] | None = None

    def crop(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """Crops one frame around its largest face.

        Args:
            image: A (H, W, 3) BGR, (H, W, 4) BGRA or (H, W) grey uint8 frame.

        Returns:
            ``(crop, face_found)``: the square crop (grey (S, S) when
            ``config.gray``, else the frame's channels), and whether a face
            was found in this frame. Without a face, the previous box is used
            again (clipped to this frame), or the centre square at the start.
        """
        faces = detect_faces(image, self.config)
        found = len(faces) > 0
        if found:
            box = square_box(faces[0], image.shape, self.config.margin)
        elif self.box is not None:
            box = _inside(self.box, image.shape)
        else:
            box = center_box(image.shape)
        self.box = box
        x, y, w, h = box
        crop = image[y : y + h, x : x + w]
        if self.config.gray:
            crop = _to_gray(crop)
        return crop, found


def _inside(box, frame_shape):
    """``box`` moved (and shrunk if needed) to fit inside a frame of another size."""
    height, width = frame_shape[:2]
    x, y, w, h = box
    w, h = max(1, min(w, width)), max(1, min(h, height))
    return min(max(x, 0), width - w), min(max(y, 0), height - h), w, h
