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

A validation split of its own (``--val-share``, a share of the groups, taken
from the training groups; ``--test-share`` sets the test groups' share) goes into
``DATA/manifest.csv`` (``path,label,split,group``), which is then the dataset
to extract: a cache with a ``val`` split, which every trial of ``vidseq tune``
and every run of ``vidseq compare`` scores on, instead of a carve-out of a
few training videos. The task of the re-measured table in docs/tune.md::

    python bench/tune_task.py --workdir /tmp/tune-val/A --videos-per-class 36 --pairs 5 \
        --event-fraction 0.1 --noise 4 --test-share 0.25 --val-share 0.25
    vidseq extract-features /tmp/tune-val/A/data/manifest.csv --out /tmp/tune-val/A/motion.h5 \
        --backbone tiny --input-size 96 --sampling motion --frames 12

``--smoke`` writes a handful of short videos (a check that the script runs).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from vidseq.quiet import quiet_tensorflow

quiet_tensorflow()  # sparse_event imports the extraction pipeline, hence TensorFlow

from sparse_event import (  # noqa: E402  (bench/ is on sys.path)
    CLIPS_PER_GROUP,
    PAIRS,
    write_dataset,
)


def write_manifest(root, test_groups, val_groups):
    """Writes ``root/manifest.csv``: the UCF-101 lists' videos, the next ``val_groups`` as val.

    Groups ``1..test_groups`` of each class are test (as in the lists), groups
    ``test_groups + 1 .. test_groups + val_groups`` validation, the others
    training. A class and its time-reversed twin share group numbers, so twins
    land in the same split.

    Args:
        root: The dataset folder ``write_dataset`` wrote.
        test_groups: Test groups per class (``write_dataset``'s return).
        val_groups: Validation groups per class.

    Returns:
        ``{split: videos}``.
    """
    lists = root / "ucfTrainTestlist"
    listed = [line.split()[0] for name in ("trainlist01.txt", "testlist01.txt")
              for line in (lists / name).read_text().splitlines()]  # fmt: skip
    sizes = {"train": 0, "val": 0, "test": 0}
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split", "group"])
        for rel in sorted(listed):
            label = rel.split("/")[0]
            group = int(rel.rsplit("_g", 1)[1][:2])
            split = "test" if group <= test_groups else "train"
            if split == "train" and group <= test_groups + val_groups:
                split = "val"
            sizes[split] += 1
            writer.writerow([rel, label, split, f"{label}_g{group:02d}"])
    return sizes


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
    parser.add_argument("--test-share", type=float, default=1 / 3, help="share of test groups")
    parser.add_argument(
        "--val-share", type=float, default=0.0, help="share of val groups (DATA/manifest.csv)"
    )
    parser.add_argument("--smoke", action="store_true", help="6 short videos per class")
    args = parser.parse_args(argv)
    if args.smoke:
        args.videos_per_class, args.length = 6, 40
    root = Path(args.workdir) / "data"
    if not 1 <= args.pairs <= len(PAIRS):
        parser.error(f"--pairs must be 1 to {len(PAIRS)}. Received: {args.pairs}")
    if not 0.0 <= args.val_share < 1.0 - args.test_share:
        parser.error("--val-share must be >= 0 and leave training groups beside --test-share")
    test_groups = write_dataset(
        root,
        args.videos_per_class,
        args.length,
        args.event_fraction,
        args.size,
        0,
        pairs=args.pairs,
        noise=args.noise,
        jitter=args.jitter,
        test_share=args.test_share,
    )
    print(f"wrote {root}")
    if args.val_share > 0:
        groups = -(-args.videos_per_class // CLIPS_PER_GROUP)
        val_groups = max(1, round(groups * args.val_share))
        if test_groups + val_groups >= groups:
            parser.error(f"{groups} groups per class leave none for training beside test and val")
        sizes = write_manifest(root, test_groups, val_groups)
        print(f"wrote {root / 'manifest.csv'}: " + ", ".join(f"{n} {k}" for k, n in sizes.items()))


if __name__ == "__main__":
    main()
