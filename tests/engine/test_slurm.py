"""SLURM options, sizing, sbatch script (--slurm-dry-run), rendezvous address and port; no cluster needed."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import submitit

from ascnet.config.config import ConfigError, load_config
from ascnet.engine import preemption, slurm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_net():
    spec = importlib.util.spec_from_file_location("run_net", os.path.join(REPO, "tools", "run_net.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RUN_NET = _run_net()


def _args(*argv):
    """The SlurmOptions that tools/run_net.py makes of these command-line options."""
    return RUN_NET.slurm_options(RUN_NET.build_parser().parse_args(["--cfg", "unused.yaml", *argv]))


def _cfg(tmp_path, *opts):
    base = ["OUTPUT_DIR", str(tmp_path / "out"), "TRAIN.BATCH_SIZE", "64", "TEST.BATCH_SIZE", "16",
            "RETRIEVAL.BATCH_SIZE", "16"]
    return load_config(None, base + list(opts))


def _sbatch_flags(text):
    return dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", text, flags=re.M))


def test_dry_run_gpu_script_has_requested_resources(tmp_path, capsys):
    args = _args("--slurm-dry-run", "--partition", "learnfair", "--nodes", "2", "--gpus-per-node", "8",
                 "--timeout-min", "600", "--mem-gb", "480", "--account", "vid", "--constraint", "volta32gb",
                 "--signal-delay-s", "90", "--cpus-per-task", "10")
    assert slurm.submit(args, _cfg(tmp_path)) is None
    out = capsys.readouterr().out
    flags = _sbatch_flags(out)
    assert flags["partition"] == "learnfair"
    assert flags["nodes"] == "2"
    assert flags["ntasks-per-node"] == "8"
    assert flags["gpus-per-node"] == "8"
    assert flags["time"] == "600"
    assert flags["mem"] == "480GB"
    assert flags["account"] == "vid" and flags["constraint"] == "volta32gb"
    assert flags["cpus-per-task"] == "10"
    assert flags["signal"] == "USR2@90"
    assert flags["job-name"] == "ascnet-pretrain"
    assert re.search(r"^#SBATCH --requeue$", out, flags=re.M)
    # Logs and pickles under OUTPUT_DIR/slurm/<stamp>; one srun task per process.
    folder = str(tmp_path / "out" / "slurm")
    assert flags["output"].startswith(folder) and flags["output"].endswith("%j_0_log.out")
    assert re.search(r"^srun --unbuffered .*-m submitit.core._submit " + re.escape(folder), out, flags=re.M)
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_dry_run_cpu_follows_config_and_tasks_per_node(tmp_path, capsys):
    cfg = _cfg(tmp_path, "NUM_CPU_PROCESSES", "2", "NUM_SHARDS", "1", "DATA_LOADER.NUM_WORKERS", "3")
    slurm.submit(_args("--slurm-dry-run", "--timeout-min", "11"), cfg)
    flags = _sbatch_flags(capsys.readouterr().out)
    assert (flags["nodes"], flags["ntasks-per-node"], flags["time"]) == ("1", "2", "11")
    assert flags["cpus-per-task"] == "4"  # NUM_WORKERS + 1
    assert "gpus-per-node" not in flags and "partition" not in flags
    slurm.submit(_args("--slurm-dry-run", "--tasks-per-node", "4", "--nodes", "2"), cfg)
    flags = _sbatch_flags(capsys.readouterr().out)
    assert (flags["nodes"], flags["ntasks-per-node"]) == ("2", "4")


def test_adapt_cfg_sets_layout_and_auto_resume(tmp_path):
    cfg = _cfg(tmp_path, "TRAIN.AUTO_RESUME", "False")
    nodes, gpus, tasks = slurm.allocation_from_args(_args("--nodes", "2", "--gpus-per-node", "4"), cfg)
    assert (nodes, gpus, tasks) == (2, 4, 4)
    out = slurm.adapt_cfg_to_allocation(cfg, nodes, gpus, tasks)
    assert (out.NUM_SHARDS, out.NUM_GPUS, out.TRAIN.AUTO_RESUME) == (2, 4, True)
    assert cfg.TRAIN.AUTO_RESUME is False  # the caller's config is untouched


def test_user_mistakes_raise_clear_errors(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(ConfigError, match="--tasks-per-node .* must equal --gpus-per-node"):
        slurm.allocation_from_args(_args("--gpus-per-node", "8", "--tasks-per-node", "2"), cfg)
    with pytest.raises(ConfigError, match="--nodes must be >= 1"):
        slurm.allocation_from_args(_args("--nodes", "0"), cfg)
    # 3 x 8 processes do not divide the global batch of 64: named, with the fix.
    with pytest.raises(ConfigError, match=r"3 node\(s\) x 8 task\(s\).*TRAIN.BATCH_SIZE \(64\)"):
        slurm.submit(_args("--slurm-dry-run", "--nodes", "3", "--gpus-per-node", "8"), cfg)
    with pytest.raises(ConfigError, match="--signal-delay-s"):
        slurm.submit(_args("--slurm-dry-run", "--timeout-min", "1", "--signal-delay-s", "90"), cfg)
    remote = load_config(None, ["OUTPUT_DIR", "manifold://bucket/run", "TRAIN.BATCH_SIZE", "8",
                                "TEST.BATCH_SIZE", "8", "RETRIEVAL.BATCH_SIZE", "8"])
    with pytest.raises(ConfigError, match="--slurm-folder"):
        slurm.submit(_args("--slurm-dry-run"), remote)


def test_submit_without_slurm_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch/srun here
    with pytest.raises(ConfigError, match="sbatch and srun"):
        slurm.submit(_args("--slurm"), _cfg(tmp_path))


def test_rendezvous_port_same_per_run_fresh_per_restart():
    ports = [slurm.rendezvous_port("1234", r) for r in range(4)]
    assert ports[0] == slurm.rendezvous_port("1234", 0)  # every task of one run agrees
    assert len(set(ports)) == 4  # each restart rendezvous elsewhere
    assert all(20000 <= p <= 60000 for p in ports)


class _FakeTrainer:
    iter = 7

    def __init__(self):
        self.saved = []

    def save_checkpoint(self, name=None):
        self.saved.append(name)
        return "/out/checkpoints/checkpoint_iter_0000007.pyth"


def test_checkpoint_saves_through_the_running_trainer(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    job = slurm.ASCNetJob(cfg)
    fake = _FakeTrainer()
    preemption.set_current_trainer(fake)
    try:
        delayed = job.checkpoint()
    finally:
        preemption.set_current_trainer(None)
    assert fake.saved == [None]
    assert "saved a checkpoint at iteration 7" in capsys.readouterr().out
    # A fresh job with the same config: the requeued run resumes through TRAIN.AUTO_RESUME.
    assert type(delayed.function) is slurm.ASCNetJob and delayed.function is not job
    assert delayed.function.cfg == cfg
    # No trainer running (start-up, or after training): nothing saved, still requeued.
    assert job.checkpoint().function.cfg == cfg
    assert fake.saved == [None] and "no trainer is running" in capsys.readouterr().out


def test_checkpoint_requeues_even_when_saving_fails(tmp_path, capsys):
    class _FullDisk(_FakeTrainer):
        def save_checkpoint(self, name=None):
            raise OSError(28, "No space left on device")

    preemption.set_current_trainer(_FullDisk())
    try:
        delayed = slurm.ASCNetJob(_cfg(tmp_path)).checkpoint()
    finally:
        preemption.set_current_trainer(None)
    assert type(delayed.function) is slurm.ASCNetJob
    out = capsys.readouterr().out
    assert "saving a checkpoint at iteration 7 failed (OSError" in out and "No space left" in out


def test_slurm_parameters_are_sbatch_names_and_reach_srun(tmp_path):
    cfg = slurm.adapt_cfg_to_allocation(_cfg(tmp_path), 2, 0, 1)
    params = slurm.slurm_parameters(_args("--cpus-per-task", "3", "--mem-gb", "1.5", "--partition", "p",
                                          "--timeout-min", "30", "--signal-delay-s", "60", "--job-name", "x"), cfg)
    assert params == {
        "job_name": "x", "time": 30, "nodes": 2, "ntasks_per_node": 1, "cpus_per_task": 3,
        "srun_args": ["--cpus-per-task", "3"], "signal_delay_s": 60, "additional_parameters": {"requeue": True},
        "mem": "1536MB", "partition": "p"}


def test_srun_gets_cpus_per_task(tmp_path, capsys):
    # Slurm 22.05-23.02's srun does not inherit --cpus-per-task from sbatch: it must be on the srun line.
    slurm.submit(_args("--slurm-dry-run", "--nodes", "2", "--tasks-per-node", "1", "--cpus-per-task", "5"),
                 _cfg(tmp_path))
    out = capsys.readouterr().out
    assert _sbatch_flags(out)["cpus-per-task"] == "5"
    srun = [line for line in out.splitlines() if line.startswith("srun ")]
    assert len(srun) == 1 and " --cpus-per-task 5 " in srun[0], out
    assert srun[0].index("--cpus-per-task") < srun[0].index("-m submitit.core._submit")


def test_dry_run_script_is_the_submitted_script(tmp_path, capsys, monkeypatch):
    """The dry run uses two private submitit members (SUBMITIT_CHECKED_VERSIONS); here a real
    submit() through submitit writes its script, with sbatch answering from a stand-in, and the
    dry run must print the very same text. Fails when a submitit release changes either."""
    assert submitit.__version__ in slurm.SUBMITIT_CHECKED_VERSIONS, (
        f"submitit {submitit.__version__} is not among the versions the dry run was checked with "
        f"{slurm.SUBMITIT_CHECKED_VERSIONS}: check sbatch_script() and add it")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", "echo 'Submitted batch job 4242'"), ("srun", "exit 0"), ("sacct", "exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "jobfiles"
    cfg = _cfg(tmp_path, "NUM_CPU_PROCESSES", "2")
    opts = ("--nodes", "2", "--tasks-per-node", "1", "--cpus-per-task", "2", "--partition", "dev",
            "--timeout-min", "45", "--slurm-folder", str(folder))
    slurm.submit(_args("--slurm-dry-run", *opts), cfg)
    dry = capsys.readouterr().out.split("\n", 1)[1]  # after the "# SLURM dry run" line
    job = slurm.submit(_args("--slurm", *opts), cfg)
    assert job.job_id == "4242"
    with open(folder / "4242_submission.sh") as f:
        submitted = f.read()
    assert dry.rstrip("\n") == submitted.rstrip("\n")


def test_rendezvous_port_differs_between_jobs_on_one_node():
    # Two jobs sharing a node (ids close together) never share a port, in any of 8 restarts.
    ports = {(j, r): slurm.rendezvous_port(str(j), r) for j in range(1000, 1100) for r in range(8)}
    assert len(set(ports.values())) == len(ports)
    assert slurm.rendezvous_port("123_4", 0) == slurm.rendezvous_port("123_4", 0)  # non-numeric: hashed


def test_node_address_falls_back_to_slurm_node_addr(tmp_path, monkeypatch):
    assert slurm.node_address("localhost") == "localhost"  # a name that resolves is used as is
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        "#!/bin/sh\n[ \"$4\" = nx-unresolvable-7 ] && echo 'NodeName=nx-unresolvable-7 Arch=x86_64 "
        "NodeAddr=10.1.2.3 NodeHostName=h7 Port=17001' && exit 0\nexit 1\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert slurm.node_address("nx-unresolvable-7") == "10.1.2.3"
    with pytest.raises(RuntimeError, match="does not resolve.*NodeAddr"):
        slurm.node_address("nx-unresolvable-8")


@pytest.mark.skipif(not os.path.exists(os.path.join(REPO, "tools", "run_net.py")), reason="tools/run_net.py not present")
def test_run_net_dry_run_prints_script(tmp_path):
    cfg = os.path.join(REPO, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_net.py"), "--cfg", cfg, "--slurm-dry-run",
           "--partition", "dev", "--nodes", "1", "--tasks-per-node", "2", "--timeout-min", "15",
           "OUTPUT_DIR", str(tmp_path / "out"), "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "2",
           "RETRIEVAL.BATCH_SIZE", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    flags = _sbatch_flags(res.stdout)
    assert (flags["partition"], flags["nodes"], flags["ntasks-per-node"], flags["time"]) == ("dev", "1", "2", "15")
    assert "gpus-per-node" not in flags and not (tmp_path / "out").exists()


class _FakeJobEnv:
    def __init__(self, num_tasks, num_nodes, node):
        self.num_tasks, self.num_nodes, self.node = num_tasks, num_nodes, node


def test_job_cfg_follows_the_live_allocation(tmp_path, capsys):
    cfg = _cfg(tmp_path, "NUM_CPU_PROCESSES", "2", "TRAIN.AUTO_RESUME", "False", "DIST_URL", "tcp://h:1234")
    job = slurm.ASCNetJob(cfg)
    out = job._job_cfg(_FakeJobEnv(num_tasks=4, num_nodes=2, node=1))
    assert (out.NUM_SHARDS, out.SHARD_ID, out.NUM_CPU_PROCESSES, out.NUM_GPUS) == (2, 1, 2, 0)
    assert out.TRAIN.AUTO_RESUME is True and out.DIST_URL == "auto"
    assert "asks for 2 processes but the allocation has 4 tasks" in capsys.readouterr().out
    gpu = slurm.ASCNetJob(_cfg(tmp_path, "NUM_GPUS", "8"))._job_cfg(_FakeJobEnv(num_tasks=16, num_nodes=2, node=0))
    assert (gpu.NUM_SHARDS, gpu.SHARD_ID, gpu.NUM_GPUS) == (2, 0, 8)
    with pytest.raises(ConfigError, match="uneven"):
        job._job_cfg(_FakeJobEnv(num_tasks=3, num_nodes=2, node=0))
