"""Dataset sources on tiny dummy copies of the real layouts, and auto detection."""

from collections import defaultdict
from pathlib import Path

import pytest

from vidseq.errors import UsageError
from vidseq.extract.sources.dataset import detect_source, group_from_name, load_dataset

# A slice of the real UCF-101 lists, spelled as the official files spell them
# (CRLF line ends; the class folder "HandstandPushups" holds "v_HandStandPushups_...").
CLASS_IND = "1 ApplyEyeMakeup\r\n2 Archery\r\n3 HandstandPushups\r\n4 YoYo\r\n"
TRAIN_01 = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi 1\r\n"
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1\r\n"
    "Archery/v_Archery_g08_c01.avi 2\r\n"
    "Archery/v_Archery_g10_c03.avi 2\r\n"
    "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\r\n"
    "HandstandPushups/v_HandStandPushups_g09_c02.avi 3\r\n"
    "YoYo/v_YoYo_g25_c05.avi 4\r\n"
)
TEST_01 = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
    "Archery/v_Archery_g01_c01.avi\r\n"
    "HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n"
    "YoYo/v_YoYo_g07_c04.avi\r\n"
)
TRAIN_02 = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\r\n"
    "Archery/v_Archery_g01_c01.avi 2\r\n"
    "HandstandPushups/v_HandStandPushups_g01_c01.avi 3\r\n"
    "YoYo/v_YoYo_g25_c05.avi 4\r\n"
)
TEST_02 = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\r\n"
    "HandstandPushups/v_HandStandPushups_g08_c01.avi\r\n"
)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF-dummy")


def _ucf_root(tmp_path, *, handstand_folder="HandstandPushups", skip=(), extra=()):
    root = tmp_path / "UCF-101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_bytes(CLASS_IND.encode())
    (lists / "trainlist01.txt").write_bytes(TRAIN_01.encode())
    (lists / "testlist01.txt").write_bytes(TEST_01.encode())
    (lists / "trainlist02.txt").write_bytes(TRAIN_02.encode())
    (lists / "testlist02.txt").write_bytes(TEST_02.encode())
    names = {line.split()[0] for line in (TRAIN_01 + TEST_01).splitlines()}
    for rel in sorted(names):
        if rel in skip:
            continue
        folder, name = rel.split("/")
        if folder == "HandstandPushups":
            folder = handstand_folder
        _touch(root / folder / name)
    for rel in extra:
        _touch(root / rel)
    return root


def _by_id(dataset):
    return {item.video_id: item for item in dataset.items}


def test_ucf101_split1(tmp_path):
    root = _ucf_root(tmp_path)
    dataset = load_dataset(root, "ucf101", split=1)
    assert dataset.source == "ucf101"
    assert dataset.class_names == ["ApplyEyeMakeup", "Archery", "HandstandPushups", "YoYo"]
    assert len(dataset) == 12
    assert [item.video_id for item in dataset.items] == sorted(_by_id(dataset))
    items = _by_id(dataset)
    hs = items["HandstandPushups/v_HandStandPushups_g08_c01.avi"]
    assert (hs.label, hs.split, hs.group) == (2, "train", "g08")
    assert hs.source == str(root / "HandstandPushups" / "v_HandStandPushups_g08_c01.avi")
    assert Path(hs.source).is_absolute()
    yoyo = items["YoYo/v_YoYo_g07_c04.avi"]
    assert (yoyo.label, yoyo.split, yoyo.group) == (3, "test", "g07")
    assert dataset.split_counts() == {"train": 8, "test": 4}
    assert dataset.warnings == []


def test_ucf101_split2_and_unlisted_files(tmp_path):
    root = _ucf_root(tmp_path)
    dataset = load_dataset(root, "ucf101", split=2)
    assert dataset.split_counts() == {"train": 4, "test": 2}
    assert _by_id(dataset)["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"].split == "train"
    # 12 files on disk, 6 listed in split 2: 6 left out and counted.
    assert any("6 videos" in w and "neither" in w for w in dataset.warnings), dataset.warnings


def test_ucf101_folder_spelled_in_another_case(tmp_path):
    root = _ucf_root(tmp_path, handstand_folder="HandStandPushups")
    dataset = load_dataset(root, "ucf101")
    hs = _by_id(dataset)["HandstandPushups/v_HandStandPushups_g01_c01.avi"]
    assert hs.source == str(root / "HandStandPushups" / "v_HandStandPushups_g01_c01.avi")
    assert Path(hs.source).is_file()
    assert dataset.warnings == []


def test_ucf101_missing_file_stays_and_unlisted_file_is_counted(tmp_path):
    missing = "Archery/v_Archery_g10_c03.avi"
    root = _ucf_root(tmp_path, skip={missing}, extra=["Archery/v_Archery_g99_c01.avi"])
    dataset = load_dataset(root)  # auto: a folder with ucfTrainTestlist/
    assert dataset.source == "ucf101"
    assert missing in _by_id(dataset)
    assert not Path(_by_id(dataset)[missing].source).exists()
    assert "Archery/v_Archery_g99_c01.avi" not in _by_id(dataset)
    text = " | ".join(dataset.warnings)
    assert "1 videos under" in text and "1 listed videos are missing" in text


