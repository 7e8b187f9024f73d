"""The sparse-event task of docs/tune.md: writes its videos (UCF-101 layout) for `vidseq tune`.

Long still shots of real photographs (``skimage.data``) with one short event
(``--event-fraction`` of the frames) in time-reversed class pairs: the task of
``bench/sparse_event.py``, whose writer this reuses. The rest of the
experiment is the command line, as a user runs it (docs/tune.md)::

    python bench/tune_task.py --workdir /tmp/tune-task            # writes /tmp/tune-task/data
    vidseq extract-features /tmp/tune-task/data --out /tmp/tune-task/motion.h5 \\
        --backbone tiny --input-size 96 --sampling motion --frames 16
    vidseq compare /tmp/tune-task/motion.h5 --out /tmp/tune-task/compare \\
        --heads lstm,gru,tcn,transformer
    vidseq tune /tmp/tune-task/motion.h5 --out /tmp/tune-task/tune --trials 30

The harder task of docs/tune.md (10 classes, a 6% event, a grainy and shaky
camera, 12 frames sampled)::

    python bench/tune_task.py --workdir /tmp/tune-hard --videos-per-class 30 --pairs 5 \
        --event-fraction 0.06 --noise 6 --jitter 1
    vidseq extract-features /tmp/tune-hard/data --out /tmp/tune-hard/motion12.h5 \
        --backbone tiny --input-size 96 --sampling motion --frames 12

``--smoke`` writes a handful of short videos (a check that the script runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidseq.quiet import quiet_tensorflow

quiet_tensorflow()  # sparse_event imports the extraction pipeline, hence TensorFlow

from sparse_event import PAIRS, write_dataset  # noqa: E402  (bench/ is on sys.path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--videos-per-class", type=int, default=45)
    parser.add_argument("--length", type=int, default=120, help="frames per video")
    parser.add_argument("--event-fraction", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=96, help="video side in pixels")
    parser.add_argument("--pairs", type=int, default=3, help="class pairs (1 to 5)")
    parser.add_argument("--noise", type=float, default=0.0, help="camera grain, grey levels")
    parser.add_argument("--jitter", type=int, default=0, help="camera shake, pixels")
    parser.add_argument("--smoke", action="store_true", help="6 short videos per class")
    args = parser.parse_args(argv)
    if args.smoke:
        args.videos_per_class, args.length = 6, 40
    root = Path(args.workdir) / "data"
    if not 1 <= args.pairs <= len(PAIRS):
        parser.error(f"--pairs must be 1 to {len(PAIRS)}. Received: {args.pairs}")
    write_dataset(
        root,
        args.videos_per_class,
        args.length,
        args.event_fraction,
        args.size,
        0,
        pairs=args.pairs,
        noise=args.noise,
        jitter=args.jitter,
    )
    print(f"wrote {root}")


if __name__ == "__main__":
    main()
