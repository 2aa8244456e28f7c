"""The side tools as Flyte tasks, each on an image that has what it needs (``workflow_master.py`` exposes them):

- ``dataset_generate``: SAM2 road masks and Qwen2.5-VL lane captions -> a lane dataset; the generation image
  (which carries SAM2 too), one GPU;
- ``dataset_filter``: the rows of a lane dataset matching lane attributes -> a new dataset; the orchestrator
  image, CPU;
- ``train_lora``: a FluxFill LoRA on a lane dataset; the generation image, ``LANEPAINT_TRAIN_GPUS`` GPUs of
  the ``LANEPAINT_GPU`` type (more than one: ``accelerate launch`` with one process per GPU).

Each task's parameters are its command's settings (``lanepaint dataset generate --help`` and so on; tuples
travel as lists), resolved on the submitting machine like the pipeline's; it returns the command's summary.
Deploy them with ``flyte deploy workflow_master.py tools``; run one with
``flyte run workflow_master.py dataset_filter --input gs://... --output gs://... --count double``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
from dataclasses import dataclass
from typing import Any

import flyte

from core.config import build_config, config_values, settings_fields, type_hints
from core.errors import LanepaintError, UsageError
from core.stage_spec import load
from orchestrator.flyte_tasks import POD_ENV, RETRIES, SECRETS, SETTINGS, _param_type


@dataclass(frozen=True)
class ToolSpec:
    name: str
    config: str            # "module:Class"
    run: str               # "module:function", called with the config
    image: str             # Image.from_ref_name(...)
    gpus: int              # 0: CPU only
    doc: str


TOOLS = (
    ToolSpec("dataset_generate", "training.dataset_config:DatasetGenerateConfig",
             "training.dataset_generate:generate_dataset", "generation", 1,
             "A lane dataset from driving videos: SAM2 road masks and Qwen2.5-VL lane captions (train.csv)."),
    ToolSpec("dataset_filter", "training.dataset_config:DatasetFilterConfig", "training.dataset_filter:filter_dataset",
             "orchestrator", 0, "A new lane dataset with the rows of `input` matching lane attributes."),
    ToolSpec("train_lora", "training.lora_config:LoraTrainConfig", "training.lora_train:run_train_lora", "generation",
             max(1, SETTINGS.train_gpus), "Fine-tune a FluxFill LoRA on a lane dataset (stage 2 loads it)."),
)


def _resources(spec: ToolSpec) -> flyte.Resources:
    if spec.gpus and SETTINGS.gpu_request:
        kind = SETTINGS.gpu_request.split(":", 1)[0]
        return flyte.Resources(cpu=str(8 * spec.gpus), memory=f"{64 * spec.gpus}Gi", gpu=f"{kind}:{spec.gpus}")
    return flyte.Resources(cpu="2", memory="8Gi")


def tool_environment(spec: ToolSpec) -> flyte.TaskEnvironment:
    return flyte.TaskEnvironment(
        name=f"lanepaint_{spec.name}", image=flyte.Image.from_ref_name(spec.image), env_vars=POD_ENV,
        secrets=SECRETS if spec.gpus else [], resources=_resources(spec), description=f"lanepaint {spec.name}")


def summary_of(result: Any) -> dict[str, str]:
    """A tool's result as text the console shows."""
    if hasattr(result, "lines"):
        return {"summary": "\n".join(result.lines())}
    if isinstance(result, dict):
        return {str(k): str(v) for k, v in result.items()}
    return {"summary": str(result)}


def run_tool(name: str, values: dict[str, Any]) -> dict[str, str]:
    """Build the tool's config from resolved values and run it here, or under ``accelerate launch`` with one
    process per GPU for a multi-GPU ``train_lora``."""
    spec = next(t for t in TOOLS if t.name == name)
    cfg = build_config(load(spec.config), values)
    if spec.name == "train_lora" and spec.gpus > 1:
        payload = json.dumps(config_values(cfg))
        command = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(spec.gpus), "-m",
                   "orchestrator.tool_worker", spec.config, spec.run, payload]
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            raise LanepaintError(f"train_lora under accelerate on {spec.gpus} GPUs exited with {done.returncode}")
        return {"summary": f"trained on {spec.gpus} GPUs; outputs under {cfg.output}"}
    return summary_of(load(spec.run)(cfg))


def _params(spec: ToolSpec) -> list[tuple[str, Any]]:
    cls = load(spec.config)
    hints = type_hints(cls)
    out = []
    for field in settings_fields(cls):
        meta = field.metadata["setting"]
        if meta.secret:
            continue
        out.append((field.name, _param_type(hints[field.name])))
    return out


def tool_task(env: flyte.TaskEnvironment, spec: ToolSpec, module: str) -> Any:
    """The tool's task, with one optional parameter per setting of its config."""
    params = _params(spec)

    async def task(**kwargs: Any) -> dict[str, str]:
        values = {n: kwargs[n] for n, _ in params if kwargs.get(n) is not None}
        try:
            return await asyncio.to_thread(run_tool, spec.name, values)
        except UsageError as exc:
            raise flyte.errors.NonRecoverableError(str(exc)) from None

    task.__name__ = task.__qualname__ = spec.name
    task.__module__ = module
    task.__doc__ = spec.doc
    task.__annotations__ = {n: t for n, t in params} | {"return": dict[str, str]}
    task.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=t) for n, t in params],
        return_annotation=dict[str, str])
    return env.task(retries=RETRIES)(task)

