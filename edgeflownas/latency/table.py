"""The latency table of one model at one input size on one device: written, read, checked and used here.

Decomposition (one block at a time, in context).  A block's option changes
only that block's own layers: the tensors entering and leaving it have the
same shapes whatever the option (``model.supernet``).  So the table holds the
measured latency of one whole *reference* subnet (every block at option 0)
and, for every block and option, the measured change of the whole model's
latency when only that block takes that option.  A subnet's latency is
predicted as

    latency(code) = reference + sum over blocks b of delta[b][code[b]]   (delta[b][0] = 0)

Every number is a whole exported model timed by the runtime on the device,
so kernel efficiency, memory traffic and the runtime's fused kernels are in
it; only interactions between blocks are not.  The constant is the measured
reference model itself, never fitted to other subnets.  Since a subnet with d
blocks changed is predicted as the sum of its d probes minus (d - 1) times the
reference, the reference is timed in ``REFERENCE_COPIES`` interpreters and their
runs pooled: a per-mille error in its median would otherwise grow up to
eightfold in the prediction of a far subnet.

Stated error.  ``check`` subnets, not used to build the table, span the space
(``check_codes``: two of the nearest codes to the reference that are not
probes, three farther random ones and the largest subnet).  Their largest
relative error in the table's own session is the model error (the interactions
between blocks the sum leaves out).  A prediction is compared with a later
measurement, though, so the reference and the check subnets are timed again in
a second session after every precision and thread count (``retimed``): their
largest relative change is the session shift, and the reference, the smallest
subnet, is where a shift of a few microseconds is largest in per cent.  The
table's ``stated_error_pct`` is the sum of the two, rounded up
(``STATED_ERROR_BASIS``; ``stated_error_terms`` gives both and their subnets).
``tau_macs_latency`` is Kendall's tau between MACs and measured latency over
every probe: how far MACs mislead on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.errors import ConfigError
from edgeflownas.nas.arch_codec import BLOCK_NAMES, NUM_OPTIONS, ArchCode, arch_name

TABLE_KIND = "efnas-latency-table"
PROBES_KIND = "efnas-latency-probes"
VERSION = 2
PRECISIONS = ("float", "int8")
# precision -> export format of the probe file
PRECISION_FORMATS = {"float": "tflite", "int8": "tflite_int8"}
REFERENCE: ArchCode = (0,) * len(BLOCK_NAMES)
# Check subnets: random codes with this many blocks changed from the reference (2 is the nearest a code that is no
# probe can be), and the largest subnet, every block at its last option (the farthest from the reference).
CHECK_DISTANCES = (2, 2, 3, 5, 7)
LARGEST: ArchCode = (NUM_OPTIONS - 1,) * len(BLOCK_NAMES)
# Interpreters the reference is timed in, their runs pooled: a subnet with d blocks changed is predicted as the sum
# of its d probes minus (d - 1) times the reference, so an error in the reference's median counts up to 8 times over.
REFERENCE_COPIES = 4
STATED_ERROR_BASIS = ("model_error_pct + session_shift_pct, rounded up to a whole per cent: model_error_pct is the "
                      "largest |predicted - measured| / measured over the check subnets (not used to build the table) "
                      "timed with the probes; session_shift_pct is the largest |first - second| / second median of the "
                      "reference and the check subnets timed again in a second session after every precision and "
                      "thread count (new interpreters, only those models). A later measurement of a subnet differs "
                      "from its prediction by at most the table's error plus the change between two timing sessions")
# The model settings a latency depends on (fixed_arch_code is what the table varies).
MODEL_KEYS = ("skeleton", "init_neurons", "expansion_factor", "input_normalization", "upsample")


def probe_codes(seed: int = 0) -> List[Tuple[str, ArchCode]]:
    """(role, code) of every probe: the reference, each block at each other option, and the check subnets."""
    probes = [("reference", REFERENCE)]
    for block, name in enumerate(BLOCK_NAMES):
        for option in range(1, NUM_OPTIONS):
            code = list(REFERENCE)
            code[block] = option
            probes.append((f"{name}={option}", tuple(code)))
    return probes + [("check", code) for code in check_codes(seed)]


def check_codes(seed: int = 0) -> List[ArchCode]:
    """The check subnets: for each of ``CHECK_DISTANCES`` a seeded random code with exactly that many blocks off
    option 0, all distinct, then ``LARGEST``."""
    rng = np.random.default_rng([0x1A7E, seed])
    codes: List[ArchCode] = []
    for distance in CHECK_DISTANCES:
        while True:
            code = np.zeros(len(BLOCK_NAMES), int)
            code[rng.choice(len(BLOCK_NAMES), distance, replace=False)] = rng.integers(1, NUM_OPTIONS, distance)
            if tuple(int(option) for option in code) not in codes:
                break
        codes.append(tuple(int(option) for option in code))
    return codes + [LARGEST]


def model_settings(model_cfg: Any) -> Dict[str, Any]:
    """The model settings a latency depends on, from a ``ModelConfig``."""
    return {key: getattr(model_cfg, key) for key in MODEL_KEYS}


Timings = Mapping[str, Mapping[int, Mapping[str, Dict[str, float]]]]


def retimed_names(probes: Mapping[str, Any]) -> List[str]:
    """The probes timed again in the second session: the reference and the check subnets."""
    return [probe["name"] for probe in probes["probes"] if probe["role"] in ("reference", "check")]


def build_table(probes: Mapping[str, Any], timings: Timings, retimings: Timings, device: Mapping[str, Any],
                measurement: Mapping[str, Any]) -> Dict[str, Any]:
    """The table document from the probe manifest, ``timings[precision][threads][probe name]`` summaries of
    every probe and ``retimings`` (same keys) of the ``retimed_names`` probes in the second session."""
    by_role = {probe["role"]: probe["name"] for probe in probes["probes"] if probe["role"] != "check"}
    checks = [probe for probe in probes["probes"] if probe["role"] == "check"]
    entries: Dict[str, Dict[str, Any]] = {}
    for precision, per_threads in timings.items():
        entries[precision] = {}
        for threads, timed in per_threads.items():
            retimed = retimings[precision][threads]
            reference = timed[by_role["reference"]]
            blocks = {}
            for name in BLOCK_NAMES:
                options = [{"delta_ms": 0.0, **_spread(reference)}]
                for option in range(1, NUM_OPTIONS):
                    measured = timed[by_role[f"{name}={option}"]]
                    options.append({"delta_ms": measured["median_ms"] - reference["median_ms"], **_spread(measured)})
                blocks[name] = options
            entry = {"reference_ms": reference["median_ms"], "reference": reference, "blocks": blocks}
            entry["check"] = [_check(entry, probe, timed[probe["name"]], retimed[probe["name"]]) for probe in checks]
            again = retimed[by_role["reference"]]["median_ms"]
            entry["retimed_reference"] = {"measured_ms": again, "error_pct": _error_pct(reference["median_ms"], again)}
            entry.update(_stated_error(entry))
            # how far MACs mislead here: their rank correlation with the measured latency of every probe
            entry["tau_macs_latency"] = macs_latency_tau([p["macs"] for p in probes["probes"]],
                                                         [timed[p["name"]]["median_ms"] for p in probes["probes"]])
            entries[precision][str(threads)] = entry
    return {"kind": TABLE_KIND, "version": VERSION, "device": dict(device), "input_hw": list(probes["input_hw"]),
            "model": dict(probes["model"]), "reference_code": list(REFERENCE),
            "measurement": dict(measurement), "stated_error_basis": STATED_ERROR_BASIS, "latency": entries}


def _spread(timed: Mapping[str, float]) -> Dict[str, float]:
    """The probe's own median and 10-90 % range, kept beside its delta."""
    return {"probe_median_ms": timed["median_ms"], "probe_p10_ms": timed["p10_ms"], "probe_p90_ms": timed["p90_ms"]}


