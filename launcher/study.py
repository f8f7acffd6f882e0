"""``efnas study``: does the supernet rank subnets the way stand-alone training does -- better than counting blocks?

Steps, each resumable (run the same command again after a crash, a kill or a
requeue; a finished step is recognised from its artifacts and skipped, a
training in progress resumes from its last checkpoint):

0. **subnets**: the K subnets, stratified over total depth and MACs
   (``edgeflownas.study.selection``), written to ``subnets.json`` before
   anything trains; a later start under another choice is refused;
1. **warm-up** (``supernet.warmup_epochs`` > 0): the EdgeFlowNet baseline
   subnet trained alone -> ``runs/warmup_seed<s>``, per supernet seed;
2. **supernets**: one strict-fairness supernet per ``supernet.seeds`` entry
   (inheriting its warm-up, if any) -> ``runs/supernet_seed<s>``; or
   ``supernet.run`` names one existing run;
3. **scores**: each subnet's supernet EPE, BN recalibrated and not -> the
   run's search store, ``<run>/search/store``, shared with ``efnas search``
   (``<study>/score_store`` if the run cannot be written; each score appended
   as it is made; keyed by the weights digest and the scoring settings; a
   ``supernet_scores*.json`` of an older study is imported:
   ``edgeflownas.study.scores``);
4. **retrains**: every subnet from scratch once per seed ->
   ``runs/retrains/<arch>_seed=<s>`` (the same runs ``efnas submit --retrain
   RUN --arch ... --sweep seed=...`` makes, from the first supernet's config);
5. **latency** (``analysis.latency_threads`` set): each subnet's measured
   float TFLite latency on this machine -> ``subnet_latency.json`` (measured
   once and kept: a latency belongs to the machine it was measured on);
6. **analysis**: ``study.json`` (``edgeflownas.study.analysis``: reference,
   noise ceiling, tau, trivial predictors, partial tau, verdict) and ``study.png``.

This module plans and runs; the science is ``edgeflownas.study``.  Every
training is a ``launcher.plan`` trial run by ``launcher.job.TrainingJob``,
which writes ``launch_result.json`` when it finishes: locally (in this process,
or ``study.local_workers`` worker processes, each training one run after
another with ``study.threads_per_training`` TensorFlow threads) or, with a
``slurm:`` section, submitted through ``launcher.submit`` (the retrains as one
job array) and waited for.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import active_children, get_context
from multiprocessing.connection import wait as connection_wait
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.config import Overrides, canonical_key, fill_defaults, load_schema, load_yaml, set_dotted
from edgeflownas.config_check import validate
from edgeflownas.errors import ConfigError, StudyError
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, ArchCode, arch_name, parse_arch_code
from edgeflownas.progress import Progress
from edgeflownas.train.interrupt import Interrupted, StopRequest, deferred_signals
from launcher.job import read_result
from launcher.plan import (RetrainRequest, SubmissionPlan, TrialPlan, build_plan, finished_result,
                           missing_data_dirs)

SCHEMA = "study_config.schema.json"
RUNS, WARMUP, SUPERNET, RETRAINS = "runs", "warmup", "supernet", "retrains"
SCORES, STUDY_JSON, FIGURE, LOGS = "supernet_scores", "study.json", "study.png", "logs"
SUBNETS_JSON = "subnets.json"
LATENCY_JSON = "subnet_latency.json"
POLL_SECONDS = 30.0  # between two sacct queries while waiting for SLURM jobs


@dataclass(frozen=True)
class Study:
    """A validated study config (defaults filled, paths absolute) and its directory."""

    path: Path
    values: Dict[str, Any]

    @property
    def directory(self) -> Path:
        """``<study.output_root>/<study.name>``."""
        return Path(self.values["study"]["output_root"]) / self.values["study"]["name"]

    @property
    def runs(self) -> Path:
        """Where the study's trainings live."""
        return self.directory / RUNS

    @property
    def slurm(self) -> Optional[Dict[str, Any]]:
        """The sbatch settings, or None to run everything on this machine."""
        return self.values.get("slurm")

    def section(self, name: str) -> Dict[str, Any]:
        """One section of the config."""
        return self.values[name]


