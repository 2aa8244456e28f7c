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


IMAGE_NAMES = ("orchestrator", "segmentation", "generation", "vla")   # Image.from_ref_name(...) of the DAG


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
    cache_version: str = _deploy("", "LANEPAINT_CACHE_VERSION",
                                 "Flyte cache version of the stage tasks (empty: lanepaint-<version>-<image tag>, "
                                 "or -<git revision> when the tag is latest: a code change is a cache miss)")
    train_gpus: int = _deploy(1, "LANEPAINT_TRAIN_GPUS", "GPUs of the train_lora task (more than one: accelerate "
                              "launch, one process per GPU)")
    hf_secret: str = _deploy("hf-token", "LANEPAINT_HF_SECRET",
                             "Flyte secret holding a Hugging Face read token, given to the stage pods as HF_TOKEN "
                             "(flyte create secret hf-token; empty: none)")

    def validate(self) -> None:
        import flyte

        if self.retries < 0:
            raise UsageError(f"LANEPAINT_RETRIES must be >= 0, got {self.retries}")
        if self.train_gpus < 1:
            raise UsageError(f"LANEPAINT_TRAIN_GPUS must be >= 1, got {self.train_gpus}")
        if not self.image_tag:
            raise UsageError("LANEPAINT_IMAGE_TAG must not be empty")
        try:
            flyte.Resources(gpu=self.gpu_request)
        except (TypeError, ValueError):
            raise UsageError(f"LANEPAINT_GPU={self.gpu!r}: not a Flyte GPU request; use <type>:<count>, e.g. "
                             "A100_80G:1, H100:1, L4:1, or none") from None

    @property
    def gpu_request(self) -> str | None:
        return None if self.gpu.strip().lower() in ("", "none", "0") else self.gpu.strip()

    @property
    def effective_cache_version(self) -> str:
        """The cache version the tasks carry: the configured one, else the package version with the image tag
        (or the git revision when the tag is the moving ``latest``)."""
        if self.cache_version:
            return self.cache_version
        if self.image_tag != "latest":
            return f"lanepaint-{__version__}-{self.image_tag}"
        from core.manifest import git_revision

        return f"lanepaint-{__version__}-{(git_revision() or 'unknown')[:12]}"

    def image_refs(self) -> dict[str, str]:
        """Image name -> URI for every image of the DAG (``flyte run --image name=uri`` / ``flyte.init(images=)``)."""
        return {name: self.image(name) for name in IMAGE_NAMES}

    def pod_env(self) -> dict[str, str]:
        """Every deployment setting as the environment variable it is read from, resolved here (the submitter):
        set on every task environment, so a pod that rebuilds the tasks sees what the submitter chose."""
        from core.config import env_of, settings_fields

        out = {}
        for field in settings_fields(type(self)):
            name = env_of(type(self), field)
            value = self.effective_cache_version if field.name == "cache_version" else getattr(self, field.name)
            if name:
                out[name] = str(value)
        return out

    def image(self, name: str) -> str:
        """``<registry>/lanepaint-<name>:<tag>`` unless the full name is configured."""
        explicit = getattr(self, f"{name}_image")
        if explicit:
            return explicit
        base = f"lanepaint-{name}:{self.image_tag}"
        return f"{self.registry.rstrip('/')}/{base}" if self.registry else base
