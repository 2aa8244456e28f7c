"""The Flyte DAG without a cluster: a dry-run deploy serialises every task (image, resources, GPU,
retries, cache version), and the orchestrator side imports where torch and the stage extras are absent.

Each check runs in a fresh process (flyte.init is global state) with HOME and TMPDIR in tmp_path, so
the SDK's ~/.flyte and /tmp/flyte-tmp-* files stay out of the real ones.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures import REPO_ROOT, processes

ROOT = REPO_ROOT

# What the orchestrator image lacks: torch and every stage extra. A spec without a loader reads as
# "not installed" to flyte's lazy imports (find_spec) and fails a real import with ImportError.
BLOCK_ORCHESTRATOR = """
import importlib.machinery, sys
ABSENT = {'torch', 'diffusers', 'transformers', 'sam2', 'torchvision', 'pandas', 'pyarrow', 'matplotlib',
          'physical_ai_av', 'hydra', 'iopath', 'accelerate', 'peft', 'torchmetrics'}
class _Absent:
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, None) if name.split('.')[0] in ABSENT else None
sys.meta_path.insert(0, _Absent())
"""

DEPLOY = """
import json, sys
import flyte
flyte.init(endpoint="dns:///localhost:8090", insecure=True, project="lanepaint", domain="development",
           image_builder="local")
import workflow_master
out = {}
for name, env in [("master", workflow_master.driver), ("segment", workflow_master.segment_driver),
                  ("edit", workflow_master.edit_driver), ("evaluate", workflow_master.evaluate_driver)]:
    deployment = flyte.deploy(env, dry_run=True, version="v-test")[0]
    tasks = {}
    for env_name, deployed in deployment.envs.items():
        for entity in deployed.deployed_entities:
            t = entity.deployed_task.task_template
            requests = {r.DESCRIPTOR.fields_by_name["name"].enum_type.values_by_number[r.name].name: r.value
                        for r in t.container.resources.requests}
            tasks[t.id.name] = {
                "env": env_name, "image": t.container.image,
                "gpu_device": t.extended_resources.gpu_accelerator.device,
                "requests": {str(k): v for k, v in requests.items()},
                "retries": t.metadata.retries.retries, "cache": t.metadata.discoverable,
                "cache_version": t.metadata.discovery_version, "version": t.id.version,
                "inputs": sorted(v.key for v in t.interface.inputs.variables),
            }
    out[name] = tasks
