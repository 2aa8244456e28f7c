"""scripts/build_and_run.sh and its per-stage wrappers: shellcheck-clean, stage dependencies checked
before anything runs, and the --dry-run plan (images built and tagged, the flyte or docker commands,
where outputs land, the next command) for STAGES=123, 12 and 3."""

import glob
import os
import shlex
import subprocess
import sys

import pytest

from generation.instructions import DEFAULT_SHORTHANDS
from tests.fixtures import REPO_ROOT, processes

ROOT = REPO_ROOT
SCRIPT = os.path.join(ROOT, "scripts", "build_and_run.sh")
STAMP = "20261121_101500"


def _run(tmp_path, *args, script=SCRIPT, **settings) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": sys.executable, "STAMP": STAMP,
           "RUN_ID": "r1", **settings}
    return processes.run(["bash", script, *args], env=env, timeout=60)


def _commands(out: str, program: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith(f"+ {program}")]


def _flyte(out: str) -> tuple[dict[str, str], list[str]]:
    """(LANEPAINT_*_IMAGE settings, the flyte command) of the dry run's `env ... flyte ...` line."""
    (cmd,) = _commands(out, "env ")
    images = dict(a.split("=", 1) for a in cmd[1:] if a.startswith("LANEPAINT_"))
    return images, cmd[1 + len(images):]


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_scripts_are_shellcheck_clean():
    shellcheck = os.path.join(os.path.dirname(sys.executable), "shellcheck")
    scripts = sorted(glob.glob(os.path.join(ROOT, "scripts", "*.sh")))
    assert len(scripts) == 4
    out = processes.run([shellcheck, "--severity=style", *scripts], timeout=60)
    assert out.returncode == 0, out.stdout
    assert all(os.access(s, os.X_OK) for s in scripts)


def test_plan_for_all_three_stages(tmp_path):
    out = _run(tmp_path, "--dry-run", STAGES="123", INPUTS="gs://b/in/a.mp4 gs://b/in/b.mp4", OUTPUT_ROOT="gs://b/out/",
               REGISTRY="reg.example/p", VP_STRENGTH="0.8", SAM2_MAX_FRAMES="100", ALPAMAYO_NUM_TRAJ_SAMPLES="6",
               PROMPT_IDS="2,5", FLYTE_CONFIG="/cfg.yaml", FLYTE_PROJECT="lanes", VP_API_KEY="hidden",
               HF_TOKEN="hidden")
    assert out.returncode == 0, out.stderr
    builds = _commands(out.stdout, "docker build")
    assert [c[c.index("-f") + 1] for c in builds] == ["Dockerfile", "segmentation/Dockerfile", "generation/Dockerfile",
                                                       "vla/Dockerfile"]
    for cmd, name in zip(builds, ("orchestrator", "segmentation", "generation", "vla"), strict=True):
        tags = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-t"]
        assert tags == [f"reg.example/p/lanepaint-{name}:r1_{STAMP}", f"reg.example/p/lanepaint-{name}:latest"]
    assert len(_commands(out.stdout, "docker push")) == 8
    images, flyte = _flyte(out.stdout)
    assert images["LANEPAINT_VLA_IMAGE"] == f"reg.example/p/lanepaint-vla:r1_{STAMP}" and len(images) == 4
    refs = [flyte[i + 1] for i, a in enumerate(flyte) if a == "--image"]      # Image.from_ref_name(<name>)
    assert refs == [f"{n}=reg.example/p/lanepaint-{n}:r1_{STAMP}" for n in ("orchestrator", "segmentation",
                                                                             "generation", "vla")]
    assert flyte[:5] == ["flyte", "--config", "/cfg.yaml", "run", "--project"]
    assert flyte[flyte.index("workflow_master.py") + 1] == "master_pipeline"
    assert _option(flyte, "--run_id") == "r1" and _option(flyte, "--output_root") == "gs://b/out"
    assert _option(flyte, "--inputs") == '["gs://b/in/a.mp4", "gs://b/in/b.mp4"]'
    forwarded = [flyte[i + 1] for i, a in enumerate(flyte) if a == "-e"]
    instructions = f"{DEFAULT_SHORTHANDS[1]}||{DEFAULT_SHORTHANDS[4]}"
    assert forwarded == ["ALPAMAYO_NUM_TRAJ_SAMPLES=6", "SAM2_MAX_FRAMES=100", f"VP_INSTRUCTIONS={instructions}",
                         "VP_STRENGTH=0.8"]
    assert "hidden" not in out.stdout                                  # secrets are never forwarded
    for where in ("gs://b/out/sam2/r1", "gs://b/out/preprocessed_data_vp/r1", "gs://b/out/vp/r1",
                  "gs://b/out/alpamayo/r1"):
        assert where in out.stdout
    assert "report: gs://b/out/reports/r1/report.html" in out.stdout