def load_study(path: Path, overrides: Optional[Mapping[str, Any]] = None, cwd: Optional[Path] = None) -> Study:
    """Read, override (dotted keys), validate against schemas/study_config.schema.json and complete a study
    config; ConfigError naming the file or option and the key."""
    path = Path(path)
    raw = load_yaml(path, kind="study config")
    overrides = overrides or {}
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    schema = load_schema(SCHEMA)
    validate(raw, schema, origin=f"study config {path}", options=getattr(overrides, "options", {}))
    seeds_given = "seeds" in (raw.get("supernet") or {})  # before the defaults are filled in
    values = fill_defaults(raw, schema)
    supernet = values["supernet"]
    if (supernet["run"] is None) == (supernet["config"] is None):
        raise ConfigError(f"study config {path}: set exactly one of supernet.run (an existing supernet run) and "
                          "supernet.config (a supernet config to train)")
    if supernet["run"] is not None and supernet["warmup_epochs"]:
        raise ConfigError(f"study config {path}: supernet.warmup_epochs applies only when the study trains the "
                          "supernet (supernet.config); drop it or supernet.run")
    if supernet["run"] is not None and seeds_given:
        raise ConfigError(f"study config {path}: supernet.seeds applies only when the study trains the supernets "
                          "(supernet.config); drop it or supernet.run")
    base = Path(cwd or Path.cwd())
    values["study"]["output_root"] = str((base / values["study"]["output_root"]).absolute())
    for key in ("run", "config"):
        if supernet[key] is not None:
            supernet[key] = str(referenced_path(path, supernet[key], base))
    if supernet["config"] is not None and not Path(supernet["config"]).is_file():
        raise ConfigError(f"study config {path}: supernet.config {supernet['config']} is not a file (a relative "
                          "path is taken from the study config's folder)")
    if supernet["run"] is not None:
        _require_run(path, Path(supernet["run"]), supernet["checkpoint"])
    for section in ("supernet", "retrain"):
        values[section]["set"] = {canonical_key(key, f"{path}: {section}.set"): value
                                  for key, value in values[section]["set"].items()}
    subnets = values["subnets"]
    at_most = 9 * subnets["macs_bins"] + int(subnets["baseline"]) + len(subnets["codes"])
    if at_most < subnets["min_k"]:
        raise ConfigError(f"study config {path}: at most {at_most} distinct subnets chosen, subnets.min_k is "
                          f"{subnets['min_k']}: raise subnets.macs_bins or add subnets.codes")
    for text in values["subnets"]["codes"]:  # checked here, parsed again where the subnets are chosen
        try:
            parse_arch_code(text)
        except ConfigError as error:
            raise ConfigError(f"study config {path}: subnets.codes: {error}") from None
    return Study(path, values)


def referenced_path(config: Path, value: str, cwd: Path) -> Path:
    """A file or run a config names (``supernet.config``, ``supernet.run``), made absolute.

    A relative path is taken from the config file's folder, like an include; a config written before that
    rule, whose path exists only from the working directory, keeps working.  Output and data locations are
    not references: they stay relative to the working directory, as in every run config.
    """
    value_path = Path(value).expanduser()
    if value_path.is_absolute():
        return value_path
    beside = (Path(cwd) / Path(config).parent / value_path).absolute()
    from_cwd = (Path(cwd) / value_path).absolute()
    return from_cwd if not beside.exists() and from_cwd.exists() else beside


def _require_run(path: Path, run: Path, which: str) -> None:
    """ConfigError unless ``run`` is a supernet run directory holding the checkpoint the study scores."""
    from edgeflownas.train import run_dir as rd
    from edgeflownas.train.checkpoint import STATE_FILE

    ckpt = run / (rd.BEST if which == "best" else rd.LAST)
    if not (run / rd.MANIFEST).is_file() or not (ckpt / STATE_FILE).is_file():
        found = "does not exist" if not run.exists() else f"has no {rd.MANIFEST} or no {ckpt.name}/{STATE_FILE}"
        raise ConfigError(f"study config {path}: supernet.run {run} {found}: it must be a trained supernet run "
                          "(<output_root>/<experiment> of efnas train), or use supernet.config to train one")


def check_before_start(study: Study) -> None:
    """ConfigError for what would otherwise fail after the study directory is made: its place.  (Too few subnets
    for subnets.min_k and a supernet.run that is not a trained run are refused by ``load_study``.)"""
    from edgeflownas.outputs import check_output_folder

    check_output_folder(study.directory, "study.output_root/study.name", own="study directory")


def _overrides(study: Study, section: str, forced: Mapping[str, Any]) -> Overrides:
    """A run's overrides: the study section's ``set``, its slurm: settings, then what the study fixes itself;
    every value is blamed on the study config if invalid."""
    values: Dict[str, Any] = dict(study.section(section)["set"]) if section else {}
    values.update({f"slurm.{key}": value for key, value in (study.slurm or {}).items()})
    values.update(forced)
    label = f"{study.path}: {section}.set" if section else str(study.path)
    options = {key: (f"{study.path}: slurm.{key.split('.', 1)[1]}" if key.startswith("slurm.") else
                     f"{study.path} (set by efnas study)" if key in forced else label) for key in values}
    return Overrides(values, options)


def supernet_seeds(study: Study) -> List[Optional[int]]:
    """The supernet seeds the study trains; [None] for an existing run (supernet.run)."""
    supernet = study.section("supernet")
    return [None] if supernet["run"] is not None else list(supernet["seeds"])


