"""Images and resources of the DAG's Flyte environments (section ``deploy``; environment only, read when
the DAG module is imported). No flyte at import: the GPU request is checked with flyte lazily."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core import __version__
from core.config import Settings, setting
from core.errors import UsageError


def _deploy(default: object, env: str, help: str) -> object:
    return setting(default, help=help, env=env, flag=None, pipeline=False)


@dataclass(frozen=True)
class DeploySettings(Settings):
    SECTION: ClassVar[str] = "deploy"

    registry: str = _deploy("", "LANEPAINT_REGISTRY", "registry prefix of the stage images, e.g. "
                            "europe-docker.pkg.dev/p/lanepaint")
    image_tag: str = _deploy("latest", "LANEPAINT_IMAGE_TAG", "tag of the stage images "
                             "(build_and_run.sh: <RUN_ID>_<YYYYMMDD_HHMMSS>)")
    orchestrator_image: str = _deploy("", "LANEPAINT_ORCHESTRATOR_IMAGE", "full name of the driver image "
                                      "(overrides registry + tag)")
    segmentation_image: str = _deploy("", "LANEPAINT_SEGMENTATION_IMAGE", "full name of the stage-1 image")
    generation_image: str = _deploy("", "LANEPAINT_GENERATION_IMAGE", "full name of the stage-2 image")
    vla_image: str = _deploy("", "LANEPAINT_VLA_IMAGE", "full name of the stage-3 image")
    gpu: str = _deploy("A100_80G:1", "LANEPAINT_GPU", "GPU request of each stage task, e.g. A100_80G:1, H100:1 "
                       "(none: CPU only)")
    cpu: str = _deploy("", "LANEPAINT_STAGE_CPU", "CPU request of each stage task (default: per stage)")
    memory: str = _deploy("", "LANEPAINT_STAGE_MEMORY", "memory request of each stage task, e.g. 96Gi "
                          "(default: per stage)")
    retries: int = _deploy(2, "LANEPAINT_RETRIES", "retries of a stage task after a transient error (OOM, "
                           "preemption, storage)")
    cache_version: str = _deploy(f"lanepaint-{__version__}", "LANEPAINT_CACHE_VERSION",
                                 "Flyte cache version of the stage tasks (bump to recompute)")

    def validate(self) -> None:
        import flyte

        if self.retries < 0:
            raise UsageError(f"LANEPAINT_RETRIES must be >= 0, got {self.retries}")
        if not self.image_tag or not self.cache_version:
            raise UsageError("LANEPAINT_IMAGE_TAG and LANEPAINT_CACHE_VERSION must not be empty")
        try:
            flyte.Resources(gpu=self.gpu_request)
        except (TypeError, ValueError):
            raise UsageError(f"LANEPAINT_GPU={self.gpu!r}: not a Flyte GPU request; use <type>:<count>, e.g. "
                             "A100_80G:1, H100:1, L4:1, or none") from None

    @property
    def gpu_request(self) -> str | None:
        return None if self.gpu.strip().lower() in ("", "none", "0") else self.gpu.strip()

    def image(self, name: str) -> str:
        """``<registry>/lanepaint-<name>:<tag>`` unless the full name is configured."""
        explicit = getattr(self, f"{name}_image")
        if explicit:
            return explicit
        base = f"lanepaint-{name}:{self.image_tag}"
        return f"{self.registry.rstrip('/')}/{base}" if self.registry else base