print("RESULT" + json.dumps(out))
print("torch imported:", "torch" in sys.modules)
"""

STAGE_TASKS = {"lanepaint_segmentation.sam2_shard": "segmentation", "lanepaint_generation.vp_shard": "generation",
               "lanepaint_vla.alpamayo_shard": "vla"}


def _python(code: str, tmp_path, env_extra=None, timeout=120) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANEPAINT_", "FLYTE"))}
    env |= {"HOME": str(home), "TMPDIR": str(home), **(env_extra or {})}
    return processes.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          timeout=timeout)


def _deploy(tmp_path, env_extra=None) -> dict:
    out = _python(BLOCK_ORCHESTRATOR + DEPLOY, tmp_path, env_extra)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch imported: False" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.slow
def test_dry_run_deploy_gives_each_stage_its_image_gpu_and_retries(tmp_path):
    result = _deploy(tmp_path)
    master = result["master"]
    assert set(STAGE_TASKS) <= set(master)
    for task, image in STAGE_TASKS.items():
        spec = master[task]
        assert spec["image"] == f"lanepaint-{image}:latest"
        assert spec["gpu_device"] == "nvidia-a100-80gb" and spec["requests"]["GPU"] == "1"
        assert spec["retries"] == 2 and spec["cache"] and spec["cache_version"] == "lanepaint-0.1.0"
        assert spec["inputs"] == ["config_json"] and spec["version"] == "v-test"
        assert float(spec["requests"]["CPU"]) >= 8 and spec["requests"]["MEMORY"].endswith("Gi")
        report = task.replace("_shard", "_finalize").replace(".", "_report.", 1)
        assert master[report]["image"] == spec["image"]                   # the stage's code and extras
        assert master[report]["gpu_device"] == "" and "GPU" not in master[report]["requests"]
    assert len({master[t]["image"] for t in STAGE_TASKS}) == 3
    entry_points = {"master_pipeline", "sam2_only", "sam2_vp", "vp_only", "vp_alpamayo", "alpamayo_only"}
    assert {f"lanepaint_driver.{e}" for e in entry_points} <= set(master)
    for e in entry_points:
        driver = master[f"lanepaint_driver.{e}"]
        assert driver["image"] == "lanepaint-orchestrator:latest" and driver["gpu_device"] == ""
    inputs = {e: set(master[f"lanepaint_driver.{e}"]["inputs"]) for e in entry_points}
    assert {"stages", "inputs", "data_run_id", "video_data", "segment_max_frames", "edit_strength",
            "evaluate_num_traj_samples", "edit_qwen_model", "edit_caption_refine_iters"} <= inputs["master_pipeline"]
    assert "edit_strength" not in inputs["sam2_only"] and "inputs" not in inputs["vp_only"]
    assert "data_run_id" in inputs["vp_alpamayo"] and "data_run_id" not in inputs["sam2_vp"]
    assert inputs["alpamayo_only"] >= {"video_data", "evaluate_model_path", "evaluate_video_name"}
    # each stage's own workflow deploys its driver and that stage's tasks only
    for name, task in (("segment", "lanepaint_segmentation.sam2_shard"), ("edit", "lanepaint_generation.vp_shard"),
                       ("evaluate", "lanepaint_vla.alpamayo_shard")):
        shards = [t for t in result[name] if t.endswith("_shard")]
        assert shards == [task] and result[name][task] == master[task]


@pytest.mark.slow
def test_images_gpu_and_retries_come_from_the_environment(tmp_path):
    result = _deploy(tmp_path, {"LANEPAINT_REGISTRY": "europe-docker.pkg.dev/p/lanepaint",
                                "LANEPAINT_IMAGE_TAG": "r7_20261121_101500", "LANEPAINT_GPU": "H100:1",
                                "LANEPAINT_RETRIES": "4", "LANEPAINT_VLA_IMAGE": "my/vla:dev",
                                "LANEPAINT_CACHE_VERSION": "v9"})["master"]
    seg = result["lanepaint_segmentation.sam2_shard"]
    assert seg["image"] == "europe-docker.pkg.dev/p/lanepaint/lanepaint-segmentation:r7_20261121_101500"
    assert seg["gpu_device"] == "nvidia-tesla-h100" and seg["retries"] == 4 and seg["cache_version"] == "v9"
    assert result["lanepaint_vla.alpamayo_shard"]["image"] == "my/vla:dev"
    assert result["lanepaint_driver.master_pipeline"]["image"].endswith("/lanepaint-orchestrator:r7_20261121_101500")


def test_bad_gpu_setting_is_a_one_line_usage_error(tmp_path):
    out = _python("import orchestrator.flyte_tasks", tmp_path, {"LANEPAINT_GPU": "A100 80 GB:1"})
    assert out.returncode != 0
    assert "LANEPAINT_GPU='A100 80 GB:1': not a Flyte GPU request" in out.stdout + out.stderr


def test_orchestrator_side_imports_without_torch_or_stage_extras(tmp_path):
    code = BLOCK_ORCHESTRATOR + (
        "import sys, workflow_master\n"
        "import orchestrator.run_cli, orchestrator.shards, core.edited_clips, vla.config, generation.config, core.vp_data\n"
        "print('heavy:', sorted(m for m in ('torch', 'pandas', 'matplotlib', 'diffusers') if m in sys.modules))")
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "heavy: []" in out.stdout