def _check(entry: Mapping[str, Any], probe: Mapping[str, Any], timed: Mapping[str, float],
           retimed: Mapping[str, float]) -> Dict[str, Any]:
    predicted = _predict(entry, probe["arch_code"])
    return {"arch_code": list(probe["arch_code"]), "predicted_ms": predicted, "measured_ms": timed["median_ms"],
            "error_pct": _error_pct(predicted, timed["median_ms"]), "retimed_ms": retimed["median_ms"],
            "retimed_error_pct": _error_pct(predicted, retimed["median_ms"])}


def _error_pct(predicted: float, measured: float) -> float:
    return 100.0 * (predicted - measured) / measured


def _stated_error(entry: Mapping[str, Any]) -> Dict[str, Any]:
    """``stated_error_pct`` (``STATED_ERROR_BASIS``) and its two terms, each with the subnet it comes from."""
    model, model_at = max((abs(row["error_pct"]), row["arch_code"]) for row in entry["check"])
    again = [(row["measured_ms"], row["retimed_ms"], row["arch_code"]) for row in entry["check"]]
    again.append((entry["reference_ms"], entry["retimed_reference"]["measured_ms"], list(REFERENCE)))
    shift, shift_at = max((abs(_error_pct(first, second)), code) for first, second, code in again)
    return {"stated_error_pct": float(np.ceil(model + shift)),
            "stated_error_terms": {"model_error_pct": model, "model_error_at": model_at,
                                   "session_shift_pct": shift, "session_shift_at": shift_at}}


