"""Reading sampled frames from a video file, a frame directory or an image clip.

:func:`read_frames` is the one reader over three kinds of source:

* a video file: decoded by plan with PyAV (only the frames sampling needs,
  from the keyframe before them; see :mod:`vidseq.extract.decode.decode_plan`) when
  its packet index vouches for it, else sequentially with OpenCV
  (``cv2.VideoCapture``, any container and codec the installed FFmpeg decodes).
  Both give the same frames, indices, timestamps and counts;
* a directory of frame images, taken in order of their file names;
* a list or tuple of image files (a "clip", e.g. FER-2013 faces), or of
  entries a registered clip loader reads (e.g. FER-2013 CSV rows, decoded from
  the CSV without any image file; see :mod:`vidseq.extract.sources.clips`).

It returns uint8 RGB frames of the target size (see :class:`FrameGeometry`), and
the facts the cache records: source frame indices, timestamps, how many frames
are real before padding, the frame rate and the number of frames really decoded.
With a face crop (:class:`vidseq.extract.decode.faces.FaceCrop` in the geometry), each
kept frame is cut around its largest face before resizing, and a per-frame
``face_found`` flag is returned.

On the sequential path, the container's frame count (``CAP_PROP_FRAME_COUNT``)
is only a first guess: the video is always decoded to its end, ``grab()`` for
frames that are not kept (no colour conversion, no copy) and ``retrieve()`` only
for kept ones. When the
real count shows that the guess led to a different selection, the frames are
selected again with the real count and, if needed, decoded again.

The ``motion`` and ``keyframes`` modes choose from a signal of every frame:
their videos are scanned once by :func:`vidseq.extract.decode.signal_scan.scan_video`
(PyAV, tiny thumbnails). A video whose decoded frames fit in
:data:`~vidseq.extract.decode.signal_scan.MAX_HELD_BYTES` is held by the scan and
decoded once; a longer one gets its chosen frames by plan (or sequentially
without a usable index), exactly as reading by the recorded indices does.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.cheap_motion import FULL_SCAN
from vidseq.extract.decode.decode_plan import plan_decode
from vidseq.extract.decode.faces import FaceTracker
from vidseq.extract.decode.geometry import (
    FrameGeometry,
    SampledFrames,
    crop_face,
    face_flags,
    stack_frames,
    to_rgb,
)
from vidseq.extract.decode.packet_index import IndexUnavailable
from vidseq.extract.decode.sampling import (
    SIGNAL_MODES,
    FrameSelection,
    SamplingConfig,
    select_frames,
)
from vidseq.extract.decode.signal_scan import MAX_HELD_BYTES, scan_video, select_from_images
from vidseq.extract.decode.video_reader import (
    IndexedVideo,
    planned_decoding_enabled,
    report_fallback,
)
from vidseq.extract.sources.clips import clip_loader_for
from vidseq.extract.sources.items import IMAGE_EXTENSIONS, is_image_file

DEFAULT_FPS = 25.0
"""Frame rate assumed for a video whose header gives none (0, negative or NaN)."""


def read_frames(
    source,
    sampling: SamplingConfig,
    geometry: FrameGeometry,
    *,
    rng=None,
    frame_indices=None,
    image_fps=25.0,
) -> SampledFrames:
    """Reads the sampled frames of one video, frame directory or image clip.

    Videos whose packet index allows it are decoded by plan (the frame count
    from the packets, only the needed frames, from the keyframe before them);
    the others (logged: a warning the first time an index is damaged) and all
    videos under ``VIDSEQ_DECODER=opencv`` are decoded sequentially from the
    start with OpenCV. There, the header's frame count is only a first guess
    for ``uniform`` sampling; the frames are counted to the end and, if the
    count differs and changes the selection, the frames are selected again with
    the real count (and decoded again when needed). A
    video whose header gives no frame rate (0, negative or NaN) is taken to run
    at ``DEFAULT_FPS`` (25) frames per second.

    Timestamps come from the decoder's position (``CAP_PROP_POS_MSEC``, relative
    to the first frame) when it gives finite, non-negative, strictly increasing
    times for the kept frames; otherwise (and for images) they are
    ``index * 1000 / fps``.

    Args:
        source: A video file (``str`` or path), a directory of frame images
            (files with an image suffix, sorted by name: zero-pad the numbers),
            or a list/tuple of image files or of FER-2013 CSV row references
            (a clip).
        sampling: Which frames to take (ignored when ``frame_indices`` is given).
        geometry: The output size and framing.
        rng: Optional ``numpy.random.Generator``: ``uniform`` sampling then takes
            a random frame in each segment (TSN training variant).
        frame_indices: Read exactly these source frame indices, in this order
            (e.g. the ones a cache lists). ``num_valid`` is then the length minus
            the trailing repeats of the last index (the padding convention).
        image_fps: Frame rate given to clips and frame directories.

    Returns:
        The :class:`SampledFrames` (with ``face_found`` when ``geometry.face``
        is set).

    Raises:
        SourceReadError: If the source is missing, empty, cannot be opened or
            decoded, yields no frame, holds an unreadable image, or has fewer
            frames than a requested index needs. Its ``path`` names the file.
        UsageError: For a bad ``frame_indices``, ``image_fps`` or source type.
    """
    requested = _requested_indices(frame_indices)
    if isinstance(source, (list, tuple)):
        return _read_clip(source, sampling, geometry, rng, requested, image_fps)
    try:
        path = os.fspath(source)
    except TypeError:
        raise UsageError(
            "source must be a path to a video or frame directory, or a list of image paths. "
            f"Received: source={source!r}"
        ) from None
    if os.path.isdir(path):
        paths = _list_frame_directory(path)
        fps = _image_fps(image_fps)
        return _read_images(paths, path, sampling, geometry, rng, requested, fps)
    return _read_video(path, sampling, geometry, rng, requested)


# ----------------------------------------------------------------------- videos


def _read_video(path, sampling, geometry, rng, requested):
    problem = file_problem(path)
    if problem:
        raise SourceReadError(path, problem)
    if planned_decoding_enabled():
        try:
            return _read_video_planned(path, sampling, geometry, rng, requested)
        except IndexUnavailable as error:
            report_fallback(path, error)
    if requested is None and sampling.mode in SIGNAL_MODES:
        # No usable packet index: the scan chooses, the sequential reader reads.
        frames = _read_video_sequential(
            path, sampling, geometry, rng, scan_video(path, sampling, rng).selection.indices
        )
        frames.motion_signal = FULL_SCAN if sampling.mode == "motion" else None
        return frames
    return _read_video_sequential(path, sampling, geometry, rng, requested)


def _read_video_sequential(path, sampling, geometry, rng, requested):
    capture = open_video(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and fps > 0):
            fps = DEFAULT_FPS
        claimed = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        claimed = int(claimed) if math.isfinite(claimed) and claimed >= 1 else 0

        first = None  # the selection the first pass decodes for, if any
        if requested is not None:
            wanted = requested
        elif sampling.mode == "fps":
            # Every fps selection is a prefix of the one for an unbounded video,
            # so the first pass keeps all the frames any real length can need.
            step = max(int(fps / sampling.frame_rate), 1)
            wanted = select_frames(sampling, (sampling.num_frames - 1) * step + 1, fps).indices
        elif claimed:
            first = select_frames(sampling, claimed, fps, rng)
            wanted = first.indices
        else:  # no usable header count: the first pass only counts
            wanted = np.empty(0, dtype=np.int64)
        decoded = _decode(capture, path, np.unique(wanted), geometry, to_end=True)
    finally:
        capture.release()

    count = decoded.count
    if count == 0:
        raise SourceReadError(path, "no decodable video frame")
    if requested is not None:
        if requested.max() >= count:
            raise SourceReadError(
                path,
                f"frame index {int(requested.max())} requested, "
                f"but only {count} frames could be decoded",
            )
        selection = FrameSelection(indices=requested, num_valid=_num_valid(requested))
    elif first is not None and claimed == count:
        selection = first
    else:
        selection = select_frames(sampling, count, fps, rng)

    needed = np.unique(selection.indices)
    if not all(int(i) in decoded.kept for i in needed):
        # Rare path: the header's count was wrong and moved the selection.
        capture = open_video(path)
        try:
            decoded = _decode(capture, path, needed, geometry, to_end=False)
        finally:
            capture.release()
        missing = [int(i) for i in needed if int(i) not in decoded.kept]
        if missing:
            raise SourceReadError(
                path,
                f"decoding is not repeatable: frame {missing[0]} was counted on a first "
                "pass but not found on the second",
            )

    return _video_frames(decoded, selection, fps, count, path, geometry)


def _read_video_planned(path, sampling, geometry, rng, requested):
    """Decodes only the frames the selection needs (see :mod:`.decode_plan`).

    ``motion`` and ``keyframes`` first scan every frame for their signal
    (:func:`~vidseq.extract.decode.signal_scan.scan_video`); a video whose decoded
    frames fit in ``MAX_HELD_BYTES`` is held by the scan and decoded once,
    a longer one gets the chosen frames by plan.

    Raises:
        IndexUnavailable: If the packet index cannot stand in for sequential
            decoding; nothing has been kept, the caller decodes sequentially.
    """
    with IndexedVideo(path) as video:
        index = video.index
        fps = index.fps or DEFAULT_FPS
        held = signal = None
        if requested is not None:
            if requested.max() >= index.num_frames:
                raise IndexUnavailable("a requested frame lies past the indexed ones", broken=False)
            selection = FrameSelection(indices=requested, num_valid=_num_valid(requested))
        elif sampling.mode in SIGNAL_MODES:
            hold = index.num_frames * video.frame_bytes <= MAX_HELD_BYTES
            scan = scan_video(path, sampling, rng, hold=hold, index=index)
            if scan.count != index.num_frames:
                raise IndexUnavailable(
                    f"the scan decoded {scan.count} frames, the index lists {index.num_frames}"
                )
            selection, held = scan.selection, scan.held
            signal = scan.signal if sampling.mode == "motion" else None
        else:
            selection = select_frames(sampling, index.num_frames, fps, rng)
        needed = np.unique(selection.indices)
        faces = FaceTracker(geometry.face) if geometry.face is not None else None
        found = {}

        def process(target, image):
            return to_rgb(crop_face(image, faces, found, target), geometry)

        targets = np.union1d(needed, [0])  # frame 0's stamp: the time origin
        if held is not None:
            planned = video.convert(held, targets.tolist(), needed.tolist(), process)
        else:
            planned = video.decode(plan_decode(index, targets), needed.tolist(), process)
    stamps = planned.stamps_ms
    decoded = _Decoded(planned.kept, stamps, stamps[0], index.num_frames, found)
    frames = _video_frames(decoded, selection, fps, index.num_frames, path, geometry)
    frames.motion_signal = signal
    return frames


def _video_frames(decoded, selection, fps, count, path, geometry):
    return SampledFrames(
        frames=stack_frames(decoded.kept, selection.indices, path),
        frame_indices=selection.indices.astype(np.int64, copy=False),
        timestamps_ms=_video_timestamps(decoded, selection.indices, fps),
        num_valid=int(selection.num_valid),
        fps=float(fps),
        num_source_frames=count,
        face_found=face_flags(decoded.found, selection.indices, geometry),
    )


def open_video(path):
    """Opens a video file with OpenCV (FFmpeg, one decoder thread).

    Raises:
        SourceReadError: OpenCV cannot open it.
    """
    # One FFmpeg thread per video: parallelism comes from decoding several videos
    # at once (FeatureExtractor's decode workers), and FFmpeg's own frame threads
    # only add overhead on top of that: about 20% more CPU per UCF-101-sized XVID
    # video, for identical frames. Other backends (or an FFmpeg that refuses the
    # parameter) open the file without it.
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not capture.isOpened():
        capture.release()
        capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise SourceReadError(
            path, "OpenCV cannot open it as a video (unknown container or codec, or corrupt file)"
        )
    return capture


@dataclass
class _Decoded:
    kept: dict  # source index -> processed RGB frame
    stamps: dict  # source index -> CAP_PROP_POS_MSEC after grabbing it
    first_ms: float  # CAP_PROP_POS_MSEC after grabbing frame 0 (NaN if none)
    count: int  # frames grabbed (all of them when decoded to the end)
    found: dict  # source index -> face found (face crops only)


def _decode(capture, path, wanted, geometry, *, to_end):
    """Decodes sequentially, keeping the sorted unique indices ``wanted``."""
    kept, stamps, found = {}, {}, {}
    faces = FaceTracker(geometry.face) if geometry.face is not None else None
    grab, retrieve = capture.grab, capture.retrieve
    if not grab():
        return _Decoded(kept, stamps, math.nan, 0, found)
    first_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
    position = 0  # index of the frame just grabbed
    buffer = None
    for target in wanted.tolist():
        while position < target:
            if not grab():
                return _Decoded(kept, stamps, first_ms, position + 1, found)
            position += 1
        stamps[target] = capture.get(cv2.CAP_PROP_POS_MSEC)
        ok, buffer = retrieve(buffer)
        if not ok or buffer is None:
            raise SourceReadError(path, f"frame {target} was found but could not be decoded")
        kept[target] = to_rgb(crop_face(buffer, faces, found, target), geometry)
    if to_end:
        while grab():
            position += 1
    return _Decoded(kept, stamps, first_ms, position + 1, found)


def _video_timestamps(decoded, indices, fps):
    """Decoder times relative to frame 0 when they are sensible, else index / fps."""
    unique = np.unique(indices)
    raw = np.array([decoded.stamps.get(int(i), math.nan) for i in unique], dtype=np.float64)
    relative = raw - decoded.first_ms
    sensible = (
        bool(np.all(np.isfinite(relative)))
        and bool(np.all(relative >= 0))
        and bool(np.all(np.diff(relative) > 0))
    )
    if not sensible:
        return indices.astype(np.float64) * 1000.0 / fps
    return relative[np.searchsorted(unique, indices)]


# ----------------------------------------------------------------------- images


def _read_clip(source, sampling, geometry, rng, requested, image_fps):
    """Reads a clip: image files, or entries a registered clip loader reads."""
    entries = [os.fspath(entry) for entry in source]
    if not entries:
        raise SourceReadError("<empty clip>", "the clip lists no image file")
    fps = _image_fps(image_fps)
    loader = clip_loader_for(entries)
    load = loader.make(entries) if loader is not None else None
    return _read_images(entries, entries[0], sampling, geometry, rng, requested, fps, load)


def _read_images(paths, name, sampling, geometry, rng, requested, fps, load=None):
    """Reads a clip; ``load(index)`` decodes one image (default: the image file)."""
    if load is None:
        for path in paths:
            problem = file_problem(path)
            if problem:
                raise SourceReadError(path, problem)
        load = functools.partial(_imread, paths)
    count = len(paths)
    if requested is not None:
        if requested.max() >= count:
            raise SourceReadError(
                name,
                f"frame index {int(requested.max())} requested, but there are only {count} images",
            )
        selection = FrameSelection(indices=requested, num_valid=_num_valid(requested))
    elif sampling.mode in SIGNAL_MODES:
        selection = select_from_images(sampling, load, count, rng)
    else:
        selection = select_frames(sampling, count, fps, rng)
    kept, found = {}, {}
    faces = FaceTracker(geometry.face) if geometry.face is not None else None
    for index in np.unique(selection.indices).tolist():
        kept[index] = to_rgb(crop_face(load(index), faces, found, index), geometry)
    return SampledFrames(
        frames=stack_frames(kept, selection.indices, name),
        frame_indices=selection.indices.astype(np.int64, copy=False),
        timestamps_ms=selection.indices.astype(np.float64) * 1000.0 / fps,
        num_valid=int(selection.num_valid),
        fps=float(fps),
        num_source_frames=count,
        face_found=face_flags(found, selection.indices, geometry),
        motion_signal=FULL_SCAN if requested is None and sampling.mode == "motion" else None,
    )


def _imread(paths, index):
    image = cv2.imread(paths[index], cv2.IMREAD_COLOR)
    if image is None:
        raise SourceReadError(
            paths[index], "OpenCV cannot decode it as an image (unknown format or corrupt data)"
        )
    return image


def _list_frame_directory(path):
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(path)
            if is_image_file(entry.name) and entry.is_file()
        )
    except PermissionError:
        raise SourceReadError(path, "permission denied: cannot list the directory") from None
    if not names:
        raise SourceReadError(
            path, f"no image files in the frame directory (expected {sorted(IMAGE_EXTENSIONS)})"
        )
    return [os.path.join(path, name) for name in names]


def _image_fps(image_fps):
    try:
        fps = float(image_fps)
    except (TypeError, ValueError):
        fps = math.nan
    if not (math.isfinite(fps) and fps > 0):
        raise UsageError(f"image_fps must be a positive number. Received: image_fps={image_fps!r}")
    return fps


# ----------------------------------------------------------------------- shared


def file_problem(path):
    """Says why ``path`` cannot be a readable file, or returns None."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return "no such file or directory"
    except PermissionError:
        return "permission denied"
    except OSError as error:
        return f"cannot access it ({error.strerror or error})"
    if not os.path.isfile(path):
        return "not a regular file"
    if size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _requested_indices(frame_indices):
    if frame_indices is None:
        return None
    indices = np.asarray(frame_indices)
    if (
        indices.ndim != 1
        or indices.size == 0
        or not np.issubdtype(indices.dtype, np.integer)
        or indices.min() < 0
    ):
        raise UsageError(
            "frame_indices must be a non-empty 1-D sequence of non-negative integers. "
            f"Received: frame_indices={frame_indices!r}"
        )
    return indices.astype(np.int64)


def _num_valid(indices):
    """Length minus the trailing repeats of the last index (the padding convention)."""
    count = len(indices)
    while count > 1 and indices[count - 1] == indices[count - 2]:
        count -= 1
    return count
