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
ABSENT = {'torch', 'diffusers', 'transformers', 'sam2', 'torchvision', 'pandas', 'matplotlib',
          'physical_ai_av', 'hydra', 'iopath', 'accelerate', 'peft', 'torchmetrics'}
class _Absent:
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, None) if name.split('.')[0] in ABSENT else None
sys.meta_path.insert(0, _Absent())
"""

DEPLOY = """
import json, sys
import flyte
from core.config import build_config
from orchestrator.deploy import DeploySettings
# what `flyte run/deploy --image <name>=<uri> ...` gives the SDK (build_and_run.sh passes lanepaint images)
flyte.init(endpoint="dns:///localhost:8090", insecure=True, project="lanepaint", domain="development",
           image_builder="local", images=build_config(DeploySettings).image_refs())
import workflow_master
out = {}
for name, env in [("master", workflow_master.driver), ("segment", workflow_master.segment_driver),
                  ("edit", workflow_master.edit_driver), ("evaluate", workflow_master.evaluate_driver),
                  ("tools", workflow_master.tools)]:
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
                "env_vars": {e.key: e.value for e in t.container.env},
                "secrets": [(x.key, x.env_var) for x in t.security_context.secrets],
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
        assert spec["retries"] == 2 and spec["cache"] and spec["cache_version"].startswith("lanepaint-0.1.0-")
        assert spec["secrets"] == [["hf-token", "HF_TOKEN"]] and spec["env_vars"]["LANEPAINT_GPU"] == "A100_80G:1"
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
        assert driver["secrets"] == [] and "HF_TOKEN" not in driver["env_vars"]
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


SUBMIT_IMAGE_CACHE = """
from flyte._deploy import build_images
from flyte._internal.image_cache import ImageCache
lookup = {**build_images(workflow_master.driver).image_lookup, **build_images(workflow_master.tools).image_lookup}
print("CACHE" + ImageCache(image_lookup=lookup).to_transport)
"""

# The driver pod: a fresh interpreter with only the driver task's env vars (what Flyte sets on its pod) and
# the image cache `flyte run` shipped; it rebuilds each child task's spec as the remote controller does.
DRIVER_POD = """
import json, os, sys
from flyte._internal.image_cache import ImageCache
from flyte._internal.runtime.task_serde import translate_task_to_wire
from flyte.models import SerializationContext
import workflow_master
from orchestrator import flyte_tasks
ctx = SerializationContext(project="lanepaint", domain="development", version="v-test", root_dir=os.getcwd(),
                           image_cache=ImageCache.from_transport(os.environ["TEST_IMAGE_CACHE"]))
from orchestrator import dag
out = {}
for pair in [*flyte_tasks.TASKS.values(), (dag.dataset_generate, dag.dataset_filter, dag.train_lora)]:
    for task in pair:
        t = translate_task_to_wire(task, ctx).task_template
        requests = {r.DESCRIPTOR.fields_by_name["name"].enum_type.values_by_number[r.name].name: r.value
                    for r in t.container.resources.requests}
        out[t.id.name] = {"image": t.container.image, "gpu_device": t.extended_resources.gpu_accelerator.device,
                          "requests": {str(k): v for k, v in requests.items()}, "retries": t.metadata.retries.retries,
                          "cache_version": t.metadata.discovery_version,
                          "env_vars": {e.key: e.value for e in t.container.env},
                          "secrets": [[x.key, x.env_var] for x in t.security_context.secrets]}
print("RESULT" + json.dumps(out))
"""

SUBMITTER = {"LANEPAINT_REGISTRY": "reg.example/lanepaint", "LANEPAINT_IMAGE_TAG": "r1_20261203_101500",
             "LANEPAINT_GPU": "H100:1", "LANEPAINT_RETRIES": "3", "LANEPAINT_STAGE_MEMORY": "200Gi",
             "LANEPAINT_HF_SECRET": "team-hf-token", "LANEPAINT_GENERATION_IMAGE": "reg.example/gen:custom",
             "LANEPAINT_TRAIN_GPUS": "2"}
