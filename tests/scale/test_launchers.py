"""Results do not depend on the launcher: basic, joblib and submitit_local give identical tables."""

import filecmp
import importlib.util

import pytest

from tests.conftest import runs

SWEEP = ["-m", "net.width=8,16,24", "experiment=smoke"]
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
}


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launcher_gives_identical_csvs_to_the_basic_launcher(run_cli, store, tmp_path, launcher):
    if launcher == "submitit_local" and importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip("hydra-submitit-launcher not installed (extra [slurm])")
    base, other = tmp_path / "basic", tmp_path / launcher
    for name, d in (("basic", base), (launcher, other)):
        p = run_cli("mlp_sweep", *SWEEP, *LAUNCHERS[name], f"hydra.sweep.dir={d}")
        assert p.returncode == 0, (name, p.stderr[-2000:])
    for job in ("0", "1", "2"):
        for f in ("sweep.csv", "layers.csv"):
            assert filecmp.cmp(base / job / f, other / job / f, shallow=False), (launcher, job, f)
    df = runs(store, "mlp_sweep")
    assert (df.status == "FINISHED").sum() == 8  # 2 parents + 6 children


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (extra [ray])")
def test_ray_launcher_runs_locally(run_cli, tmp_path):
    p = run_cli(
        "theory",
        "-m",
        "net.activation=tanh,relu",
        "experiment=smoke",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        f"hydra.sweep.dir={tmp_path / 's'}",
    )
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (extra [ray])")
def test_ray_attaches_to_a_running_loopback_cluster(run_cli, tmp_path):
    """The README's Ray path: `ray start --head --node-ip-address=127.0.0.1`, then attach with address=auto."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    start = subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", "--num-cpus=2"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        p = run_cli("mlp_sweep", "-m", "net.width=8,16", "experiment=smoke", "hydra/launcher=ray",
                    "+hydra.launcher.ray.init.address=auto", "+hydra.launcher.ray.init.object_store_memory=null",
                    f"hydra.sweep.dir={tmp_path / 's'}")  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]
        assert "sweep FINISHED: 2 finished" in p.stderr
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
