"""The light side of the tree (core, configs, CLIs, stage drivers, the DAG) imports where torch is not
importable, as in the orchestrator image."""

import ast
import json
import os
import subprocess
import sys

import pytest

from tests.fixtures import REPO_ROOT, processes

ROOT = REPO_ROOT

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
    return processes.run([sys.executable, "-c", code], cwd=ROOT, timeout=120)


def test_import_core_does_not_import_torch():
    out = _run("import sys, core; print('torch' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


HEAVY = ("torch", "diffusers", "transformers", "sam2", "torchvision")


def _module_level_heavy_imports(path: str) -> set[str]:
    """Heavy packages a file imports at module level (not inside functions or ``if TYPE_CHECKING``)."""
    found = set()
    for node in ast.parse(open(path, encoding="utf-8").read()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        found |= {n.split(".")[0] for n in names} & set(HEAVY)
    return found


def light_modules() -> list[str]:
    """Every module of the tree that does not itself import a heavy library at module level."""
    mods = []
    for pkg in ("core", "segmentation", "generation", "vla", "synthetic", "training", "orchestrator"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, pkg)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    if not _module_level_heavy_imports(path):
                        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                        mods.append(rel)
    return sorted(mods) + ["workflow_master"]


def test_light_modules_import_with_heavy_libraries_blocked():
    """A module that imports no heavy library itself must not pull one in through another module: the
    orchestrator image (no torch) imports the configs, CLIs, stage functions and the DAG."""
    mods = light_modules()
    entry = {"core.storage", "segmentation.stage", "generation.stage", "vla.stage", "orchestrator.cli",
             "orchestrator.dag", "orchestrator.plan", "training.lora_train", "training.dataset_generate",
             "generation.config", "workflow_master"}
    assert entry <= set(mods)
    code = BLOCK_HEAVY + (
        "import importlib, json\nfailed = {}\n"
        f"for m in {mods!r}:\n"
        "    try:\n        importlib.import_module(m)\n"
        "    except Exception as exc:\n        failed[m] = f'{type(exc).__name__}: {exc}'\n"
        "print('RESULT' + json.dumps(failed))")
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.split("RESULT", 1)[1]) == {}


def test_cli_help_works_with_torch_blocked():
    out = _run(BLOCK_HEAVY + "import sys\nfrom orchestrator.cli import main\nsys.argv=['lanepaint','--help']\n"
               "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "commands" in out.stdout


@pytest.mark.parametrize("command, flag", [("segment", "--max-frames"), ("edit", "--img-inpainting-lora-scale"),
                                           ("evaluate", "--video-data"), ("dataset", "generate"),
                                           ("dataset generate", "--start-index"),
                                           ("dataset filter", "--require-clear-road"),
                                           ("train-lora", "--resume-from-checkpoint"),
                                           ("run", "--segment-max-frames"), ("run", "--evaluate-num-traj-samples"), ("synth", "--av-dataset"), ("config show", "SECTION")])
def test_stage_help_works_with_torch_blocked(command, flag):
    out = _run(BLOCK_HEAVY + "import sys\nfrom orchestrator.cli import main\n"
               f"print('exit', main({command.split()!r} + ['--help']))")
    assert out.returncode == 0, out.stderr[-2000:]
    assert flag in out.stdout and "exit 0" in out.stdout
