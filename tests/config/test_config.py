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


@pytest.mark.parametrize("old,new,value", [
    ("ASCNET.EMA_BASE", "TEACHER.EMA_BASE", "0.99"),
    ("ASCNET.TARGET_BN_MODE", "TEACHER.BN_MODE", "eval"),
    ("ASCNET.SPEEDS", "DATA.SPEEDS", "[1, 2]"),
])
def test_renamed_key_names_its_new_name(tmp_path, old, new, value):
    group, leaf = old.split(".")
    p = _write(tmp_path / "old.yaml", f"{group}:\n  {leaf}: {value}\n")
    for args in ((p, []), (None, [old, value])):
        with pytest.raises(ConfigError) as e:
            load_config(*args)
        msg = str(e.value)
        assert len(msg.splitlines()) == 1 and f"{old!r}" in msg and f"is now {new!r}" in msg
    node, key = new.split(".")
    assert load_config(None, [new, value])[node][key] == {"0.99": 0.99, "eval": "eval", "[1, 2]": [1, 2]}[value]


def test_bad_type(tmp_path):
    p = _write(tmp_path / "bad.yaml", "TRAIN:\n  BATCH_SIZE: eight\n")
    with pytest.raises(ConfigError, match="TRAIN.BATCH_SIZE.*expects a int"):
        load_config(p)
    with pytest.raises(ConfigError, match="expects a list"):
        load_config(None, ["DATA.SPEEDS", "2"])
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


def test_base_naming_itself_is_a_one_line_cycle_error(tmp_path):
    # "./self.yaml" and "self.yaml" are one file: the cycle check compares normalised paths
    # (it compared the raw strings and recursed until RecursionError).
    p = _write(tmp_path / "self.yaml", "_BASE_: ./self.yaml\nDATA:\n  NUM_FRAMES: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "cycle" in msg and "self.yaml" in msg and "\n" not in msg
    sub = tmp_path / "sub"
    sub.mkdir()
    _write(sub / "a.yaml", "_BASE_: ../sub/./b.yaml\n")
    b = _write(sub / "b.yaml", "_BASE_: [../sub/a.yaml]\n")
    with pytest.raises(ConfigError, match=r"cycle: .*b\.yaml -> .*a\.yaml -> .*b\.yaml"):
        load_config(b)
    # A file used twice without a cycle (a diamond) is fine.
    _write(tmp_path / "root.yaml", "DATA:\n  NUM_FRAMES: 6\n")
    _write(tmp_path / "l.yaml", "_BASE_: root.yaml\n")
    _write(tmp_path / "r.yaml", "_BASE_: ./root.yaml\nDATA:\n  CROP_SIZE: 48\n")
    top = _write(tmp_path / "top.yaml", "_BASE_: [l.yaml, r.yaml]\n")
    cfg = load_config(top)
    assert (cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE) == (6, 48)


def test_list_values_on_the_command_line():
    # "[a, b]" of bare words is a list (it was the string "[a, b]"; PLUGINS then iterated it
    # letter by letter: "Plugin module '[' failed to import").
    assert parse_opts(["PLUGINS", "[my_plugin]"]) == {"PLUGINS": ["my_plugin"]}
    assert parse_opts(["PLUGINS", "[a, 'b']"]) == {"PLUGINS": ["a", "b"]}
    assert parse_opts(["PLUGINS", "[]"]) == {"PLUGINS": []}
    assert load_config(None, ["DATA.SPEEDS", "[1, 2]"]).DATA.SPEEDS == [1, 2]
    # A bare word for a list key is refused with the fix, before any plugin is imported.
    with pytest.raises(ConfigError) as e:
        load_config(None, ["PLUGINS", "my_plugin"])
    assert "PLUGINS" in str(e.value) and "expects a list" in str(e.value) and "PLUGINS [my_plugin]" in str(e.value)
    with pytest.raises(ConfigError, match="expects a list"):
        load_config(None, ["PLUGINS", "'my_plugin'"])


def test_choice_lists_come_from_the_components(monkeypatch):
    # One list per choice key, where the key is used: the config check reads it from there, so
    # a choice a plugin adds is accepted too.
    import ascnet.solver.build as solver_build

    with pytest.raises(ConfigError, match=r"SOLVER.OPTIMIZING_METHOD is 'adagrad'; choose one of \['sgd', 'lars', 'adamw'\]"):
        load_config(None, ["SOLVER.OPTIMIZING_METHOD", "adagrad"])
    monkeypatch.setattr(solver_build, "OPTIMIZERS", solver_build.OPTIMIZERS + ("adagrad",))
    assert load_config(None, ["SOLVER.OPTIMIZING_METHOD", "adagrad"]).SOLVER.OPTIMIZING_METHOD == "adagrad"
    # A norm is checked by the norm table when the backbone is built (a plugin may add one);
    # the check that spans two keys stays in the config.
    assert load_config(None, ["MODEL.BACKBONE.NORM", "plugin_norm"]).MODEL.BACKBONE.NORM == "plugin_norm"
    with pytest.raises(ConfigError, match="syncbatchnorm.*NUM_GPUS"):
        load_config(None, ["MODEL.BACKBONE.NORM", "SyncBatchNorm"])


def test_components_refuse_their_unknown_choices():
    from ascnet.modeling.backbone.norm import get_norm
    from ascnet.modeling.meta_arch.classifier import Classifier

    with pytest.raises(ValueError, match="MODEL.BACKBONE.NORM is 'plugin_norm'; choose one of"):
        get_norm("plugin_norm")
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.WIDTHS = [4, 8, 8, 16]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 4
    with pytest.raises(ValueError, match=r"LINEAR.FEATURE_NORM is 'batchnorm'; choose one of \['bn', 'none'\]"):
        Classifier(cfg, freeze_backbone=True, feature_norm="batchnorm")


def test_missing_base_names_the_file_holding_the_base(tmp_path):
    """Issue 22, item 5: a missing _BASE_ file was reported as "Check the path given to --cfg"."""
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: ./nope.yaml\nTASK: pretrain\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(child))
    msg = str(e.value)
    assert "nope.yaml" in msg and f"named by _BASE_ in {str(child)!r}" in msg and "--cfg" not in msg


def test_empty_config_file_warns(tmp_path, caplog):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with caplog.at_level("WARNING"):
        cfg = load_config(str(empty))
    assert cfg.TASK == get_cfg().TASK
    assert any("is empty" in r.getMessage() and str(empty) in r.getMessage() for r in caplog.records)


def test_binary_config_file_is_a_config_error(tmp_path):
    """Issue 22, item 4: a binary --cfg raised UnicodeDecodeError."""
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a text") as e:
        load_config(str(binary))
    assert str(binary) in str(e.value) and "\n" not in str(e.value)
