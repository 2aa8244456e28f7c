"""core/ (and later workflow_master.py) must import in a process where torch is not importable."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BLOCK_HEAVY = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'diffusers', 'transformers', 'sam2', 'torchvision'}:
            raise ImportError('blocked heavy import: ' + name)
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_import_core_does_not_import_torch():
    out = _run("import sys, core; print('torch' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


CORE_MODULES = sorted(
    f"core.{name[:-3]}" for name in os.listdir(os.path.join(ROOT, "core"))
    if name.endswith(".py") and name != "__init__.py"
)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_every_core_module_imports_with_torch_blocked(module):
    out = _run(BLOCK_HEAVY + f"import {module}\nprint('ok')")
    assert out.returncode == 0, out.stderr[-2000:]


def test_cli_help_works_with_torch_blocked():
    out = _run(BLOCK_HEAVY + "import sys\nfrom core.cli import main\nsys.argv=['lanepaint','--help']\n"
               "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "commands" in out.stdout


# Entry modules of the stages: configs, CLIs and stage functions import their models lazily, so
# the orchestrator image (no torch) can import them.
STAGE_LIGHT_MODULES = [
    "segmentation", "segmentation.config", "segmentation.cli", "segmentation.prompts",
    "segmentation.cleanup", "segmentation.outputs", "segmentation.stage",
    "vla", "vla.config", "vla.cli", "vla.render_cli", "vla.stage", "vla.render",
    "generation.judge_parse", "generation.judge_prompts", "generation.metrics_report",
    "generation.config", "generation.cli", "generation.instructions", "generation.stage",
    "segmentation.lane_dataset", "segmentation.lane_caption", "segmentation.dataset_config",
    "segmentation.dataset_sources", "segmentation.dataset_cli", "segmentation.dataset_filter",
    "segmentation.dataset_worker", "segmentation.dataset_generate",
    "generation.lora_config", "generation.lora_checkpoints", "generation.lora_train", "generation.train_cli",
    "workflow_master", "segmentation.workflow", "generation.workflow", "vla.workflow",
]


@pytest.mark.parametrize("module", STAGE_LIGHT_MODULES)
def test_stage_entry_modules_import_with_torch_blocked(module):
    out = _run(BLOCK_HEAVY + f"import {module}\nprint('ok')")
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("command, flag", [("segment", "--max-frames"), ("edit", "--img-inpainting-lora-scale"),
                                           ("evaluate", "--video-data"), ("dataset", "generate"),
                                           ("dataset generate", "--start-index"),
                                           ("dataset filter", "--require-clear-road"),
                                           ("train-lora", "--resume-from-checkpoint"),
                                           ("run", "--sam2-max-frames")])
def test_stage_help_works_with_torch_blocked(command, flag):
    out = _run(BLOCK_HEAVY + "import sys\nfrom core.cli import main\n"
               f"try:\n    main({command.split()!r} + ['--help'])\nexcept SystemExit as e:\n    print('exit', e.code)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert flag in out.stdout and "exit 0" in out.stdout