def _seeded(name: str, seed: int) -> str:
    return f"{name}_seed{seed}"


def warmup_plan(study: Study, seed: int, check_data: bool = True) -> Optional[SubmissionPlan]:
    """The warm-up training of supernet seed ``seed`` (baseline subnet alone), or None without one."""
    supernet = study.section("supernet")
    if supernet["run"] is not None or not supernet["warmup_epochs"]:
        return None
    forced = {"experiment.name": _seeded(WARMUP, seed), "experiment.output_root": str(study.runs),
              "experiment.seed": seed, "train.supernet_mode": "fixed_arch",
              "model.fixed_arch_code": list(EDGEFLOWNET_BASELINE),
              "train.num_epochs": supernet["warmup_epochs"], "checkpoint.resume_experiment_name": None,
              "checkpoint.init_from": None}
    return build_plan(Path(supernet["config"]), _overrides(study, "supernet", forced), [], None,
                      check_data=check_data)


def supernet_plan(study: Study, seed: int, check_data: bool = True) -> Optional[SubmissionPlan]:
    """The supernet training of seed ``seed`` (inheriting its warm-up if there is one), or None for an existing run."""
    supernet = study.section("supernet")
    if supernet["run"] is not None:
        return None
    forced = {"experiment.name": _seeded(SUPERNET, seed), "experiment.output_root": str(study.runs),
              "experiment.seed": seed,
              "checkpoint.resume_experiment_name": _seeded(WARMUP, seed) if supernet["warmup_epochs"] else None,
              "checkpoint.init_from": None}
    return build_plan(Path(supernet["config"]), _overrides(study, "supernet", forced), [], None,
                      check_data=check_data)


def supernet_run(study: Study, seed: Optional[int]) -> Path:
    """The run directory of supernet seed ``seed`` (None: the existing supernet.run)."""
    run = study.section("supernet")["run"]
    return Path(run) if run is not None else study.runs / _seeded(SUPERNET, seed)


def _model_and_size(study: Study) -> Tuple[Any, int, int]:
    """The model config and training resolution every subnet of the study is built with."""
    supernet = study.section("supernet")
    if supernet["run"] is not None:
        from edgeflownas.config import resolve
        from edgeflownas.train import run_dir as rd

        cfg = resolve(Path(supernet["run"]) / rd.RESOLVED_CONFIG).config
    else:
        cfg = supernet_plan(study, supernet["seeds"][0], check_data=False).trials[0].resolved.config
    return cfg.model, cfg.data.input_height, cfg.data.input_width


def chosen_codes(study: Study, log: Callable[[str], None] = lambda line: None) -> List[ArchCode]:
    """The K subnets, fixed before any result and kept in subnets.json (see the module doc)."""
    from edgeflownas.model.cost import CostTable
    from edgeflownas.study.selection import strata, stratified_codes

    subnets = study.section("subnets")
    model, height, width = _model_and_size(study)
    table = CostTable.build(height, width, model)
    codes: List[ArchCode] = stratified_codes(table, subnets["macs_bins"], subnets["seed"]) \
        if subnets["macs_bins"] else []
    if subnets["baseline"]:
        codes.append(EDGEFLOWNET_BASELINE)
    codes += [parse_arch_code(text) for text in subnets["codes"]]
    unique = list(dict.fromkeys(tuple(code) for code in codes))
    if len(unique) < subnets["min_k"]:
        raise ConfigError(f"study config {study.path}: {len(unique)} distinct subnets chosen, subnets.min_k is "
                          f"{subnets['min_k']}: raise subnets.macs_bins or add subnets.codes")
    doc = {"selection": {"macs_bins": subnets["macs_bins"], "seed": subnets["seed"], "baseline": subnets["baseline"],
                         "codes": list(subnets["codes"]), "input_hw": [height, width]},
           "k": len(unique),
           "subnets": [{"name": arch_name(code), "code": list(code), **cost}
                       for code, cost in zip(unique, strata(unique, table))]}
    path = study.directory / SUBNETS_JSON
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("subnets") != doc["subnets"]:
            raise StudyError(f"{path} holds another choice of subnets than this config makes ({old.get('k')} vs "
                             f"{len(unique)}): the choice is fixed before any result -- use another study.name "
                             "or move the study directory aside")
    else:
        write_json_atomic(path, doc)
        log(f"subnets: K={len(unique)} fixed in {path}")
    return unique


