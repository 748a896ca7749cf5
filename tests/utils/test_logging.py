"""Logging and event writing: rank-0 output, json_stats lines, metrics.json, TensorBoard."""
import json
import logging
import os

import pytest

from metrics_file import read_metrics

from ascnet.utils.events import EventWriter, format_eta
from ascnet.utils.logging import log_json_stats, setup_logging


def test_rank0_logs_to_console_and_file(tmp_path, capsys):
    log = setup_logging(str(tmp_path), rank=0)
    setup_logging(str(tmp_path), rank=0)  # idempotent: no doubled lines
    logging.getLogger("ascnet.some.module").info("hello from rank zero")
    line = log_json_stats({"loss": 0.5, "iteration": 3})
    for h in log.handlers:
        h.flush()
    out = capsys.readouterr().out
    assert out.count("hello from rank zero") == 1
    assert line == 'json_stats: {"iteration": 3, "loss": 0.5}'
    text = (tmp_path / "log.txt").read_text()
    assert "hello from rank zero" in text and 'json_stats: {"iteration": 3, "loss": 0.5}' in text


def test_other_ranks_print_warnings_only(tmp_path, capsys):
    setup_logging(str(tmp_path), rank=1)
    lg = logging.getLogger("ascnet.x")
    lg.info("quiet info")
    lg.warning("loud warning")
    out = capsys.readouterr().out
    assert "quiet info" not in out and "loud warning" in out
    assert "loud warning" in (tmp_path / "log.txt.rank1").read_text()
    setup_logging(None, rank=0)


def test_event_writer_metrics_and_tensorboard(tmp_path):
    setup_logging(None, rank=0)
    w = EventWriter(str(tmp_path), tensorboard=True)
    for it in range(1, 5):
        w.update_history({"time": 0.5, "data_time": 0.1, "loss": 1.0 / it}, it)
    w.write({"iteration": 4, "epoch": 0, "loss": 0.25, "lr": 0.1, "eta_seconds": w.eta_seconds(4, 10),
             "not_scalar": [1, 2]}, step=4)
    line = w.progress(4, 10, 0, 2, {"loss": 0.25, "lr": 0.1})
    w.close()
    recs = [json.loads(l) for l in (tmp_path / "metrics.json").read_text().splitlines()]
    assert recs == [{"iteration": 4, "epoch": 0, "loss": 0.25, "lr": 0.1, "eta_seconds": 3.0}]
    # One labelled line: this iteration's loss (the metrics.json value), the 1-based epoch, ETA.
    assert line.startswith("[train] epoch 1/2  iter 4/10  loss 0.2500  lr 0.1") and "eta 0:00:03" in line
    tb_files = os.listdir(tmp_path / "tensorboard")
    assert any(f.startswith("events.out.tfevents") for f in tb_files)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert "loss" in acc.Tags()["scalars"]
    assert acc.Scalars("loss")[0].value == pytest.approx(0.25)


def test_helpers():
    assert format_eta(3725.2) == "1:02:05"


def test_read_metrics_later_line_wins(tmp_path):
    # A run resumed from iteration 2 appends iterations 3 and 4 again: the resumed values win.
    setup_logging(None, rank=0)
    w = EventWriter(str(tmp_path), tensorboard=False)
    for it, loss in [(2, 1.0), (3, 0.9), (4, 0.8), (3, 0.7), (4, 0.6)]:
        w.write({"iteration": it, "loss": loss}, step=it)
    w.close()
    recs = read_metrics(str(tmp_path))
    assert sorted(recs) == [2, 3, 4]
    assert [recs[i]["loss"] for i in (2, 3, 4)] == [1.0, 0.7, 0.6]


def test_json_stats_stay_off_the_console(tmp_path, capsys):
    """The console shows one progress line per log period; json_stats go to log.txt only."""
    setup_logging(str(tmp_path), rank=0)
    w = EventWriter(str(tmp_path))
    w.update_history({"time": 0.5, "data_time": 0.1}, 1)
    w.write({"iteration": 1, "epoch": 0, "loss": 4.04}, step=1)
    w.progress(1, 10, 0, 2, {"loss": 4.04, "lr": 0.1}, label="pretrain")
    w.close()
    console = capsys.readouterr().out
    assert "json_stats" not in console
    assert console.count("[pretrain] epoch 1/2  iter 1/10  loss 4.0400") == 1
    log = (tmp_path / "log.txt").read_text()
    assert 'json_stats: {"epoch": 0, "iteration": 1, "loss": 4.04}' in log and "[pretrain] epoch 1/2" in log


def test_read_metrics_merges_records_of_one_iteration(tmp_path):
    from metrics_file import read_metrics

    lines = [{"iteration": 5, "loss": 2.0, "lr": 0.1}, {"iteration": 5, "monitor_knn20_top1": 30.0},
             {"iteration": 5, "loss": 1.5}]
    (tmp_path / "metrics.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert read_metrics(str(tmp_path)) == {5: {"iteration": 5, "loss": 1.5, "lr": 0.1, "monitor_knn20_top1": 30.0}}


def test_metrics_write_on_a_full_disk_is_one_line_naming_the_file_and_the_fix(tmp_path, full_disk_file):
    from ascnet.utils.io import OutputWriteError

    w = EventWriter(str(tmp_path))
    w.write({"iteration": 1, "loss": 1.0}, step=1)
    w._file = full_disk_file(w._file)
    with pytest.raises(OutputWriteError) as info:
        w.write({"iteration": 2, "loss": 0.5}, step=2)
    msg = str(info.value)
    assert "\n" not in msg and info.value.path == str(tmp_path / "metrics.json")
    assert "iteration 2" in msg and repr(str(tmp_path / "metrics.json")) in msg
    assert "No space left on device" in msg and "Free space" in msg and "AUTO_RESUME True" in msg
    assert isinstance(info.value.__cause__, OSError)
    assert read_metrics(str(tmp_path)) == {1: {"iteration": 1, "loss": 1.0}}  # the saved record is kept