def test_ucf101_test_groups_and_train_groups_do_not_mix(tmp_path):
    dataset = load_dataset(_ucf_root(tmp_path))
    sides = defaultdict(set)
    for item in dataset.items:
        sides[item.group].add(item.split)
    assert all(len(s) == 1 for s in sides.values())


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("classInd.txt", "1 ApplyEyeMakeup\r\nArchery\r\n", r"classInd.txt, line 2: expected"),
        ("classInd.txt", "1 ApplyEyeMakeup\r\n3 Archery\r\n", r"classInd.txt: class indices"),
        (
            "trainlist01.txt",
            "ApplyEyeMakeup/v_a_g01_c01.avi 1\r\nBowling/v_b.avi 2\r\n",
            r"trainlist01.txt, line 2: class folder 'Bowling'",
        ),
        (
            "trainlist01.txt",
            "ApplyEyeMakeup/v_a_g01_c01.avi 2\r\n",
            r"trainlist01.txt, line 1: label 2 \(Archery\) disagrees",
        ),
        (
            "trainlist01.txt",
            "\r\nApplyEyeMakeup/v_a_g01_c01.avi x\r\n",
            r"trainlist01.txt, line 2: label must be",
        ),
        (
            "testlist01.txt",
            "Archery/v_Archery_g08_c01.avi\r\n",
            r"testlist01.txt, line 1: 'Archery/v_Archery_g08_c01.avi' is already listed in "
            r"trainlist01.txt, line 4",
        ),
        ("testlist01.txt", "v_YoYo_g01_c01.avi\r\n", r"testlist01.txt, line 1: expected '<Class>/"),
    ],
)
def test_ucf101_bad_lists_name_file_and_line(tmp_path, file, content, message):
    root = _ucf_root(tmp_path)
    (root / "ucfTrainTestlist" / file).write_bytes(content.encode())
    with pytest.raises(UsageError, match=message):
        load_dataset(root, "ucf101")


def test_ucf101_missing_list_and_bad_split(tmp_path):
    root = _ucf_root(tmp_path)
    with pytest.raises(UsageError, match=r"trainlist03.txt: not found"):
        load_dataset(root, "ucf101", split=3)
    with pytest.raises(UsageError, match="split must be 1, 2 or 3"):
        load_dataset(root, "ucf101", split=4)
    with pytest.raises(UsageError, match="ucfTrainTestlist: not found"):
        load_dataset(tmp_path, "ucf101")


def _folder_root(tmp_path):
    root = tmp_path / "videos"
    for rel in [
        "walk/v_walk_g01_c01.avi",
        "walk/v_walk_g01_c02.avi",
        "walk/v_walk_g02_c01.mp4",
        "run/v_run_g03_c01.avi",
        "run/v_run_g03_c02.AVI",
        "jump/clip_a.mkv",
        "jump/notes.txt",
        "jump/.hidden.avi",
    ]:
        _touch(root / rel)
    frames = root / "jump" / "clip_b_frames"
    frames.mkdir(parents=True)
    for i in range(3):
        (frames / f"{i:04d}.jpg").write_bytes(b"jpg")
    (root / "empty_class").mkdir()
    (root / "README.md").write_text("not a class")
    return root


def test_folder_source(tmp_path):
    root = _folder_root(tmp_path)
    dataset = load_dataset(root, seed=3)
    assert dataset.source == "folder"
    assert dataset.class_names == ["jump", "run", "walk"]
    items = _by_id(dataset)
    assert sorted(items) == [
        "jump/clip_a.mkv",
        "jump/clip_b_frames",
        "run/v_run_g03_c01.avi",
        "run/v_run_g03_c02.AVI",
        "walk/v_walk_g01_c01.avi",
        "walk/v_walk_g01_c02.avi",
        "walk/v_walk_g02_c01.mp4",
    ]
    assert items["walk/v_walk_g01_c02.avi"].group == "g01"
    assert items["walk/v_walk_g01_c02.avi"].label == 2
    assert items["jump/clip_b_frames"].source == str(root / "jump" / "clip_b_frames")
    assert items["jump/clip_a.mkv"].group == "jump/clip_a.mkv"  # its own group
    assert all(item.split in {"train", "val", "test"} for item in dataset.items)
    assert items["run/v_run_g03_c01.avi"].split == items["run/v_run_g03_c02.AVI"].split
    text = " | ".join(dataset.warnings)
    assert "groups unknown for 2 of 7 videos" in text
    assert "empty_class" in text
    assert "1 entries" in text  # notes.txt
    again = load_dataset(root, "folder", seed=3)
    assert again.items == dataset.items


def test_folder_source_errors(tmp_path):
    loose = tmp_path / "loose"
    _touch(loose / "a.avi")
    with pytest.raises(UsageError, match=r"loose: no videos found; expected root/<class>/"):
        load_dataset(loose)
    with pytest.raises(UsageError, match="no such file or folder"):
        load_dataset(tmp_path / "absent")


