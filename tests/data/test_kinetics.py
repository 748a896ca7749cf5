"""Kinetics: official CSV layout (flat or class folders) and PySlowFast path/label lists."""
import os

import pytest
from video_helpers import augmented, tiny_cfg, write_index_video

from ascnet.data import build_dataset

ROWS = [  # label, youtube_id, start, end, split
    ("abseiling", "aaaaaaaaaaa", 4, 14, "train"),
    ("air drumming", "bbbbbbbbbbb", 0, 10, "train"),
    ("abseiling", "ccccccccccc", 12, 22, "train"),
    ("zumba", "ddddddddddd", 30, 40, "train"),
    ("air drumming", "eeeeeeeeeee", 1, 11, "val"),
    ("zumba", "fffffffffff", 2, 12, "val"),
]


def make_kinetics(root, class_folders: bool, missing=("ddddddddddd",)):
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split in ("train", "val"):
        with open(os.path.join(root, "annotations", f"{split}.csv"), "w") as f:
            f.write("label,youtube_id,time_start,time_end,split,is_cc\n")
            for k, (label, yid, s, e, sp) in enumerate(ROWS):
                if sp == split:
                    lab = f'"{label}"' if " " in label else label
                    f.write(f"{lab},{yid},{s},{e},{sp},0\n")
                    if yid in missing:
                        continue
                    folder = label.replace(" ", "_") if class_folders else ""
                    name = f"{yid}_{s:06d}_{e:06d}.mp4"
                    write_index_video(os.path.join(root, split, folder, name), 16, offset=k)
    return root


@pytest.mark.parametrize("class_folders", [False, True])
def test_kinetics_official_layout(tmp_path, class_folders):
    root = make_kinetics(str(tmp_path), class_folders)
    train = build_dataset(tiny_cfg(root), "train", "pretrain", name="Kinetics")
    val = build_dataset(tiny_cfg(root), "val", "test", name="Kinetics")
    assert train.class_names == ["abseiling", "air drumming", "zumba"]
    assert val.class_names == train.class_names
    assert len(train) == 3  # the missing video is left out
    assert [os.path.basename(p)[:3] for p in train.paths] == ["aaa", "bbb", "ccc"]
    assert train.labels == [0, 1, 0] and val.labels == [1, 2]
    assert augmented(train, train[(2, 0)]).shape == (2, 3, 8, 56, 56)
    assert val[0]["clips"].shape == (6, 3, 8, 56, 56)


def test_kinetics_pyslowfast_list(tmp_path):
    root = str(tmp_path)
    for k in range(3):
        write_index_video(os.path.join(root, "vids", f"x{k}.avi"), 16, offset=k)
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("vids/x0.avi 4\nvids/x1.avi 0\n\nvids/x2.avi 4\n")
    ds = build_dataset(tiny_cfg(root), "train", "train", name="Kinetics")
    assert ds.labels == [4, 0, 4] and ds.num_classes == 5
    assert ds.paths[0] == os.path.join(root, "vids/x0.avi")
    assert augmented(ds, ds[(0, 1)]).shape == (3, 8, 56, 56) and ds[(0, 1)]["label"] == 4


def test_kinetics_without_annotations_says_what_it_expects(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations/train.csv"):
        build_dataset(tiny_cfg(str(tmp_path)), "train", "train", name="Kinetics")


def test_kinetics_validate_alias_and_path_prefix(tmp_path):
    root = str(tmp_path / "k400")
    os.makedirs(os.path.join(root, "annotations"))
    with open(os.path.join(root, "annotations", "validate.csv"), "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\nzumba,zzzzzzzzzzz,3,13,val\n")
    videos = str(tmp_path / "elsewhere")
    write_index_video(os.path.join(videos, "validate", "zzzzzzzzzzz_000003_000013.mp4"), 16)
    ds = build_dataset(tiny_cfg(root, DATA__PATH_PREFIX=videos), "val", "train", name="Kinetics")
    assert ds.paths == [os.path.join(videos, "validate", "zzzzzzzzzzz_000003_000013.mp4")]
    assert ds.class_names == ["zumba"] and ds.labels == [0]


def test_source_id_is_the_youtube_id_in_both_layouts(tmp_path):
    """Issue 20 item 2: Kinetics cuts several clips from one YouTube video."""
    root = str(tmp_path / "official")
    os.makedirs(os.path.join(root, "annotations"))
    rows = [("abseiling", "aaaaaaaaaaa", 0, 10), ("zumba", "aaaaaaaaaaa", 20, 30), ("zumba", "b_b_b_b_b_b", 0, 10)]
    with open(os.path.join(root, "annotations", "train.csv"), "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n")
        for k, (label, yid, s, e) in enumerate(rows):
            f.write(f"{label},{yid},{s},{e},train\n")
            write_index_video(os.path.join(root, "train", f"{yid}_{s:06d}_{e:06d}.mp4"), 16, offset=k)
    ds = build_dataset(tiny_cfg(root), "train", "train", name="Kinetics")
    assert list(ds.sources) == [0, 0, 1] and ds.source_names == ["aaaaaaaaaaa", "b_b_b_b_b_b"]
    assert ds[(2, 0)]["source"] == 1
    listed = str(tmp_path / "list")
    names = ["aaaaaaaaaaa_000000_000010.mp4", "ccccccccccc_000000_000010.mp4", "aaaaaaaaaaa_000020_000030.mp4",
             "other.mp4"]
    for k, n in enumerate(names):
        write_index_video(os.path.join(listed, "v", n), 16, offset=k)
    with open(os.path.join(listed, "train.csv"), "w") as f:
        f.writelines(f"v/{n} {k % 2}\n" for k, n in enumerate(names))
    ds = build_dataset(tiny_cfg(listed), "train", "train", name="Kinetics")
    assert list(ds.sources) == [0, 1, 0, 2] and ds.source_names == ["aaaaaaaaaaa", "ccccccccccc", "other"]


def test_unquoted_comma_in_a_label_names_the_file_and_line(tmp_path):
    """Issue 22, item 4: 'could not convert string to float: knot1', with no file or line."""
    from ascnet.data.utils import AnnotationError

    root = make_kinetics(str(tmp_path / "k"), class_folders=False)
    csv_path = os.path.join(root, "annotations", "train.csv")
    with open(csv_path, "a") as f:
        f.write("tying knot, knot1,eeeeeeeeeee,3,13,train,0\n")
    line = len(open(csv_path).read().splitlines())
    with pytest.raises(AnnotationError) as e:
        build_dataset(tiny_cfg(root, TRAIN__DATASET="Kinetics"), "train", "train")
    msg = str(e.value)
    assert csv_path in msg and f"line {line}:" in msg and "unquoted comma" in msg and "\n" not in msg