def _predict(entry: Mapping[str, Any], code: Sequence[int]) -> float:
    return entry["reference_ms"] + sum(entry["blocks"][name][int(option)]["delta_ms"]
                                       for name, option in zip(BLOCK_NAMES, code))


class LatencyTable:
    """A latency table read from disk: predicts the latency of any code at its precision and thread count."""

    def __init__(self, doc: Dict[str, Any], path: Optional[Path] = None) -> None:
        self.doc, self.path = doc, path

    @property
    def input_hw(self) -> Tuple[int, int]:
        """(height, width) the probes were built at."""
        return tuple(self.doc["input_hw"])

    def entry(self, precision: str = "float", threads: Optional[int] = None) -> Dict[str, Any]:
        """The entry of one precision and thread count (default: the fewest threads measured)."""
        where = self.path or "the latency table"
        if precision not in self.doc["latency"]:
            raise ConfigError(f"{where} has no {precision} latencies (it has {', '.join(self.doc['latency'])}): "
                              f"measure it with efnas latency --precision {precision}")
        per_threads = self.doc["latency"][precision]
        key = str(threads) if threads is not None else min(per_threads, key=int)
        if key not in per_threads:
            raise ConfigError(f"{where} has no {precision} latency at {key} thread(s) (it has "
                              f"{', '.join(sorted(per_threads, key=int))}): measure it with --threads {key}")
        return per_threads[key]

    def predict_ms(self, code: Sequence[int], precision: str = "float", threads: Optional[int] = None) -> float:
        """Predicted latency (ms) of ``code``: the reference plus each block's delta."""
        return _predict(self.entry(precision, threads), code)

    def stated_error_pct(self, precision: str = "float", threads: Optional[int] = None) -> float:
        """The table's stated relative error (%) at this precision and thread count (``STATED_ERROR_BASIS``)."""
        return self.entry(precision, threads)["stated_error_pct"]

    def check_matches(self, height: int, width: int, model_cfg: Any, what: str) -> None:
        """ConfigError unless the table was measured at ``height`` x ``width`` for this model (``what`` names it)."""
        where = self.path or "the latency table"
        if self.input_hw != (height, width):
            raise ConfigError(f"{where} was measured at {self.input_hw[0]}x{self.input_hw[1]}, {what} runs at "
                              f"{height}x{width}: build a table for it with efnas latency --run")
        settings = model_settings(model_cfg)
        differ = [f"{key} {self.doc['model'].get(key)!r} vs {value!r}" for key, value in settings.items()
                  if self.doc["model"].get(key) != value]
        if differ:
            raise ConfigError(f"{where} was measured for another model than {what} ({'; '.join(differ)}): "
                              "build a table for it with efnas latency --run")


def write_table(path: Path, doc: Mapping[str, Any]) -> Path:
    """Write the table atomically (validated first, so a bad table is never written)."""
    validate_table(doc, Path(path))
    write_json_atomic(Path(path), doc)
    return Path(path)


def read_table(path: Path) -> LatencyTable:
    """The latency table at ``path``; ConfigError naming the file if it is missing, damaged or not a table."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: --latency_table must be a file written by efnas latency") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}): measure the table again with efnas latency") from None
    validate_table(doc, path)
    return LatencyTable(doc, path)


def validate_table(doc: Any, path: Path) -> None:
    """ConfigError naming ``path`` and the first thing wrong if ``doc`` is not a latency table of this version."""
    def fail(what: str) -> None:
        raise ConfigError(f"{path}: {what}; it is not a latency table written by efnas latency (measure it again)")

    if not isinstance(doc, dict) or doc.get("kind") != TABLE_KIND:
        fail(f"'kind' is not {TABLE_KIND!r}")
    if isinstance(doc.get("version"), int) and doc["version"] < VERSION:
        raise ConfigError(f"{path} was written by an older efnas latency (table version {doc['version']}; this efnas "
                          f"reads version {VERSION}, whose timing and stated error are measured differently): measure "
                          "it again with efnas latency --run RUN --out NEW")
    if doc.get("version") != VERSION:
        fail(f"'version' is {doc.get('version')!r}, this efnas reads version {VERSION}")
    for key in ("device", "input_hw", "model", "measurement", "latency", "reference_code", "stated_error_basis"):
        if key not in doc:
            fail(f"'{key}' is missing")
    if not doc["latency"] or any(p not in PRECISIONS for p in doc["latency"]):
        fail(f"'latency' must map some of {', '.join(PRECISIONS)} to thread counts")
    for precision, per_threads in doc["latency"].items():
        for threads, entry in per_threads.items():
            at = f"latency.{precision}.{threads}"
            if not str(threads).isdigit() or int(threads) < 1:
                fail(f"{at}: thread count {threads!r} is not a positive integer")
            if not isinstance(entry.get("reference_ms"), (int, float)) or entry["reference_ms"] <= 0:
                fail(f"{at}.reference_ms must be a positive number of milliseconds")
            blocks = entry.get("blocks", {})
            if sorted(blocks) != sorted(BLOCK_NAMES) or any(len(blocks[b]) != NUM_OPTIONS for b in BLOCK_NAMES):
                fail(f"{at}.blocks must hold {NUM_OPTIONS} options for each of {', '.join(BLOCK_NAMES)}")
            if any(not np.isfinite(option.get("delta_ms", np.nan)) for b in BLOCK_NAMES for option in blocks[b]):
                fail(f"{at}.blocks: every option needs a finite delta_ms")
            stated = entry.get("stated_error_pct")
            if not isinstance(stated, (int, float)) or not np.isfinite(stated) or stated < 0:
                fail(f"{at}.stated_error_pct must be a non-negative number of per cent")


def probe_name(code: Sequence[int]) -> str:
    """The probe's name (its arch name)."""
    return arch_name(tuple(code))