def retrain_plan(study: Study, run: Path, codes: Sequence[ArchCode], check_data: bool = True) -> SubmissionPlan:
    """Every subnet from scratch, once per seed: one trial per (code, seed), as one job array on SLURM.

    ``run``: the supernet run whose config (data, model, schedule) the retrains take, plus retrain.set.
    """
    retrain = study.section("retrain")
    forced = {"experiment.name": RETRAINS, "experiment.output_root": str(study.runs)}
    seeds = ",".join(str(seed) for seed in retrain["seeds"])
    request = RetrainRequest(run, tuple(codes), "scratch", study.section("supernet")["checkpoint"])
    return build_plan(None, _overrides(study, "retrain", forced), [f"experiment.seed={seeds}"], None,
                      retrain=request, check_data=check_data)


# ----------------------------------------------------------------------------------------------- running trials
# In a local worker process: its stop request, taken by the training it runs (or, between trainings, by the next).
_WORKER_STOP: Optional[StopRequest] = None


def _stop_signals() -> Tuple[int, ...]:
    """What stops a local training at its next optimizer step: scancel/kill (TERM), Ctrl-C (INT), SLURM's
    warning (USR2)."""
    from launcher import submitit_private

    return (signal.SIGTERM, signal.SIGINT, submitit_private.usr_signal())


def _child_start(threads: Optional[int] = None) -> None:
    """In a local worker process: die with the parent (a killed study leaves no orphan holding a run's lock),
    size TensorFlow's thread pools (``threads``; before TensorFlow makes them, at the worker's first training),
    and route every stop signal to the worker's stop request: the training running saves at its next optimizer
    step and returns, and no later training starts (``_train_in_child``); the worker stays until the pool ends it."""
    import ctypes

    global _WORKER_STOP
    if threads is not None:
        from edgeflownas.train.runtime import THREAD_VARIABLES

        os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    _WORKER_STOP = StopRequest()
    for signum in _stop_signals():
        signal.signal(signum, _WORKER_STOP)


def _train_in_child(job: Any, log_path: str) -> Optional[str]:
    """Run one TrainingJob with stdout/stderr going to ``log_path``; returns the run directory, or None when the
    study is stopping and the training was not started."""
    import sys

    stop = _WORKER_STOP if _WORKER_STOP is not None else StopRequest()
    if stop.requested:
        return None
    with open(log_path, "a", encoding="utf-8") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        sys.stdout = sys.stderr = handle
        job.run(stop)
    return job.run_dir


def _one_done(progress: Progress, label: str, name: str, note: str, log: Callable[[str], None]) -> None:
    """One more item of ``progress`` finished here: ``label: k/n done, elapsed, ETA (name note)``."""
    progress.advance()
    log(f"{label}: {progress.line()} ({name}{note})")


def run_plan(study: Study, plan: SubmissionPlan, label: str, log: Callable[[str], None],
             note: Optional[Callable[[TrialPlan], str]] = None) -> None:
    """Bring every trial of ``plan`` to finished: locally, or on SLURM (submitted, then waited for).

    ``note(trial)`` ends each progress line (default: the run's best val EPE)."""
    todo = [trial for trial in plan.trials if finished_result(trial) is None]
    if not todo:
        log(f"{label}: {len(plan.trials)} run(s) already finished")
        return
    note = note or _epe_note
    if study.slurm is not None:
        _run_on_slurm(plan, label, log, note)
    else:
        _run_locally(study, plan, todo, label, log, note)


def _trial_name(trial: TrialPlan) -> str:
    return trial.name or trial.resolved.config.experiment.name


def _run_locally(study: Study, plan: SubmissionPlan, todo: Sequence[TrialPlan], label: str,
                 log: Callable[[str], None], note: Callable[[TrialPlan], str]) -> None:
    from launcher.submit import training_job

    progress = Progress(len(plan.trials), len(plan.trials) - len(todo))
    workers = min(study.section("study")["local_workers"], len(todo))
    threads = study.section("study")["threads_per_training"]
    if workers == 1 and threads is None:  # TensorFlow's default threads: the same numbers here as in a worker
        for trial in todo:
            log(f"{label}: training {_trial_name(trial)} -> {trial.run_dir}")
            with deferred_signals(_stop_signals(), StopRequest()) as stop:
                training_job(trial).run(stop)
            if stop.requested:  # saved at the next step; the command ends as on any other stop signal
                raise Interrupted(stop.signum)
            _check_finished(trial, label)
            _one_done(progress, label, _trial_name(trial), note(trial), log)
        return
    logs = study.directory / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    per_worker = "" if threads is None else f" of {threads} TensorFlow thread(s)"
    log(f"{label}: {len(todo)} run(s) on {workers} local worker process(es){per_worker}; their output goes to "
        f"{logs}/<run>.log")
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_child_start, initargs=(threads,)) as pool:
        try:
            running = {pool.submit(_train_in_child, training_job(trial), str(logs / f"{_trial_name(trial)}.log")):
                       trial for trial in todo}
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    trial = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        for other in running:
                            other.cancel()
                        reason = (str(error).splitlines() or [type(error).__name__])[0]
                        raise StudyError(f"{label}: {_trial_name(trial)} failed: {reason} (log "
                                         f"{logs / (_trial_name(trial) + '.log')}); fix it and run the same command "
                                         "again: finished runs are kept, the others resume")
                    _check_finished(trial, label)
                    _one_done(progress, label, _trial_name(trial), note(trial), log)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (Interrupted): the workers stop with the study, not after it
            _stop_workers(pool)
            raise


