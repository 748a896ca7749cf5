"""UCF-101 official layout: classInd, train/test lists, labels from the folder for test lists."""
import os

import pytest
import torch
from video_helpers import augmented, tiny_cfg, write_index_video

from ascnet.data import build_dataset

CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]


def make_ucf(root, video_dir="UCF-101", ext=".avi"):
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    with open(os.path.join(lists, "classInd.txt"), "w") as f:
        f.writelines(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES))
    entries = []
    for ci, c in enumerate(CLASSES):
        for g in (1, 2, 8, 9):
            # Folder and file names may differ in case from classInd.txt (HandStandPushups).
            folder = c.replace("Handstand", "HandStand")
            rel = f"{folder}/v_{folder}_g{g:02d}_c01{ext}"
            write_index_video(os.path.join(root, video_dir, rel), 16, offset=ci * 20 + g)
            entries.append((rel, ci + 1, g))
    for sid in (1, 2, 3):
        test_groups = {1: (1, 2), 2: (8,), 3: (9,)}[sid]
        with open(os.path.join(lists, f"trainlist0{sid}.txt"), "w") as f:
            f.writelines(f"{rel} {n}\r\n" for rel, n, g in entries if g not in test_groups)
        with open(os.path.join(lists, f"testlist0{sid}.txt"), "w") as f:
            # Test lists have no label: the class comes from the folder.
            f.writelines(f"{rel}\r\n" for rel, n, g in entries if g in test_groups)
    return root


@pytest.mark.parametrize("video_dir,ext", [("UCF-101", ".avi"), ("videos", ".mp4")])
def test_ucf101_splits_labels_and_samples(tmp_path, video_dir, ext):
    root = make_ucf(str(tmp_path), video_dir, ext)
    cfg = tiny_cfg(root)
    train = build_dataset(cfg, "train", "pretrain", name="UCF101")
    test = build_dataset(cfg, "test", "test", name="UCF101")
    assert train.class_names == CLASSES and train.num_classes == 3
    assert len(train) == 6 and len(test) == 6
    assert sorted(train.labels) == [0, 0, 1, 1, 2, 2] and sorted(test.labels) == [0, 0, 1, 1, 2, 2]
    assert all("_g08_" in p or "_g09_" in p for p in train.paths)
    assert all(os.path.exists(p) for p in train.paths + test.paths)
    assert not set(train.paths) & set(test.paths)
    s = train[(0, 123)]
    assert augmented(train, s).shape == (2, 3, 8, 56, 56) and s["index"] == 0 and s["label"] == train.labels[0]
    t = test[1]
    assert t["clips"].shape == (6, 3, 8, 56, 56) and t["label"] == test.labels[1]
    assert torch.equal(test[1]["clips"], t["clips"])


def test_ucf101_split_ids_and_path_prefix(tmp_path):
    root = make_ucf(str(tmp_path / "data"), "somewhere_else")
    cfg = tiny_cfg(root, DATA__SPLIT_ID=2, DATA__PATH_PREFIX=os.path.join(root, "somewhere_else"))
    test = build_dataset(cfg, "test", "train", name="UCF101")
    assert len(test) == 3 and all("_g08_" in p for p in test.paths)
    assert augmented(test, test[0]).shape == (3, 8, 56, 56)
    with pytest.raises(ValueError, match="SPLIT_ID"):
        build_dataset(tiny_cfg(root, DATA__SPLIT_ID=4), "train", "train", name="UCF101")


def test_ucf101_missing_annotations_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="PATH_TO_DATA_DIR"):
        build_dataset(tiny_cfg(str(tmp_path)), "train", "train", name="UCF101")


def test_file_names_with_spaces_and_unparseable_lines(tmp_path):
    root = make_ucf(str(tmp_path))
    lists = os.path.join(root, "ucfTrainTestlist")
    spaced = "YoYo/v_YoYo g97_c01.avi"
    write_index_video(os.path.join(root, "UCF-101", spaced), 16)
    with open(os.path.join(lists, "trainlist01.txt"), "a") as f:
        f.write(f"{spaced} 3\r\n")
    with open(os.path.join(lists, "testlist01.txt"), "a") as f:
        f.write(f"{spaced}\r\n")
    cfg = tiny_cfg(root)
    train = build_dataset(cfg, "train", "train", name="UCF101")
    test = build_dataset(cfg, "test", "test", name="UCF101")
    for ds in (train, test):
        i = [k for k, p in enumerate(ds.paths) if p.endswith(spaced)]
        assert len(i) == 1 and ds.labels[i[0]] == 2 and os.path.exists(ds.paths[i[0]])
    n_lines = len(open(os.path.join(lists, "trainlist01.txt")).read().splitlines())
    with open(os.path.join(lists, "trainlist01.txt"), "a") as f:
        f.write("YoYo/v_YoYo_g98_c01.avi three\n")
    with pytest.raises(ValueError, match=rf"trainlist01\.txt.* line {n_lines + 1}: .*'<path> <class number>'"):
        build_dataset(cfg, "train", "train", name="UCF101")


def test_clips_of_one_group_share_a_source_id(tmp_path):
    """Issue 20 item 2: v_<Class>_g08_c01 and _c02 are cuts of one source video."""
    root = make_ucf(str(tmp_path))
    extra = "YoYo/v_YoYo_g08_c02.avi"
    write_index_video(os.path.join(root, "UCF-101", extra), 16, offset=99)
    with open(os.path.join(root, "ucfTrainTestlist", "testlist02.txt"), "a") as f:
        f.write(f"{extra}\r\n")
    test = build_dataset(tiny_cfg(root, DATA__SPLIT_ID=2), "test", "test", name="UCF101")
    by_name = {os.path.basename(p): s for p, s in zip(test.paths, test.sources)}
    assert by_name["v_YoYo_g08_c01.avi"] == by_name["v_YoYo_g08_c02.avi"]
    assert len({by_name[f"v_{c.replace('Handstand', 'HandStand')}_g08_c01.avi"] for c in CLASSES}) == 3
    assert test.source_names[by_name["v_YoYo_g08_c02.avi"]] == "yoyo_g08"
    assert test.source_of("x/v_HandstandPushups_g08_c03.avi") == test.source_of("y/v_HandStandPushups_g08_c01.avi")
    assert len(test.source_names) == 3 and len(test) == 4
    # Every mode's sample carries it; the default collate makes it an (N,) int64 tensor.
    k = [os.path.basename(p) for p in test.paths].index("v_YoYo_g08_c02.avi")
    assert test[k]["source"] == by_name["v_YoYo_g08_c02.avi"]
    train = build_dataset(tiny_cfg(root), "train", "pretrain", name="UCF101")
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch["source"].dtype == torch.int64 and batch["source"].tolist() == list(train.sources[:4])
    assert len(set(train.sources)) == len(train)  # one clip per group in the training list