def _manifest(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_with_splits_and_groups(tmp_path):
    _touch(tmp_path / "clips" / "a.avi")
    path = _manifest(
        tmp_path,
        "Path,Label,Split,Group,notes\n"
        "clips/a.avi,walk,train,long1,x\n"
        "clips/b.avi,walk,Training,long1,\n"
        "clips/c.avi,run,validation,,\n"
        "\n"
        "clips/d_g04_c01.avi,run,test,,\n",
    )
    dataset = load_dataset(path)
    assert dataset.source == "manifest"
    assert dataset.class_names == ["run", "walk"]
    items = _by_id(dataset)
    assert items["clips/a.avi"].source == str(tmp_path / "clips" / "a.avi")
    assert (items["clips/b.avi"].label, items["clips/b.avi"].split) == (1, "train")
    assert items["clips/b.avi"].group == "long1"
    assert (items["clips/c.avi"].split, items["clips/c.avi"].group) == ("val", "clips/c.avi")
    assert items["clips/d_g04_c01.avi"].group == "g04"
    assert any("3 listed videos are missing" in w for w in dataset.warnings)


def test_manifest_without_split_column_gets_group_aware_split(tmp_path):
    rows = [f"v{i}_g{i % 5:02d}_c01.avi,{'ab'[i % 2]},g{i % 5}" for i in range(40)]
    path = _manifest(tmp_path, "path,label,group\n" + "\n".join(rows) + "\n")
    dataset = load_dataset(path, "manifest", seed=1)
    sides = defaultdict(set)
    for item in dataset.items:
        sides[item.group].add(item.split)
    assert len(sides) == 5
    assert all(len(s) == 1 for s in sides.values())
    assert {item.split for item in dataset.items} == {"train", "val", "test"}


def test_manifest_without_groups_warns(tmp_path):
    path = _manifest(tmp_path, "path,label\na.avi,x\nb.avi,y\n")
    dataset = load_dataset(path)
    assert any("groups unknown for 2 of 2" in w for w in dataset.warnings)
    assert [item.group for item in dataset.items] == ["a.avi", "b.avi"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,label\na.avi,x\n", r"data.csv, line 1: header lacks the column\(s\) path"),
        ("path,label\na.avi,x\nb.avi\n", r"data.csv, line 3: expected 2 fields"),
        ("path,label\na.avi,x\nb.avi,\n", r"data.csv, line 3: empty label"),
        ("path,label\n,x\n", r"data.csv, line 2: empty path"),
        (
            "path,label,split\na.avi,x,train\nb.avi,x,holdout\n",
            r"data.csv, line 3: unknown split 'holdout'; expected train, val or test",
        ),
        ("path,label,split\na.avi,x,\n", r"data.csv, line 2: empty split"),
        (
            'path,label\na.avi,x\n"b\nc.avi",x\n./a.avi,y\n',
            r"data.csv, line 5: './a.avi' is already listed on line 2",
        ),
        (
            "path,label,split,group\na.avi,x,train,g1\nb.avi,x,train,g2\nc.avi,y,test,g1\n",
            r"data.csv: group 'g1' is on two sides of the split: train \(line 2\) and test "
            r"\(line 4\)",
        ),
        (
            "path,label,split\nv_X_g01_c01.avi,x,train\nv_X_g01_c02.avi,x,val\n",
            r"group 'g01' is on two sides",
        ),
        ("path,label\n", r"data.csv: no rows after the header"),
        ("", r"data.csv: empty; expected a header"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path, text, message):
    path = _manifest(tmp_path, text)
    with pytest.raises(UsageError, match=message):
        load_dataset(path, "manifest")


def test_auto_detection(tmp_path):
    fer = _manifest(tmp_path, "emotion,pixels,Usage\n0,1 2 3,Training\n", name="fer2013.csv")
    assert detect_source(fer) == "fer2013"
    with pytest.raises(UsageError, match="no valid row"):
        load_dataset(fer)
    with pytest.raises(UsageError, match="no valid row"):
        load_dataset(fer, "fer2013")
    manifest = _manifest(tmp_path, "path,label\na.avi,x\n")
    assert detect_source(manifest) == "manifest"
    assert detect_source(_ucf_root(tmp_path)) == "ucf101"
    assert detect_source(_folder_root(tmp_path)) == "folder"
    video = tmp_path / "x.avi"
    _touch(video)
    with pytest.raises(UsageError, match=r"x.avi: expected a dataset folder or a .csv manifest"):
        load_dataset(video)
    with pytest.raises(UsageError, match="unknown dataset source 'kinetics'"):
        load_dataset(tmp_path, "kinetics")


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("v_ApplyEyeMakeup_g08_c01.avi", "g08"),
        ("HandstandPushups/v_HandStandPushups_g25_c07.avi", "g25"),
        ("v_YoYo_g01_c01", "g01"),
        ("clip_g1_c123.mp4", "g1"),
        ("walk_01.mp4", ""),
        ("v_X_g08_c01x.avi", "g08"),
    ],
)
def test_group_from_name(name, group):
    assert group_from_name(name) == group