def _stop_workers(pool: ProcessPoolExecutor, grace_s: float = 60.0) -> None:
    """Cancel the trainings not yet started and stop the running ones now.

    Each worker gets the stop signal (SIGUSR2, what SLURM sends before a
    time limit): its training saves ``last`` at the next optimizer step
    (exact resume) and returns, a training it had not begun is not started,
    and the pool then ends the workers as processes end.  Stop signals to
    this process wait until that is done; a worker still running after
    ``grace_s`` is killed (it resumes from its last save).  The workers are
    this process's multiprocessing children: the study starts no others.
    """
    from launcher import submitit_private

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pool.shutdown(wait=False, cancel_futures=True)
        workers = active_children()
        for worker in workers:
            if connection_wait([worker.sentinel], 0):  # already ended
                continue
            try:
                os.kill(worker.pid, submitit_private.usr_signal())
            except (ProcessLookupError, TypeError):  # already ended (scancel signals every process of the job)
                pass
        # Waited for through their sentinels, not join(): the pool's own thread reaps the workers as they end, and a
        # join racing it can find a worker's exit status already taken (ECHILD) and report it alive.
        running = {worker.sentinel: worker for worker in workers}
        deadline = time.monotonic() + grace_s
        while running and time.monotonic() < deadline:
            for sentinel in connection_wait(list(running), max(0.0, deadline - time.monotonic())):
                running.pop(sentinel)
        for worker in running.values():  # not ended yet, so not reaped: its pid is still its own
            worker.kill()
        reaped = time.monotonic() + grace_s
        while any(worker.exitcode is None for worker in workers) and time.monotonic() < reaped:
            time.sleep(0.01)  # the pool's thread is reaping them (or this poll does)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _check_finished(trial: TrialPlan, label: str) -> None:
    if finished_result(trial) is None:
        why = "was interrupted" if read_result(trial.run_dir) is None else "finished under another config"
        raise StudyError(f"{label}: {_trial_name(trial)} {why} ({trial.run_dir}): run the same command again to "
                         "resume it")


def _epe_note(trial: TrialPlan) -> str:
    result = (read_result(trial.run_dir) or {}).get("result", {})
    best = result.get("best_mean_epe")
    return f": best val EPE {best:.4f}" if isinstance(best, float) else ""


def reference_note(epochs: int) -> Callable[[TrialPlan], str]:
    """A retrain's progress note: the figure study.json takes from it (``_retrain_figure``), not its best epoch."""
    def note(trial: TrialPlan) -> str:
        figure = _retrain_figure(trial, epochs)
        stuck = ", stuck at the mean flow" if figure["stuck"] else ""
        return f": reference EPE {figure['epe']:.4f}, the mean of its last {figure['epochs_averaged']} val EPEs{stuck}"
    return note


def _run_on_slurm(plan: SubmissionPlan, label: str, log: Callable[[str], None],
                  note: Callable[[TrialPlan], str]) -> None:
    from launcher import slurm
    from launcher.records import latest_by_trial, read_records
    from launcher.submit import format_outcome, submit_plan

    decisions, submitted = submit_plan(plan)
    log(format_outcome(plan, decisions, submitted))
    progress = Progress(len(plan.trials), sum(finished_result(t) is not None for t in plan.trials))
    pending = {_trial_name(t): t for t in plan.trials if finished_result(t) is None}
    while pending:
        time.sleep(POLL_SECONDS)
        latest = latest_by_trial(read_records(plan.experiment_dir))
        states = slurm.query_states(latest[t.name]["job_id"] for t in pending.values() if t.name in latest)
        for name, trial in list(pending.items()):
            if finished_result(trial) is not None:
                pending.pop(name)
                _one_done(progress, label, name, note(trial), log)
                continue
            record = latest.get(trial.name)
            state = states.get(record["job_id"]) if record else None
            if state is not None and not state.active and finished_result(trial) is None:
                raise StudyError(f"{label}: job {record['job_id']} of {name} ended {state.state} without finishing "
                                 f"(stderr {record.get('stderr')}); run the same command again to resubmit it "
                                 "(it resumes from its last checkpoint)")


