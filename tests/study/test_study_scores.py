"""The study's supernet scores live in the run's search store: a search's scores are reused by the study and the
study's by a search (the evaluator is not called for them), an older study's supernet_scores*.json is imported,
and a run that cannot be written leaves the study its own store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeflownas.errors import StudyError
from edgeflownas.nas import front as fr
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, arch_name, parse_arch_code
from edgeflownas.search.store import ResultStore
from edgeflownas.study.scores import OWN_STORE, import_legacy, legacy_scores, run_store_dir, writer_name

LEGACY = Path(__file__).parent / "data" / "legacy_supernet_scores.json"  # an older study's file, as it wrote it
# Only H0 free: a 3-code space an exhaustive search covers with 3 candidates.
FIXED = ("EB0=0", "EB1=0", "DB0=0", "DB1=0", "H1=1", "H2=1", "H3=1", "H4=1")
SPACE = [parse_arch_code(f"a0000{h}1111") for h in range(3)]


# ----------------------------------------------------------------------------------------------- no TensorFlow
def test_an_older_studys_scores_file_is_imported_once_and_left_unchanged(tmp_path):
    legacy = tmp_path / "supernet_scores.json"
    shutil.copyfile(LEGACY, legacy)
    before = legacy.read_bytes()
    doc = json.loads(before)
    scoring = doc["scoring"]
    store = ResultStore(tmp_path / "store", writer="study")
    lines = []
    assert import_legacy(legacy, scoring, store, lines.append) == 2 * len(doc["subnets"]) == 18
    assert import_legacy(legacy, scoring, store, lines.append) == 0  # already in the store
    assert legacy.read_bytes() == before
    again = ResultStore(tmp_path / "store", writer="reader")
    no_recal = dict(scoring, recal_batches=0)
    for name, entry in doc["subnets"].items():
        code = tuple(entry["code"])
        assert again.get(scoring["checkpoint_sha256"], code, scoring)["epe"] == entry["epe"]
        assert again.get(scoring["checkpoint_sha256"], code, no_recal)["epe"] == entry["epe_no_recal"]
        assert again.get(scoring["checkpoint_sha256"], code, scoring)["macs"] == entry["macs"]
    assert len(store.path.read_text().splitlines()) == 18
    assert all(json.loads(line)["imported_from"] == legacy.name for line in store.path.read_text().splitlines())
    assert len(lines) == 1 and "18 scores imported" in lines[0]


def test_an_older_scores_file_under_other_settings_is_not_used(tmp_path):
    scoring = json.loads(LEGACY.read_text())["scoring"]
    store = ResultStore(tmp_path / "store", writer="study")
    lines = []
    assert import_legacy(LEGACY, dict(scoring, recal_batches=4), store, lines.append) == 0
    assert import_legacy(LEGACY, dict(scoring, checkpoint_sha256="0" * 64), store, lines.append) == 0
    assert import_legacy(tmp_path / "absent.json", scoring, store, lines.append) == 0
    assert not store.results and len(lines) == 2 and all("not used" in line for line in lines)


@pytest.mark.parametrize("damage, message", [
    (lambda doc: "{not json", "is damaged, not valid JSON"),
    (lambda doc: json.dumps(dict(doc, subnets=[1, 2])), "no 'subnets' object"),
    (lambda doc: json.dumps(dict(doc, subnets={"a000000000": {"code": [0] * 9}})), "'a000000000' is damaged"),
    (lambda doc: json.dumps(dict(doc, subnets={"a000000001": {"code": [0] * 9, "macs": 1, "params": 1}})),
     "holds the code of a000000000"),
])
def test_a_damaged_older_scores_file_is_one_line_naming_it(tmp_path, damage, message):
    doc = json.loads(LEGACY.read_text())
    path = tmp_path / "supernet_scores_seed7.json"
    path.write_text(damage(doc))
    with pytest.raises(StudyError, match=message) as error:
        legacy_scores(path, doc["scoring"])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_writer_is_one_per_study_directory(tmp_path):
    assert writer_name(tmp_path / "a", "small") == writer_name(tmp_path / "x" / ".." / "a", "small")
    assert writer_name(tmp_path / "a", "small") != writer_name(tmp_path / "b", "small")
    assert writer_name(tmp_path / "a", "small").startswith("study-small-")


# ----------------------------------------------------------------------------------------------- on a trained run
class EvaluatorCalls:
    """Every CheckpointEvaluator opened and every epe() asked while installed: (code, val, recal batches)."""

    def __init__(self, monkeypatch) -> None:
        from edgeflownas.train.checkpoint_eval import CheckpointEvaluator

        self.opened, self.epe = 0, []
        enter, epe = CheckpointEvaluator.__enter__, CheckpointEvaluator.epe

        def counted_enter(evaluator):
            self.opened += 1
            return enter(evaluator)

        def counted_epe(evaluator, code, val_batches=None, recal_batches=None):
            self.epe.append((tuple(code), val_batches, recal_batches))
            return epe(evaluator, code, val_batches, recal_batches)

        monkeypatch.setattr(CheckpointEvaluator, "__enter__", counted_enter)
        monkeypatch.setattr(CheckpointEvaluator, "epe", counted_epe)


def _study(directory: Path):
    """A study whose directory is ``directory`` (named by its folder)."""
    from launcher.study import Study

    values = {"study": {"output_root": str(directory.parent), "name": directory.name},
              "supernet": {"checkpoint": "best"}, "scoring": {"recal_batches": None}}
    directory.mkdir(parents=True, exist_ok=True)
    return Study(directory / "study.yaml", values)


def _score(study_dir: Path, run: Path, codes, legacy=None, log=None):
    """``score_subnets`` of the study in ``study_dir`` with the run's own scoring settings."""
    from launcher.study import score_subnets

    study = _study(study_dir)
    assert study.directory == study_dir
    return score_subnets(study, run, codes, log or (lambda line: None), legacy)