def test_without_a_run_id_the_stamp_is_not_repeated(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": sys.executable, "STAMP": STAMP,
           "STAGES": "3", "OUTPUT_ROOT": "gs://b/out"}
    out = processes.run(["bash", SCRIPT, "--dry-run"], env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"run id:        run_{STAMP} (master run id run_{STAMP})" in out.stdout
    assert f"lanepaint-vla:run_{STAMP}" in out.stdout and f"{STAMP}_{STAMP}" not in out.stdout


def test_plan_for_stages_1_and_2_builds_their_images_only(tmp_path):
    out = _run(tmp_path, "--dry-run", STAGES="12", INPUTS="chunks://b/clips?start=0&end=3", OUTPUT_ROOT="gs://b/out")
    assert out.returncode == 0, out.stderr
    built = [c[c.index("-f") + 1] for c in _commands(out.stdout, "docker build")]
    assert built == ["Dockerfile", "segmentation/Dockerfile", "generation/Dockerfile"]
    images, flyte = _flyte(out.stdout)
    assert images["LANEPAINT_VLA_IMAGE"] == "lanepaint-vla:latest"             # not built: not this run's tag
    assert images["LANEPAINT_GENERATION_IMAGE"] == f"lanepaint-generation:r1_{STAMP}"
    assert flyte[flyte.index("workflow_master.py") + 1] == "sam2_vp" and "--video_data" not in flyte
    assert _option(flyte, "--inputs") == '["chunks://b/clips?start=0&end=3"]'
    assert "next: STAGES=3 RUN_ID=r1 VIDEO_DATA=gs://b/out/vp/r1 OUTPUT_ROOT=gs://b/out" in out.stdout


@pytest.mark.parametrize("script", ["build_and_run.sh", "run_alpamayo.sh"])
def test_plan_for_stage_3_alone_reads_the_edited_clips(tmp_path, script):
    settings = {"OUTPUT_ROOT": "gs://b/out", "SKIP_BUILD": "1", "IMAGE_TAG": "r0_20261120_090000"}
    if script == "build_and_run.sh":
        settings["STAGES"] = "3"
    out = _run(tmp_path, "--dry-run", script=os.path.join(ROOT, "scripts", script), **settings)
    assert out.returncode == 0, out.stderr
    assert not _commands(out.stdout, "docker")                              # SKIP_BUILD=1
    images, flyte = _flyte(out.stdout)
    assert set(images.values()) == {f"lanepaint-{n}:r0_20261120_090000" for n in
                                    ("orchestrator", "segmentation", "generation", "vla")}
    assert flyte[flyte.index("workflow_master.py") + 1] == "alpamayo_only"
    assert _option(flyte, "--video_data") == "gs://b/out/vp/r1" and "--inputs" not in flyte
    assert "stage 3 reads: gs://b/out/vp/r1" in out.stdout


def test_local_mode_runs_each_stage_in_its_image_with_docker_compose(tmp_path):
    out = _run(tmp_path, "--dry-run", STAGES="123", LOCAL="1", INPUTS="/data/clips/a.mp4", SAM2_WINDOW="80")
    assert out.returncode == 0, out.stderr
    assert "Dockerfile" not in [c[c.index("-f") + 1] for c in _commands(out.stdout, "docker build")]
    runs = _commands(out.stdout, "env LANEPAINT_IMAGE_TAG")
    assert [c[c.index("--rm") + 3] for c in runs] == ["segmentation", "generation", "vla"]
    assert all(c[0:2] == ["env", f"LANEPAINT_IMAGE_TAG=r1_{STAMP}"] and "SAM2_WINDOW=80" in c for c in runs)
    assert _option(runs[1], "--data-run-id") == "r1" and _option(runs[2], "--video-data") == "/data/outputs/vp/r1"
    assert _option(runs[0], "--input") == "/data/clips/a.mp4"


@pytest.mark.parametrize("settings, message", [
    ({"STAGES": "13", "OUTPUT_ROOT": "gs://b/o"}, "STAGES=13: use 1, 2, 3, 12, 23 or 123"),
    ({"STAGES": "23", "OUTPUT_ROOT": "gs://b/o"}, "set DATA_RUN_ID (the segmentation run to edit)"),
    ({"STAGES": "12", "OUTPUT_ROOT": "gs://b/o"}, "runs stage 1: set INPUTS"),
    ({"STAGES": "3", "OUTPUT_ROOT": "/local/out"}, "a cluster run needs gs://bucket/prefix"),
    ({"STAGES": "3"}, "OUTPUT_ROOT is required on a cluster"),
    ({"STAGES": "3", "OUTPUT_ROOT": "gs://b/o", "RUN_ID": "../x"}, "RUN_ID='../x'"),
    ({"STAGES": "2", "OUTPUT_ROOT": "gs://b/o", "DATA_RUN_ID": "s1", "PROMPT_IDS": "1,9"}, "ids are 1..5"),
])
def test_bad_settings_stop_before_anything_runs(tmp_path, settings, message):
    out = _run(tmp_path, **settings)          # not a dry run: it must stop before calling docker or flyte
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "+ " not in out.stdout