# ----------------------------------------------------------------------------------------------- scoring
def legacy_scores_path(study: Study, seed: Optional[int]) -> Path:
    """Where a study started before the search store kept the scores of supernet seed ``seed`` (None: the existing
    supernet.run); only read, to import (``edgeflownas.study.scores``)."""
    return study.directory / (f"{SCORES}.json" if seed is None else f"{_seeded(SCORES, seed)}.json")


def score_subnets(study: Study, run: Path, codes: Sequence[ArchCode], log: Callable[[str], None],
                  legacy: Optional[Path] = None) -> Dict[str, Any]:
    """Supernet EPE of every code, BN recalibrated and not, kept in the run's search store (resumable per score).

    Scored as ``efnas eval`` and search score (``TrainedRun``): the run's recalibration batches and seed, the
    first ``scoring.recal_batches`` of them (default all, so the trainer's own figure).  The store
    (``edgeflownas.study.scores``: ``<run>/search/store``, or ``<study>/score_store`` when the run cannot be
    written) keys each score by those scoring settings, weights digest included, so a search of the run reuses
    the study's scores and the study a search's.  ``legacy``: a scores file of this study from before the
    store, imported when its settings match.
    """
    from edgeflownas.study.scores import import_legacy, open_store, score_codes
    from edgeflownas.train.trained_run import TrainedRun

    which = study.section("supernet")["checkpoint"]
    trained = TrainedRun.open(run, which)
    recal = study.section("scoring")["recal_batches"]
    if recal is not None and recal > trained.plan.recal_batches:
        raise ConfigError(f"study config {study.path}: scoring.recal_batches {recal} exceeds the "
                          f"{trained.plan.recal_batches} BN-recalibration batches {run} evaluates with: lower it, "
                          "or leave it out to use the run's own")
    recal = trained.plan.recal_batches if recal is None else recal
    scoring = dict(trained.scoring().to_dict(), recal_batches=recal)
    store = open_store(study.directory, study.values["study"]["name"], run, log)
    if legacy is not None:
        import_legacy(legacy, scoring, store, log)
    subnets = score_codes(trained, codes, scoring, store, log)
    return {"supernet_run": _relative(run, study.directory), "checkpoint": which,
            "weights_sha256": trained.weights_sha256, "recal_batches": recal, "scoring": scoring, "subnets": subnets}


def measure_latency(study: Study, codes: Sequence[ArchCode], log: Callable[[str], None]) -> Optional[Dict[str, Any]]:
    """Each subnet's measured float TFLite latency, kept in subnet_latency.json; None if not asked for.

    Measured once and kept while the model, input size, thread count,
    subnets and the way of timing (runs, warm-up, order) are the same (a
    latency belongs to the machine it was measured on, which the file describes
    with the load average before and after).
    """
    threads = study.section("analysis")["latency_threads"]
    if threads is None:
        return None
    from edgeflownas.latency.api import time_subnets
    from edgeflownas.latency.measure import DEFAULT_RUNS, DEFAULT_WARMUP, ORDER, device_description, load_average
    from edgeflownas.latency.table import model_settings

    model, height, width = _model_and_size(study)
    settings = {"precision": "float", "threads": threads, "input_hw": [height, width],
                "model": model_settings(model), "subnets": sorted(arch_name(code) for code in codes)}
    timing = {"runs": DEFAULT_RUNS, "warmup_runs": DEFAULT_WARMUP, "order": ORDER}
    path = study.directory / LATENCY_JSON
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("settings") == settings and {key: old.get("measurement", {}).get(key) for key in timing} == timing:
            log(f"latency: {len(codes)} subnets already measured ({path})")
            return old
        log(f"latency: {path} was measured under other settings or timed another way; measuring again")
    load_before = load_average()
    timed = time_subnets(model, height, width, codes, study.directory / ".latency-models", threads,
                         DEFAULT_RUNS, DEFAULT_WARMUP, log)
    doc = {"settings": settings, "device": device_description(),
           "measurement": {"statistic": "median of the timed invoke() calls", **timing,
                           "load_average_start": load_before, "load_average_end": load_average()},
           "subnets": timed}
    write_json_atomic(path, doc)
    log(f"latency: {len(codes)} subnets timed ({threads} thread(s), load average {load_before[0]:.2f} at the "
        f"start) -> {path}")
    return doc


# ----------------------------------------------------------------------------------------------- analysis
def _retrain_figure(trial: TrialPlan, epochs: int) -> Dict[str, Any]:
    """One finished retrain's reference figure (``edgeflownas.study.reference``) and where it comes from."""
    from edgeflownas.study.reference import retrain_figure
    from edgeflownas.train import run_dir as rd

    result = finished_result(trial)
    _, rows = rd.read_history(trial.run_dir / rd.HISTORY)
    evaluated = [row for row in rows if row.get(rd.mean_column(1)) is not None]
    if result is None or not evaluated:
        raise StudyError(f"{trial.run_dir}: no finished evaluation; run the same command again")
    figure = retrain_figure([float(row[rd.mean_column(1)]) for row in evaluated],
                            evaluated[-1].get(rd.ZERO_FLOW), epochs)
    return dict(figure, best=result["result"].get("best_mean_epe"), epochs=result["result"].get("epochs_done"),
                run_dir=_relative(trial.run_dir, study_root=trial.run_dir.parents[2]))