def _search(run: Path):
    from edgeflownas.search.run import SearchRequest, run_search
    from edgeflownas.search.strategies import StrategySettings

    return run_search(SearchRequest(run, run / "search", StrategySettings("exhaustive", population=3), fixed=FIXED))


def _codes(run: Path):
    from edgeflownas.train.trained_run import TrainedRun

    return list(dict.fromkeys(SPACE + list(TrainedRun.open(run, "best").pool()) + [EDGEFLOWNET_BASELINE]))


def _batches(run: Path):
    """(validation batches, recalibration batches) the run scores with."""
    from edgeflownas.train.trained_run import TrainedRun

    scoring = TrainedRun.open(run, "best").scoring()
    return scoring.val_batches, scoring.recal_batches


def _lines(folder: Path):
    return {path.name: [json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted(folder.glob("*.jsonl"))}


@pytest.fixture
def run(search_run, tmp_path) -> Path:
    """A writable copy of the tiny supernet run (the session's is shared by other tests)."""
    copy = tmp_path / "run"
    shutil.copytree(search_run, copy)
    return copy


@pytest.mark.slow
def test_a_search_first_then_the_study_reuses_its_scores(run, tmp_path, monkeypatch):
    searched = _search(run)
    codes = _codes(run)
    assert searched["scored"] == len(codes) == 16  # the 3-code space, the pool of 12, the baseline
    val, _ = _batches(run)
    calls = EvaluatorCalls(monkeypatch)
    doc = _score(tmp_path / "study", run, codes)
    # the search's scores were reused: only the study's own second score, without recalibration, was made
    assert sorted(calls.epe) == sorted((code, val, 0) for code in codes) and calls.opened == 1
    by_search = {e["name"]: e["epe"] for e in fr.load_scored(run / "search")}
    assert {name: entry["epe"] for name, entry in doc["subnets"].items()} == by_search
    files = _lines(run_store_dir(run))
    study_file = writer_name(tmp_path / "study", "study") + ".jsonl"
    assert sorted(files) == ["driver.jsonl", study_file]
    assert len(files["driver.jsonl"]) == 16 and len(files[study_file]) == 16
    assert all(r["scoring"]["recal_batches"] == 0 for r in files[study_file])
    calls.epe.clear()
    assert _score(tmp_path / "study", run, codes) == doc and calls.epe == []  # resumed: nothing scored again
    from edgeflownas.train.trained_run import TrainedRun

    with TrainedRun.open(run, "best").evaluator() as evaluator:  # the second score is eval's without recal
        assert evaluator.epe(codes[0], recal_batches=0) == doc["subnets"][arch_name(codes[0])]["epe_no_recal"]


@pytest.mark.slow
def test_the_study_first_then_a_search_reuses_its_scores(run, tmp_path, monkeypatch):
    codes = _codes(run)
    doc = _score(tmp_path / "study", run, codes)
    calls = EvaluatorCalls(monkeypatch)
    searched = _search(run)
    assert calls.epe == [] and calls.opened == 0 and searched["seconds_per_candidate"] is None
    by_search = {e["name"]: e["epe"] for e in fr.load_scored(run / "search")}
    assert by_search == {name: entry["epe"] for name, entry in doc["subnets"].items()}
    files = _lines(run_store_dir(run))
    assert list(files) == [writer_name(tmp_path / "study", "study") + ".jsonl"]  # the search added no line
    keys = [(r["name"], json.dumps(r["scoring"], sort_keys=True)) for r in files[list(files)[0]]]
    assert len(keys) == len(set(keys)) == 32  # one score per (run, scoring settings, subnet)


@pytest.mark.slow
def test_an_older_studys_scores_are_honoured_on_resume(run, tmp_path, monkeypatch):
    from edgeflownas.train.trained_run import TrainedRun

    trained = TrainedRun.open(run, "best")
    codes = [EDGEFLOWNET_BASELINE, trained.pool()[0]]
    scoring = trained.scoring().to_dict()
    legacy = tmp_path / "study" / "supernet_scores.json"
    legacy.parent.mkdir()
    # as the study wrote it before the store; made-up EPEs show that they are taken, not recomputed
    subnets = {arch_name(code): {"code": list(code), "epe": 10.0 + i, "epe_no_recal": 20.0 + i, **trained.cost(code)}
               for i, code in enumerate(codes)}
    legacy.write_text(json.dumps({"supernet_run": "../run", "checkpoint": "best",
                                  "weights_sha256": trained.weights_sha256, "recal_batches": scoring["recal_batches"],
                                  "scoring": scoring, "subnets": subnets}))
    before = legacy.read_bytes()
    calls = EvaluatorCalls(monkeypatch)
    doc = _score(tmp_path / "study", run, codes, legacy)
    assert calls.epe == [] and calls.opened == 0 and legacy.read_bytes() == before
    assert doc["subnets"] == subnets
    imported = _lines(run_store_dir(run))[writer_name(tmp_path / "study", "study") + ".jsonl"]
    assert len(imported) == 4 and {r["imported_from"] for r in imported} == {"supernet_scores.json"}
    # another study's file of other weights is not used: its subnet is scored
    other = tmp_path / "other" / "supernet_scores_seed7.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"scoring": dict(scoring, checkpoint_sha256="0" * 64),
                                 "subnets": {arch_name(codes[1]): subnets[arch_name(codes[1])]}}))
    lines = []
    third = trained.pool()[1]
    again = _score(tmp_path / "other", run, [codes[1], third], other, log=lines.append)
    val, recal = _batches(run)
    assert sorted(calls.epe) == sorted([(third, val, recal), (third, val, 0)])
    assert again["subnets"][arch_name(codes[1])] == subnets[arch_name(codes[1])]  # from the store
    assert any("not used" in line for line in lines)


