"""The one feature cache of retrieval and the cached probe: hit, miss, foreign protocol, damage."""
import logging
import os

import torch

from ascnet.evaluation.feature_cache import cache_path, load_or_extract_features


def _extractor(calls):
    def extract():
        calls.append(1)
        return torch.arange(12, dtype=torch.float32).view(4, 3) + len(calls), torch.tensor([0, 1, 0, 1])

    return extract


def test_second_call_reads_the_cache(tmp_path):
    calls = []
    proto = {"weights": "sha256:ab", "num_clips": 2}
    f1, l1, hit1 = load_or_extract_features(str(tmp_path), proto, "test", True, "X.CACHE_DIR", _extractor(calls))
    f2, l2, hit2 = load_or_extract_features(str(tmp_path), proto, "test", True, "X.CACHE_DIR", _extractor(calls))
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert torch.equal(f1, f2) and torch.equal(l1, l2)
    assert os.path.basename(cache_path(str(tmp_path), proto, "test")).startswith("test_")
    assert os.listdir(tmp_path) == [os.path.basename(cache_path(str(tmp_path), proto, "test"))]


def test_another_protocol_or_split_or_no_cache_extracts_again(tmp_path):
    calls = []
    proto = {"weights": "sha256:ab", "num_clips": 2}
    load_or_extract_features(str(tmp_path), proto, "test", True, "X.CACHE_DIR", _extractor(calls))
    _, _, hit = load_or_extract_features(str(tmp_path), dict(proto, weights="sha256:cd"), "test", True,
                                         "X.CACHE_DIR", _extractor(calls))
    assert not hit and len(calls) == 2
    _, _, hit = load_or_extract_features(str(tmp_path), proto, "train", True, "X.CACHE_DIR", _extractor(calls))
    assert not hit and len(calls) == 3
    assert len(os.listdir(tmp_path)) == 3
    _, _, hit = load_or_extract_features(str(tmp_path / "off"), proto, "test", False, "X.CACHE_DIR", _extractor(calls))
    assert not hit and len(calls) == 4 and not (tmp_path / "off").exists()


def test_damaged_cache_is_recomputed_and_rewritten(tmp_path, caplog):
    calls = []
    proto = {"weights": "sha256:ab"}
    path = cache_path(str(tmp_path), proto, "test")
    load_or_extract_features(str(tmp_path), proto, "test", True, "X.CACHE_DIR", _extractor(calls))
    with open(path, "r+b") as f:
        f.truncate(20)
    with caplog.at_level(logging.WARNING):
        feats, _, hit = load_or_extract_features(str(tmp_path), proto, "test", True, "X.CACHE_DIR", _extractor(calls))
    assert not hit and len(calls) == 2 and "feature cache" in caplog.text
    again, _, hit = load_or_extract_features(str(tmp_path), proto, "test", True, "X.CACHE_DIR", _extractor(calls))
    assert hit and torch.equal(again, feats)