def validation(predicted: Sequence[float], measured: Sequence[float], macs: Sequence[float]) -> Dict[str, float]:
    """How well a table predicts measured whole-model latencies, and how far MACs mislead.

    ``mape_pct``: mean |predicted - measured| / measured; ``bias_pct``: the mean signed error (a wrong
    constant shows here); ``tau_predicted``: Kendall tau between predicted and measured latency;
    ``tau_macs_latency``: Kendall tau between MACs and measured latency over the same subnets.
    """
    from edgeflownas.report.ranking import kendall_tau

    predicted, measured = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    errors = (predicted - measured) / measured
    return {"subnets": int(measured.size), "mape_pct": float(100 * np.abs(errors).mean()),
            "max_error_pct": float(100 * np.abs(errors).max()), "bias_pct": float(100 * errors.mean()),
            "tau_predicted": float(kendall_tau(list(predicted), list(measured))),
            "tau_macs_latency": macs_latency_tau(macs, measured)}


def macs_latency_tau(macs: Sequence[float], latencies_ms: Sequence[float]) -> float:
    """Kendall tau between subnets' MACs and their measured latencies: 1 when MACs rank them as the device does."""
    from edgeflownas.report.ranking import kendall_tau

    return float(kendall_tau([float(m) for m in macs], [float(t) for t in latencies_ms]))


class LatencyCosts:
    """A cost table with each code's predicted latency added as ``latency_ms`` (the search's and eval's costs)."""

    def __init__(self, costs: Any, table: LatencyTable, precision: str = "float",
                 threads: Optional[int] = None) -> None:
        table.entry(precision, threads)  # a ConfigError now if the table lacks them
        self.costs, self.table, self.precision, self.threads = costs, table, precision, threads
        self.height, self.width = costs.height, costs.width

    def cost(self, code: Sequence[int]) -> Dict[str, Any]:
        """The wrapped table's costs of ``code`` and its predicted ``latency_ms``."""
        return dict(self.costs.cost(code), latency_ms=self.table.predict_ms(code, self.precision, self.threads))

    def describe(self) -> Dict[str, Any]:
        """What the latencies are: table file, device, runtime, precision, threads and the stated error."""
        entry = self.table.entry(self.precision, self.threads)
        threads = self.threads if self.threads is not None else int(min(self.table.doc["latency"][self.precision],
                                                                        key=int))
        device = self.table.doc["device"]
        return {"table": str(self.table.path), "precision": self.precision, "threads": threads,
                "device": f"{device['cpu']} ({device['cpus']} cpus)",
                "runtime": f"{device['runtime']} {device['runtime_version']}",
                "reference_ms": entry["reference_ms"], "stated_error_pct": entry["stated_error_pct"],
                "tau_macs_latency": entry.get("tau_macs_latency")}


def latency_costs(costs: Any, path: Optional[Path], precision: str, threads: Optional[int], height: int, width: int,
                  model_cfg: Any, what: str) -> Any:
    """``costs`` with latencies from the table at ``path`` (checked against the run), or ``costs`` if no table."""
    if path is None:
        return costs
    table = read_table(Path(path))
    table.check_matches(height, width, model_cfg, what)
    return LatencyCosts(costs, table, precision, threads)
