"""Frozen dataclasses that carry a validated config through the program.

Field names mirror ``schemas/supernet_config.schema.json`` one to one (a test
keeps them in step); every value here has already passed the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple, Union


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    output_root: str
    seed: int


@dataclass(frozen=True)
class DataConfig:
    source: str
    train_dir: str
    val_dir: str
    shards_dir: Optional[str]
    input_height: int
    input_width: int
    num_workers: Union[int, str]  # or "auto": loader.worker_count decides per source
    prefetch_batches: int


@dataclass(frozen=True)
class ModelConfig:
    skeleton: str
    init_neurons: int
    expansion_factor: int
    fixed_arch_code: Tuple[int, ...]
    input_normalization: str
    upsample: str = "resize_conv"
    option_init: str = "tied"
    residual_init: str = "random"


@dataclass(frozen=True)
class LossConfig:
    scale_weights: Tuple[float, ...]
    # A default only so cost counting can build a loss it never evaluates; configs always set it.
    uncertainty_form: str = "safe"


@dataclass(frozen=True)
class TrainConfig:
    supernet_mode: str
    num_epochs: int
    batch_size: int
    lr: float
    lr_min: float
    lr_warmup_steps: int
    weight_decay: float
    grad_clip_norm: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    steps_per_epoch: Optional[int]
    max_epochs: Optional[int]
    max_steps: Optional[int]
    log_every_steps: int
    nonfinite: str
    max_skipped_steps: int


@dataclass(frozen=True)
class EvalConfig:
    every_n_epochs: int
    pool_size: int
    bn_recal_batches: int
    batch_size: Optional[int]
    val_batches: Optional[int]
    flow_pictures: int


@dataclass(frozen=True)
class EarlyStopConfig:
    patience: int
    min_delta: float
    min_epochs_before_early_stop: int


@dataclass(frozen=True)
class CheckpointConfig:
    resume: bool
    resume_experiment_name: Optional[str]
    reset_early_stop_on_resume: bool
    init_from: Optional[str] = None


@dataclass(frozen=True)
class RuntimeConfig:
    gpu_device: Optional[int]
    deterministic: bool
    debug_trace: bool
    fast_mode: bool
    graph_optimizations: bool
    xla: bool = False


@dataclass(frozen=True)
class FastModeConfig:
    steps_per_epoch: int
    val_batches: int
    eval_batch_size: int


@dataclass(frozen=True)
class SlurmConfig:
    partition: Optional[str]
    account: Optional[str]
    qos: Optional[str]
    time_min: int
    nodes: int
    gpus_per_node: int
    cpus_per_task: int
    mem_gb: float
    signal_delay_s: int
    max_num_timeout: int
    array_parallelism: int
    setup: Tuple[str, ...]
    container_image: Optional[str]
    container_binds: Tuple[str, ...]
    log_dir: Optional[str]
    additional_parameters: Mapping[str, Any]  # any other sbatch flag {key: value}


@dataclass(frozen=True)
class Config:
    """A whole validated run config; one attribute per top-level section."""

    experiment: ExperimentConfig
    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig
    eval: EvalConfig
    early_stop: EarlyStopConfig
    checkpoint: CheckpointConfig
    runtime: RuntimeConfig
    fast_mode: FastModeConfig
    slurm: SlurmConfig


SECTION_TYPES = {
    "experiment": ExperimentConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "early_stop": EarlyStopConfig,
    "checkpoint": CheckpointConfig,
    "runtime": RuntimeConfig,
    "fast_mode": FastModeConfig,
    "slurm": SlurmConfig,
}
