"""The 9-dim architecture code of the EdgeFlowNAS search space (docs/design.md §3).

One integer option in {0,1,2} per block, in the order of ``BLOCK_NAMES``:

- EB0, EB1, DB0, DB1 (encoder/decoder stages): option o = depth o+1 ResBlocks;
- H0..H4 (output heads and head upsamplers): option o = kernel 3, 5 or 7.

A code is written by users as ``0,1,2,0,0,1,2,1,0``, as a JSON list
``[0,1,2,0,0,1,2,1,0]``, or as its compact name ``a012001210`` (``a`` + the 9
digits), which is safe in log lines and file names.  ``parse_arch_code``
accepts all three forms, the word ``baseline`` (EdgeFlowNet's own subnet) and any sequence of integers, and rejects everything
else with an ``ArchCodeError`` that says what was expected.
"""

from __future__ import annotations

import json
import numbers
from typing import Any, Dict, List, Sequence, Tuple, Union

from edgeflownas.errors import ArchCodeError

ArchCode = Tuple[int, ...]

BLOCK_NAMES = ("EB0", "EB1", "DB0", "DB1", "H0", "H1", "H2", "H3", "H4")
NUM_BLOCKS = len(BLOCK_NAMES)
NUM_OPTIONS = 3
DEPTH_BLOCKS = BLOCK_NAMES[:4]
KERNEL_BLOCKS = BLOCK_NAMES[4:]
DEPTH_CHOICES = (1, 2, 3)
KERNEL_CHOICES = (3, 5, 7)
EDGEFLOWNET_BASELINE: ArchCode = (0, 0, 0, 0, 2, 1, 2, 2, 2)
NAME_PREFIX = "a"
BASELINE_NAME = "baseline"  # accepted wherever a code is, for EDGEFLOWNET_BASELINE

BLOCK_ROLES = {
    "EB0": "encoder ResBlocks at 1/4 scale, then stride-2 conv to 1/8",
    "EB1": "encoder ResBlocks at 1/8 scale, then stride-2 conv to 1/16",
    "DB0": "decoder ResBlocks at 1/16 scale, then bilinear upsample + conv to 1/8",
    "DB1": "decoder ResBlocks at 1/8 scale, then bilinear upsample + conv to 1/4",
    "H0": "flow head at 1/4 scale",
    "H1": "bilinear upsample to 1/2 + Conv-BN-ReLU",
    "H2": "flow head at 1/2 scale",
    "H3": "bilinear upsample to 1/1 + Conv-BN-ReLU",
    "H4": "flow head at 1/1 scale",
}

_FORMS = "'0,1,2,0,0,1,2,1,0', '[0,1,2,0,0,1,2,1,0]' or 'a012001210'"


def parse_arch_code(code: Union[str, Sequence[Any]]) -> ArchCode:
    """Validate an arch code given as text (comma list, JSON list, compact name, ``baseline``) or a sequence of ints."""
    if isinstance(code, str) and code.strip().lower() == BASELINE_NAME:
        return EDGEFLOWNET_BASELINE
    if isinstance(code, str):
        values = _split_text(code)
    elif isinstance(code, (list, tuple)) or _is_array(code):
        values = list(code)
    else:
        raise ArchCodeError(f"arch code {code!r} is a {type(code).__name__}: expected text like {_FORMS} or a list of 9 integers")
    shown = code if isinstance(code, str) else list(values)
    if len(values) != NUM_BLOCKS:
        raise ArchCodeError(
            f"arch code {shown!r} has {len(values)} values: length=9 required "
            f"(one option per block {','.join(BLOCK_NAMES)})"
        )
    parsed = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ArchCodeError(
                f"arch code {shown!r}: block {BLOCK_NAMES[index]} (position {index}) is {value!r}, "
                "not an integer: value must be in {0,1,2}"
            )
        if not 0 <= int(value) < NUM_OPTIONS:
            raise ArchCodeError(
                f"arch code {shown!r}: block {BLOCK_NAMES[index]} (position {index}) is {int(value)}: "
                "value must be in {0,1,2}"
            )
        parsed.append(int(value))
    return tuple(parsed)


def arch_name(code: Union[str, Sequence[Any]]) -> str:
    """Compact file-name-safe name of a code, e.g. ``a000021222`` for the EdgeFlowNet baseline."""
    return NAME_PREFIX + "".join(str(v) for v in parse_arch_code(code))


def depth_of(code: ArchCode, block: str) -> int:
    """Number of ResBlocks a code selects for a stage block (EB0, EB1, DB0, DB1)."""
    return DEPTH_CHOICES[code[DEPTH_BLOCKS.index(block)]]


def kernel_of(code: ArchCode, block: str) -> int:
    """Kernel size a code selects for a head block (H0..H4)."""
    return KERNEL_CHOICES[code[NUM_BLOCKS - len(KERNEL_BLOCKS) + KERNEL_BLOCKS.index(block)]]


def describe(code: Union[str, Sequence[Any]]) -> Dict[str, Any]:
    """Readable structure of a code: name, and per block its option, depth or kernel, and role."""
    parsed = parse_arch_code(code)
    blocks: List[Dict[str, Any]] = []
    for index, (block, option) in enumerate(zip(BLOCK_NAMES, parsed)):
        entry: Dict[str, Any] = {"block": block, "index": index, "option": option}
        if block in DEPTH_BLOCKS:
            entry.update(kind="depth", depth=DEPTH_CHOICES[option], text=f"depth {DEPTH_CHOICES[option]}")
        else:
            kernel = KERNEL_CHOICES[option]
            entry.update(kind="kernel", kernel=kernel, text=f"kernel {kernel}x{kernel}")
        entry["role"] = BLOCK_ROLES[block]
        blocks.append(entry)
    return {
        "arch_code": list(parsed),
        "name": arch_name(parsed),
        "is_edgeflownet_baseline": parsed == EDGEFLOWNET_BASELINE,
        "blocks": blocks,
    }


def format_code(code: ArchCode) -> str:
    """The comma form of a code, as a user would type it."""
    return ",".join(str(v) for v in code)


def _split_text(text: str) -> List[Any]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ArchCodeError(f"arch code {text!r} is not a valid JSON list ({exc.msg}): expected e.g. {_FORMS}") from None
        if not isinstance(values, list):
            raise ArchCodeError(f"arch code {text!r} is not a list: expected e.g. {_FORMS}")
        return values
    if stripped.startswith(NAME_PREFIX):
        digits = stripped[len(NAME_PREFIX):]
        return [_parse_int_token(text, d) for d in digits]
    tokens = stripped.replace(",", " ").split()
    if not tokens:
        raise ArchCodeError(f"arch code {text!r} is empty: length=9 required, e.g. {_FORMS}")
    return [_parse_int_token(text, token) for token in tokens]


def _parse_int_token(text: str, token: str) -> Any:
    try:
        return int(token)
    except ValueError:
        raise ArchCodeError(
            f"arch code {text!r}: {token!r} is not an integer: value must be in {{0,1,2}} (forms: {_FORMS})"
        ) from None


def _is_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "ndim") and value.ndim == 1