def _key(seed: Optional[int]) -> str:
    """A supernet's key in study.json: its seed, or "run" for the existing supernet.run."""
    return "run" if seed is None else str(seed)


def _relative(path: Path, study_root: Path) -> str:
    """``path`` relative to the study directory (artifacts name no machine-specific absolute path)."""
    return os.path.relpath(Path(path).resolve(), Path(study_root).resolve())  # '../other/run' if outside it


def analyse(study: Study, scores: Mapping[Optional[int], Mapping[str, Any]], codes: Sequence[ArchCode],
            plan: SubmissionPlan, log: Callable[[str], None],
            latency: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """study.json and study.png from the scores, the finished retrains and (if measured) the latencies."""
    from edgeflownas.report.study import write_figure
    from edgeflownas.study.analysis import analyze, summary_lines
    from edgeflownas.study.selection import total_depth

    retrain = study.section("retrain")
    by_code: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for trial in plan.trials:
        values = trial.resolved.config
        by_code.setdefault(arch_name(values.model.fixed_arch_code), {})[str(values.experiment.seed)] = \
            _retrain_figure(trial, retrain["reference_epochs"])
    subnets = []
    for code in codes:
        name = arch_name(code)
        first = next(iter(scores.values()))["subnets"][name]
        subnets.append({"code": list(code), "name": name, "baseline": tuple(code) == EDGEFLOWNET_BASELINE,
                        "depth": total_depth(code), "macs": first["macs"], "params": first["params"],
                        "supernet_epe": {_key(seed): doc["subnets"][name]["epe"] for seed, doc in scores.items()},
                        "supernet_epe_no_recal": {_key(seed): doc["subnets"][name]["epe_no_recal"]
                                                  for seed, doc in scores.items()},
                        "standalone": by_code[name]})
        if latency is not None:
            subnets[-1]["latency_ms"] = latency["subnets"][name]["median_ms"]
    analysis = study.section("analysis")
    doc: Dict[str, Any] = analyze(subnets, analysis["bootstrap"], analysis["ci"], analysis["seed"])
    zero = [r["zero_flow_epe"] for s in subnets for r in s["standalone"].values() if r.get("zero_flow_epe")]
    root = study.directory
    config = json.loads(json.dumps(study.values))
    config["study"]["output_root"] = _relative(Path(config["study"]["output_root"]), root.parent)
    for key in ("run", "config"):
        if config["supernet"][key] is not None:
            config["supernet"][key] = Path(config["supernet"][key]).name
    doc.update({
        "study": study.values["study"]["name"], "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "supernet_runs": {_key(seed): doc_["supernet_run"] for seed, doc_ in scores.items()},
        "checkpoint": next(iter(scores.values()))["checkpoint"],
        "weights_sha256": {_key(seed): doc_["weights_sha256"] for seed, doc_ in scores.items()},
        "recal_batches": next(iter(scores.values()))["recal_batches"],
        "seeds": len(retrain["seeds"]), "reference_kind": f"median over seeds of the mean val EPE of the last "
                                                         f"{retrain['reference_epochs']} evaluated epochs",
        "zero_flow_epe": zero[0] if zero else None,
        "selection": "stratified over total depth (4..12) x MAC bins within each depth, seeded, fixed in "
                     "subnets.json before any training",
        "subnets": subnets,
    })
    if latency is not None:
        doc["latency"].update({"device": latency["device"], "measurement": latency["measurement"],
                               "threads": latency["settings"]["threads"], "file": LATENCY_JSON})
    write_json_atomic(study.directory / STUDY_JSON, doc)
    write_figure(doc, study.directory / FIGURE)
    for line in summary_lines(doc):
        log(line)
    log(f"study: {study.directory / STUDY_JSON}, {study.directory / FIGURE}")
    return doc


def run_study(study: Study, log: Callable[[str], None]) -> Dict[str, Any]:
    """Every step of the study, each skipped when its artifacts are already there; study.json's document."""
    from edgeflownas.locks import exclusive_lock

    check_before_start(study)
    study.directory.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(study.directory, f"efnas study {study.values['study']['name']}", log):
        log(f"efnas study {study.values['study']['name']}: {study.directory} "
            f"({'SLURM' if study.slurm is not None else 'local'})")
        codes = chosen_codes(study, log)
        log(f"subnets: K={len(codes)}: {', '.join(arch_name(code) for code in codes)}")
        seeds = supernet_seeds(study)
        for label, make in (("warm-up", warmup_plan), ("supernet", supernet_plan)):
            plans = [(seed, make(study, seed)) for seed in seeds if seed is not None]
            plans = [(seed, plan) for seed, plan in plans if plan is not None]
            if study.slurm is None and len(plans) > 1:
                # Locally the seeds' trainings are independent: up to study.local_workers of them at once.
                merged = dataclasses.replace(plans[0][1], trials=[t for _, plan in plans for t in plan.trials])
                run_plan(study, merged, f"{label} seeds {', '.join(str(seed) for seed, _ in plans)}", log)
                continue
            for seed, plan in plans:
                run_plan(study, plan, f"{label} seed {seed}", log)
        scores = {seed: score_subnets(study, supernet_run(study, seed), codes, log, legacy_scores_path(study, seed))
                  for seed in seeds}
        plan = retrain_plan(study, supernet_run(study, seeds[0]), codes)
        run_plan(study, plan, "retrains", log, reference_note(study.section("retrain")["reference_epochs"]))
        latency = measure_latency(study, codes, log)
        return analyse(study, scores, codes, plan, log, latency)


def _data_note(plan: SubmissionPlan) -> List[str]:
    return [f"  note: {key} = {where} does not exist on this machine (it must exist where the trainings run)"
            for key, where in missing_data_dirs(plan.trials[0])]


def dry_run(study: Study) -> str:
    """What the study would do, with every run config resolved and validated (and, on SLURM, the sbatch script of
    its first training); nothing is trained, submitted or written."""
    from edgeflownas.study.scores import OWN_STORE
    from launcher.submit import dry_run as sbatch_script

    check_before_start(study)
    slurm_mode = study.slurm is not None
    own = study.section("study")
    local = (f"local ({own['local_workers']} training(s) at once, "
             f"{own['threads_per_training'] or 'TensorFlow default'} thread(s) each)")
    lines = [f"# efnas study --dry_run: {study.path} -> {study.directory}",
             f"# mode: {'SLURM (efnas submit; the retrains as one job array)' if slurm_mode else local}"]
    script = None
    seeds = supernet_seeds(study)
    for seed in seeds:
        for label, make in (("warm-up", warmup_plan), ("supernet", supernet_plan)):
            plan = make(study, seed, check_data=False) if seed is not None else None
            if plan is None:
                continue
            trial = plan.trials[0]
            state = "finished" if finished_result(trial) else "to train"
            cfg = trial.resolved.config
            lines.append(f"{label} seed {seed}: {trial.run_dir} ({state}): {cfg.train.supernet_mode}, "
                         f"{cfg.train.num_epochs} epochs x {cfg.train.steps_per_epoch or 'all'} steps, batch "
                         f"{cfg.train.batch_size}, {cfg.data.input_height}x{cfg.data.input_width}, width "
                         f"{cfg.model.init_neurons}, option_init "
                         f"{cfg.model.option_init}")
            lines += _data_note(plan)
            if slurm_mode and script is None:
                script = sbatch_script(plan)
    run = supernet_run(study, seeds[0])
    lines.append(f"supernet runs: {', '.join(str(supernet_run(study, seed)) for seed in seeds)}")
    lines.append(f"scores: kept in each supernet run's search store (<run>/search/store, shared with efnas search; "
                 f"{study.directory / OWN_STORE} if a run cannot be written)")
    subnets = study.section("subnets")
    extra = (" + baseline" if subnets["baseline"] else "") + (f" + {len(subnets['codes'])} listed codes"
                                                              if subnets["codes"] else "")
    lines.append(f"subnets: stratified over total depth 4..12 x {subnets['macs_bins']} MAC bins (seed "
                 f"{subnets['seed']}){extra}; chosen (and written to {SUBNETS_JSON}) when the study starts")
    retrain = study.section("retrain")
    lines.append(f"retrains: each subnet x seeds {retrain['seeds']} from the first supernet's config"
                 f"{' (' + str(retrain['set']) + ')' if retrain['set'] else ''}; reference = median over seeds of "
                 f"the last {retrain['reference_epochs']} epochs' mean val EPE")
    if (run / "config.yaml").is_file() and (study.directory / SUBNETS_JSON).is_file():
        codes = [tuple(s["code"]) for s in json.loads((study.directory / SUBNETS_JSON).read_text())["subnets"]]
        plan = retrain_plan(study, run, codes, check_data=False)
        done = sum(finished_result(t) is not None for t in plan.trials)
        lines.append(f"  {len(plan.trials)} retrains ({done} finished)")
        if slurm_mode and script is None:
            script = sbatch_script(plan)
    text = "\n".join(lines) + "\n"
    return text + (f"# sbatch script of the first SLURM submission:\n{script}" if script else "")
