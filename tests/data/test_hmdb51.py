"""HMDB-51 official layout: per-class split files with tags 0/1/2."""
import os

import pytest
from video_helpers import augmented, tiny_cfg, write_index_video

from ascnet.data import build_dataset

CLASSES = ["brush_hair", "cartwheel", "wave"]


def make_hmdb(root):
    split_dir = os.path.join(root, "testTrainMulti_7030_splits")
    os.makedirs(split_dir, exist_ok=True)
    for ci, c in enumerate(CLASSES):
        names = [f"{c}_clip_{k}_f_cm_np1_ri_med_{k}.avi" for k in range(4)]
        for k, n in enumerate(names):
            write_index_video(os.path.join(root, "videos", c, n), 16, offset=ci * 4 + k)
        for sid in (1, 2, 3):
            tags = [1, 1, 2, 0] if sid == 1 else [2, 1, 1, 0]
            with open(os.path.join(split_dir, f"{c}_test_split{sid}.txt"), "w") as f:
                f.writelines(f"{n} {t} \n" for n, t in zip(names, tags))
    return root


def test_hmdb51_splits_and_labels(tmp_path):
    root = make_hmdb(str(tmp_path))
    cfg = tiny_cfg(root)
    train = build_dataset(cfg, "train", "train", name="HMDB51")
    test = build_dataset(cfg, "test", "test", name="HMDB51")
    assert train.class_names == CLASSES
    assert len(train) == 6 and len(test) == 3
    assert train.labels == [0, 0, 1, 1, 2, 2] and test.labels == [0, 1, 2]
    assert all("_clip_2_" in p for p in test.paths)  # tag 2 -> test; tag 0 unused
    assert not any("_clip_3_" in p for p in train.paths + test.paths)
    assert augmented(train, train[(1, 5)]).shape == (3, 8, 56, 56)
    assert test[2]["clips"].shape == (6, 3, 8, 56, 56) and test[2]["label"] == 2
    split2 = build_dataset(tiny_cfg(root, DATA__SPLIT_ID=2), "test", "test", name="HMDB51")
    assert all("_clip_0_" in p for p in split2.paths)


def test_hmdb51_missing_split_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="testTrainMulti_7030_splits"):
        build_dataset(tiny_cfg(str(tmp_path)), "train", "train", name="HMDB51")


def test_file_names_with_spaces_and_unparseable_lines(tmp_path):
    root = make_hmdb(str(tmp_path))
    split_file = os.path.join(root, "testTrainMulti_7030_splits", "wave_test_split1.txt")
    spaced = "wave hello g97 clip.avi"
    write_index_video(os.path.join(root, "videos", "wave", spaced), 16)
    with open(split_file, "a") as f:
        f.write(f"{spaced} 2 \n")
    test = build_dataset(tiny_cfg(root), "test", "test", name="HMDB51")
    assert test.paths[-1].endswith(f"wave/{spaced}") and test.labels[-1] == 2 and os.path.exists(test.paths[-1])
    with open(split_file, "a") as f:
        f.write("wave_broken.avi x\n")
    with pytest.raises(ValueError, match=r"wave_test_split1\.txt.* line 6: .*tag"):
        build_dataset(tiny_cfg(root), "test", "test", name="HMDB51")


def test_source_ids_follow_the_hmdb_file_name_convention(tmp_path):
    """Issue 20 item 2: clips named <source>_<action>_<meta...>_<n> share <source>."""
    from ascnet.data.datasets.hmdb51 import hmdb_source

    assert hmdb_source("April_09_brush_hair_u_nm_np1_ba_goo_0", "brush_hair") == "April_09"
    assert hmdb_source("Jessica_and_Gregs_Cartwheel_Competition_cartwheel_f_cm_np1_ba_bad_0", "cartwheel") == (
        "Jessica_and_Gregs_Cartwheel_Competition"
    )
    assert hmdb_source("not the convention", "wave") == "not the convention"
    root = str(tmp_path)
    split_dir = os.path.join(root, "testTrainMulti_7030_splits")
    os.makedirs(split_dir)
    clips = {
        "brush_hair": ["Movie_A_brush_hair_h_nm_np1_fr_goo_0.avi", "Movie_A_brush_hair_h_nm_np1_fr_goo_1.avi",
                       "Movie_B_brush_hair_u_cm_np2_le_med_0.avi"],
        "wave": ["Movie_A_wave_u_cm_np1_ri_bad_0.avi", "Other_wave_f_nm_np3_ba_goo_2.avi"],
    }
    for c, names in clips.items():
        for k, n in enumerate(names):
            write_index_video(os.path.join(root, "videos", c, n), 16, offset=k)
        with open(os.path.join(split_dir, f"{c}_test_split1.txt"), "w") as f:
            f.writelines(f"{n} 1 \n" for n in names)
    ds = build_dataset(tiny_cfg(root), "train", "train", name="HMDB51")
    names = [ds.source_names[s] for s in ds.sources]
    assert names == ["Movie_A", "Movie_A", "Movie_B", "Movie_A", "Other"]
    assert list(ds.sources) == [0, 0, 1, 0, 2] and ds[(1, 0)]["source"] == 0