COMPARED = ("image", "gpu_device", "requests", "retries", "cache_version", "env_vars", "secrets")


def _ours(spec: dict) -> dict:
    return {k: ({n: v for n, v in spec[k].items() if not n.startswith("_F_")} if k == "env_vars" else spec[k])
            for k in COMPARED}


def _driver_pod(tmp_path, cache: str, pod_env: dict) -> dict:
    out = _python(DRIVER_POD, tmp_path, {**pod_env, "TEST_IMAGE_CACHE": cache})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT"):])


@pytest.mark.slow
def test_a_driver_pod_rebuilds_every_child_task_as_the_submitter_chose(tmp_path):
    """Flyte 2's driver pod serialises the child tasks again in a fresh interpreter that never saw the
    submitter's shell: images must come from the shipped image cache and every other setting from the
    driver's env vars, or the shards run on the wrong image and GPU."""
    out = _python(BLOCK_ORCHESTRATOR + DEPLOY + SUBMIT_IMAGE_CACHE, tmp_path, SUBMITTER, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    submitted = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT"):])
    master = submitted["master"]
    cache = next(x for x in out.stdout.splitlines() if x.startswith("CACHE"))[len("CACHE"):]
    driver = master["lanepaint_driver.master_pipeline"]
    assert driver["image"] == "reg.example/lanepaint/lanepaint-orchestrator:r1_20261203_101500"
    assert driver["env_vars"]["LANEPAINT_GPU"] == "H100:1" and "TEST" not in "".join(driver["env_vars"])
    rebuilt = _driver_pod(tmp_path, cache, driver["env_vars"])
    tools = submitted["tools"]
    assert set(rebuilt) == {name for name in master if not name.startswith("lanepaint_driver.")} | {
        name for name in tools if not name.startswith("lanepaint_tools.")}
    for name, spec in rebuilt.items():      # (flyte's own _F_* variables differ between the two paths)
        assert _ours(spec) == _ours({**master, **tools}[name]), name
    generate, lora = rebuilt["lanepaint_dataset_generate.dataset_generate"], rebuilt["lanepaint_train_lora.train_lora"]
    assert generate["image"] == "reg.example/gen:custom" and generate["gpu_device"] == "nvidia-tesla-h100"
    assert lora["requests"]["GPU"] == "2" and lora["secrets"] == [["team-hf-token", "HF_TOKEN"]]
    flt = rebuilt["lanepaint_dataset_filter.dataset_filter"]
    assert flt["image"].endswith("/lanepaint-orchestrator:r1_20261203_101500") and flt["gpu_device"] == ""
    seg = rebuilt["lanepaint_segmentation.sam2_shard"]
    assert seg["image"] == "reg.example/lanepaint/lanepaint-segmentation:r1_20261203_101500"
    assert seg["gpu_device"] == "nvidia-tesla-h100" and seg["retries"] == 3 and seg["requests"]["MEMORY"] == "200Gi"
    assert seg["cache_version"] == "lanepaint-0.1.0-r1_20261203_101500"
    assert seg["secrets"] == [["team-hf-token", "HF_TOKEN"]]
    assert rebuilt["lanepaint_generation.vp_shard"]["image"] == "reg.example/gen:custom"
    # the same pod without the driver's env vars (what an import-time read of the shell gave before):
    # the images still come from the cache, but the GPU, retries and memory fall back to the defaults
    bare = _driver_pod(tmp_path, cache, {})["lanepaint_segmentation.sam2_shard"]
    assert bare["image"] == seg["image"] and bare["gpu_device"] == "nvidia-a100-80gb" and bare["retries"] == 2


def test_no_token_value_reaches_a_task_spec_or_its_env(tmp_path):
    """HF_TOKEN in the submitter's shell is a secret's name on the tasks, never a value in their spec."""
    out = _python(BLOCK_ORCHESTRATOR + DEPLOY, tmp_path, {"HF_TOKEN": "hf_SECRETVALUE123"}, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "hf_SECRETVALUE123" not in out.stdout
