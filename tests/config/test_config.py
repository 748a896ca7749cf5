import pytest

from ascnet.config import ConfigError, get_cfg, load_config, parse_opts


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_base_merge_and_overrides(tmp_path):
    _write(tmp_path / "base.yaml", "DATA:\n  NUM_FRAMES: 8\n  CROP_SIZE: 64\nSOLVER:\n  BASE_LR: 0.5\n")
    child = _write(tmp_path / "child.yaml", "_BASE_: base.yaml\nDATA:\n  CROP_SIZE: 96\n")
    cfg = load_config(child, ["SOLVER.BASE_LR", "0.25", "--opts", "TRAIN.BATCH_SIZE", "8"])
    assert cfg.DATA.NUM_FRAMES == 8  # from the base
    assert cfg.DATA.CROP_SIZE == 96  # child overrides base
    assert cfg.SOLVER.BASE_LR == 0.25  # command line overrides both
    assert cfg.TRAIN.BATCH_SIZE == 8
    assert cfg.DATA.SAMPLING_RATE == get_cfg().DATA.SAMPLING_RATE  # untouched default


def test_base_list_and_cycle(tmp_path):
    _write(tmp_path / "a.yaml", "DATA:\n  NUM_FRAMES: 4\n")
    _write(tmp_path / "b.yaml", "DATA:\n  NUM_FRAMES: 12\n  CROP_SIZE: 32\n")
    c = _write(tmp_path / "c.yaml", "_BASE_: [a.yaml, b.yaml]\n")
    cfg = load_config(c)
    assert (cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE) == (12, 32)
    _write(tmp_path / "x.yaml", "_BASE_: y.yaml\n")
    y = _write(tmp_path / "y.yaml", "_BASE_: x.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(y)


def test_unknown_key_suggests_closest(tmp_path):
    p = _write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "SOLVER.BASE_LRR" in str(e.value) and "SOLVER.BASE_LR" in str(e.value)
    with pytest.raises(ConfigError, match="DATA.NUM_FRAMES"):
        load_config(None, ["DATA.NUM_FRAME", "8"])


def test_bad_type(tmp_path):
    p = _write(tmp_path / "bad.yaml", "TRAIN:\n  BATCH_SIZE: eight\n")
    with pytest.raises(ConfigError, match="TRAIN.BATCH_SIZE.*expects a int"):
        load_config(p)
    with pytest.raises(ConfigError, match="expects a list"):
        load_config(None, ["ASCNET.SPEEDS", "2"])
    # an int where a float is expected is fine
    assert load_config(None, ["SOLVER.BASE_LR", "1"]).SOLVER.BASE_LR == 1.0


def test_bad_values():
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        load_config(None, ["NUM_CPU_PROCESSES", "3", "TRAIN.BATCH_SIZE", "8", "TEST.BATCH_SIZE", "9", "RETRIEVAL.BATCH_SIZE", "9"])
    # only the phases the task runs are checked: pretraining ignores the test batch size ...
    cfg = load_config(None, ["NUM_CPU_PROCESSES", "3", "TRAIN.BATCH_SIZE", "9", "TEST.BATCH_SIZE", "8"])
    assert cfg.TEST.BATCH_SIZE == 8
    # ... but a task that tests does not
    with pytest.raises(ConfigError, match="TEST.BATCH_SIZE"):
        load_config(None, ["TASK", "test", "NUM_CPU_PROCESSES", "3", "TEST.BATCH_SIZE", "8"])
    from ascnet.engine.plugins import load_config as load_run_config  # TASK: the engine's check

    with pytest.raises(ConfigError, match="TASK"):
        load_run_config(None, ["TASK", "pretrian"])
    with pytest.raises(ConfigError, match="MEMORY_BANK.SEARCH"):
        load_config(None, ["MEMORY_BANK.SEARCH", "annoy"])


def test_odd_opts():
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        parse_opts(["TRAIN.BATCH_SIZE"])


def test_yaml_is_read_safely(tmp_path):
    p = _write(tmp_path / "evil.yaml", "OUTPUT_DIR: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="safe loader"):
        load_config(p)


def test_none_is_a_choice_not_null(tmp_path):
    # "none" is a value of several choice keys, from the command line and from YAML alike.
    cfg = load_config(None, ["LINEAR.FEATURE_NORM", "none", "MODEL.BACKBONE.NORM", "none"])
    assert cfg.LINEAR.FEATURE_NORM == "none" and cfg.MODEL.BACKBONE.NORM == "none"
    p = _write(tmp_path / "n.yaml", "LINEAR:\n  FEATURE_NORM: none\n")
    assert load_config(p).LINEAR.FEATURE_NORM == "none"
    # A real null is refused with the key and its expected type, not passed on to crash later.
    p = _write(tmp_path / "null.yaml", "SOLVER:\n  BASE_LR: null\n")
    with pytest.raises(ConfigError, match="SOLVER.BASE_LR.*expects a float.*got None"):
        load_config(p)
    with pytest.raises(ConfigError, match="OUTPUT_DIR.*got None"):
        load_config(None, ["OUTPUT_DIR", "None"])
