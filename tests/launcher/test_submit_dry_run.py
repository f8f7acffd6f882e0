"""`efnas submit --dry_run`: the exact sbatch script, guarded by golden files; nothing is submitted."""

from __future__ import annotations


def _dry_run(cli, *args):
    result = cli("submit", *args, "--dry_run")
    assert result.exit_code == 0, result.output
    return result.output


def test_single_run_script(cli, launch_config, normalise, check_golden, tmp_path):
    output = _dry_run(cli, "--config", launch_config(), "--fast_mode", "--num_epochs", "2")
    check_golden("single.sbatch", normalise(output))
    assert not (tmp_path / "out").exists(), "a dry run must not create the run directory"


def test_sweep_is_one_throttled_array(cli, launch_config, normalise, check_golden):
    output = _dry_run(cli, "--config", launch_config(slurm={"array_parallelism": 2}),
                      "--sweep", "seed=1,2,3", "--sweep", "lr=1e-4")
    check_golden("sweep.sbatch", normalise(output))
    assert "#SBATCH --array=0-2%2" in output


def test_container_run_goes_through_apptainer_with_host_side_requeue(cli, launch_config, normalise, check_golden,
                                                                      tmp_path):
    image = tmp_path / "efnas.sif"
    image.write_bytes(b"not a real image; the dry run only checks that it exists")
    extra = tmp_path / "scratch"
    output = _dry_run(cli, "--config", launch_config(slurm={"container_binds": [str(extra)]}),
                      "--container", image)
    check_golden("container.sbatch", normalise(output))
    assert "apptainer exec --nv --bind" in output
    assert "-m launcher.job_entry" in output
    assert 'scontrol requeue "$SLURM_JOB_ID"' in output


def test_cli_overrides_reach_the_pickled_config_not_the_script(launch_config, tmp_path):
    from launcher.plan import build_plan

    plan = build_plan(launch_config(), {"train.lr": 3e-4, "runtime.fast_mode": True}, [], None)
    (trial,) = plan.trials
    assert trial.resolved.config.train.lr == 3e-4 and trial.resolved.config.runtime.fast_mode
    assert trial.run_dir == tmp_path / "out" / "golden"
    assert trial.resolved.config.data.train_dir == str(tmp_path / "data" / "train")


def test_relative_paths_become_absolute_for_the_job(launch_config, tmp_path, monkeypatch):
    from launcher.plan import build_plan

    monkeypatch.chdir(tmp_path)
    plan = build_plan(launch_config(), {"data.train_dir": "data/train", "experiment.output_root": "rel"}, [], None)
    (trial,) = plan.trials
    assert trial.resolved.config.data.train_dir == str(tmp_path / "data" / "train")
    assert trial.run_dir == tmp_path / "rel" / "golden"


def test_submit_help_lists_the_train_overrides(cli):
    result = cli("submit", "--help")
    assert result.exit_code == 0
    for option in ("--config", "--container", "--sweep", "--dry_run", "--lr", "--fast_mode", "--experiment_name"):
        assert option in result.output


def test_dry_run_and_status_never_import_tensorflow(launch_config, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from edgeflownas.cli import main\n"
        f"for args in (['submit', '--config', {str(launch_config())!r}, '--dry_run'], ['status', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, (args, e.code)\n"
        "print('TF', any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "TF False" in out.stdout