@pytest.mark.slow
def test_a_run_that_cannot_be_written_leaves_the_study_its_own_store(search_run, tmpfs, tmp_path, monkeypatch):
    disk = tmpfs("runs", "64m")
    run = disk / "run"
    shutil.copytree(search_run, run)
    first = _score(tmp_path / "first", run, [EDGEFLOWNET_BASELINE])
    (val, recal), pool0 = _batches(run), _codes(run)[0]
    tmpfs.make_read_only(disk)
    run_files = _lines(run_store_dir(run))
    calls = EvaluatorCalls(monkeypatch)
    lines = []
    doc = _score(tmp_path / "second", run, [EDGEFLOWNET_BASELINE, pool0], log=lines.append)
    assert sorted(calls.epe) == sorted([(pool0, val, recal), (pool0, val, 0)])  # the baseline: the run's store
    assert doc["subnets"][arch_name(EDGEFLOWNET_BASELINE)] == first["subnets"][arch_name(EDGEFLOWNET_BASELINE)]
    assert any("cannot write in" in line for line in lines)
    own = _lines(tmp_path / "second" / OWN_STORE)
    assert list(own) == [writer_name(tmp_path / "second", "second") + ".jsonl"] and len(own[list(own)[0]]) == 2
    assert _lines(run_store_dir(run)) == run_files
    calls.epe.clear()
    assert _score(tmp_path / "second", run, [EDGEFLOWNET_BASELINE, pool0]) == doc
    assert calls.epe == []
