"""Every config class of the project, for ``lanepaint env``, ``lanepaint config show`` and the check of a
config file's sections. Config modules import no heavy library, so this list is cheap to build."""

from __future__ import annotations


def file_sections() -> list[type]:
    """The configs a ``--config`` file may hold a section for (in the order ``config show`` prints them)."""
    from core.logs import LogSettings
    from generation.config import EditConfig
    from orchestrator.demo import DemoConfig
    from orchestrator.fetch_models import FetchModelsConfig
    from orchestrator.plan import PipelineRequest
    from orchestrator.report_cli import ReportConfig
    from segmentation.config import SegmentConfig
    from synthetic.cli import SynthConfig
    from training.dataset_config import DatasetFilterConfig, DatasetGenerateConfig
    from training.lora_config import LoraTrainConfig
    from vla.config import EvaluateConfig, FetchDatasetConfig, RenderConfig

    return [PipelineRequest, SegmentConfig, EditConfig, EvaluateConfig, RenderConfig, FetchDatasetConfig,
            FetchModelsConfig, ReportConfig, DatasetGenerateConfig,
            DatasetFilterConfig, LoraTrainConfig, SynthConfig, DemoConfig, LogSettings]


def env_sections() -> list[type]:
    """Every config that reads environment variables: the file sections, storage and deployment."""
    from core.storage import StorageSettings
    from orchestrator.deploy import DeploySettings

    return [*file_sections(), StorageSettings, DeploySettings]
