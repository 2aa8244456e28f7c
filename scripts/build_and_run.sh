#!/usr/bin/env bash
# Build the images a lanepaint run needs, then run the pipeline on a Flyte cluster (default) or on
# this machine's GPU with docker compose (LOCAL=1).
#
# Usage: [VAR=value ...] scripts/build_and_run.sh [--dry-run] [--help]
#   --dry-run   validate, print the plan and the docker/flyte commands, run nothing
#
# Settings (environment variables):
#   RUN_ID           run id of every stage run (default run_YYYYMMDD_HHMMSS)
#   STAGES           1 SAM2, 2 VideoPainter, 3 Alpamayo-R1; one of 1 2 3 12 23 123 (default 123)
#   INPUTS           stage-1 videos: space-separated URIs (gs://..., "chunks://bucket/prefix?start=0&end=3")
#   DATA_RUN_ID      stage 2 without stage 1: the segmentation run to edit
#   VIDEO_DATA       stage 3 without stage 2: stage 2's output (default OUTPUT_ROOT/vp/RUN_ID)
#   OUTPUT_ROOT      gs://bucket/prefix on a cluster (every stage node reads and writes there);
#                    default /data/outputs with LOCAL=1 (docker-compose mounts LANEPAINT_DATA_DIR there)
#   PROFILE          full (default) or tiny
#   PROMPT_IDS       default instructions to run, e.g. 1,4 (generation/instructions.py DEFAULT_SHORTHANDS,
#                    1-based); an explicit VP_INSTRUCTIONS wins
#   CONCURRENCY      shards of a stage running at once (default 4); VIDEOS_PER_SHARD (default 0: CONCURRENCY shards)
#   SKIP_BUILD=1     do not build; use the images tagged IMAGE_TAG (default latest)
#   REGISTRY         registry prefix the images are pushed to and pulled from, e.g. europe-docker.pkg.dev/p/lanepaint
#   FLYTE_CONFIG     Flyte config file (default: flyte's own lookup); FLYTE_PROJECT, FLYTE_DOMAIN
#   LOCAL=1          run each stage in its image on this machine's GPU (docker compose) instead of Flyte
#   PYTHON           python with this project installed (default .venv/bin/python, else python3)
#   LANEPAINT_SEGMENT_*, LANEPAINT_EDIT_*, LANEPAINT_EVALUATE_* (and their older names SAM2_*, VP_*, ALPAMAYO_*,
#                    LLM_MODEL_SIZE, QWEN_VRAM_RESERVE_GIB, PAI_DATASET_*): forwarded to every stage
#                    (`lanepaint env` lists them). HF_TOKEN is never forwarded as a run variable: give it to
#                    the cluster as a secret, or to docker compose from your shell.
#
# Images are tagged <name>:<MASTER_RUN_ID> and <name>:latest with MASTER_RUN_ID=<RUN_ID>_<YYYYMMDD_HHMMSS>
# (run_<YYYYMMDD_HHMMSS> when RUN_ID is not given); only the images of the chosen stages (and the
# orchestrator, on a cluster) are built. On a cluster every image reaches Flyte as `flyte run --image
# <name>=<uri>` (the DAG's environments use Image.from_ref_name), so the driver pod resolves the same images.
set -euo pipefail

die() { echo "build_and_run: error: $*" >&2; exit 2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $arg (see --help)" ;;
    esac
done

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR"

STAMP="${STAMP:-$(date +%Y%m%d_%H%M%S)}"
if [[ -n "${RUN_ID:-}" ]]; then
    MASTER_RUN_ID="${RUN_ID}_${STAMP}"
else                      # the default run id carries the stamp already: do not repeat it
    RUN_ID="run_${STAMP}"
    MASTER_RUN_ID="$RUN_ID"
fi
STAGES="${STAGES:-123}"
PROFILE="${PROFILE:-full}"
LOCAL="${LOCAL:-0}"
CONCURRENCY="${CONCURRENCY:-4}"
VIDEOS_PER_SHARD="${VIDEOS_PER_SHARD:-0}"
IMAGE_TAG="${IMAGE_TAG:-latest}"
INPUTS="${INPUTS:-}"
DATA_RUN_ID="${DATA_RUN_ID:-}"
VIDEO_DATA="${VIDEO_DATA:-}"
REGISTRY="${REGISTRY:-}"
REGISTRY="${REGISTRY%/}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT_DIR/.venv/bin/python" ]]; then PYTHON="$ROOT_DIR/.venv/bin/python"; else PYTHON=python3; fi
fi

# ---- validation: everything is checked before anything is built or run ---------------------------
valid_id() { [[ "$1" =~ ^[A-Za-z0-9._-]+$ && "$1" != *..* && "$1" != -* ]]; }
valid_id "$RUN_ID" || die "RUN_ID='$RUN_ID': use letters, digits, '.', '_' and '-' (no '..', no leading '-')"
case "$STAGES" in
    1|2|3|12|23|123) ;;
    *) die "STAGES=$STAGES: use 1, 2, 3, 12, 23 or 123 (contiguous: stage 2 reads stage 1's output, stage 3 reads stage 2's)" ;;
esac
has() { [[ "$STAGES" == *"$1"* ]]; }
[[ "$PROFILE" == full || "$PROFILE" == tiny ]] || die "PROFILE=$PROFILE: use full or tiny"
[[ "$CONCURRENCY" =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY=$CONCURRENCY: a positive integer"
[[ "$VIDEOS_PER_SHARD" =~ ^[0-9]+$ ]] || die "VIDEOS_PER_SHARD=$VIDEOS_PER_SHARD: an integer >= 0"

if [[ "$LOCAL" == 1 ]]; then
    OUTPUT_ROOT="${OUTPUT_ROOT:-/data/outputs}"
    [[ -z "$REGISTRY" ]] || echo "build_and_run: LOCAL=1 uses local image names; REGISTRY ignored" >&2
    REGISTRY=""
else
    [[ -n "${OUTPUT_ROOT:-}" ]] || die "OUTPUT_ROOT is required on a cluster: gs://bucket/prefix (stage nodes share no disk)"
    [[ "$OUTPUT_ROOT" == gs://* ]] || die "OUTPUT_ROOT=$OUTPUT_ROOT: a cluster run needs gs://bucket/prefix (or LOCAL=1)"
fi
OUTPUT_ROOT="${OUTPUT_ROOT%/}"

if has 1; then
    [[ -n "$INPUTS" ]] || die "STAGES=$STAGES runs stage 1: set INPUTS (video URIs, space-separated)"
elif [[ -n "$INPUTS" ]]; then
    echo "build_and_run: INPUTS is read by stage 1 only; ignored for STAGES=$STAGES" >&2
fi
if has 2 && ! has 1; then
    [[ -n "$DATA_RUN_ID" ]] || die "STAGES=$STAGES runs stage 2 without stage 1: set DATA_RUN_ID (the segmentation run to edit)"
    valid_id "$DATA_RUN_ID" || die "DATA_RUN_ID='$DATA_RUN_ID' is not a valid run id"
fi
if has 3 && ! has 2; then
    VIDEO_DATA="${VIDEO_DATA:-$OUTPUT_ROOT/vp/$RUN_ID}"
fi

if [[ -n "${PROMPT_IDS:-}" && -z "${VP_INSTRUCTIONS:-}" ]]; then
    [[ "$PROMPT_IDS" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "PROMPT_IDS=$PROMPT_IDS: comma-separated numbers, e.g. 1,4"
    VP_INSTRUCTIONS="$("$PYTHON" - "$PROMPT_IDS" <<'PY'
import sys
from generation.instructions import DEFAULT_SHORTHANDS as d
ids = [int(i) for i in sys.argv[1].split(",")]
if not all(1 <= i <= len(d) for i in ids):
    sys.exit(f"PROMPT_IDS={sys.argv[1]}: ids are 1..{len(d)}: " + "; ".join(f"{n} {s}" for n, s in enumerate(d, 1)))
print("||".join(d[i - 1] for i in ids))
PY
)" || die "PROMPT_IDS=$PROMPT_IDS could not be resolved (see above)"
    export VP_INSTRUCTIONS
fi

# ---- images -------------------------------------------------------------------------------------
declare -A DOCKERFILE=([orchestrator]=Dockerfile [segmentation]=segmentation/Dockerfile
                       [generation]=generation/Dockerfile [vla]=vla/Dockerfile)
IMAGES=()
[[ "$LOCAL" == 1 ]] || IMAGES+=(orchestrator)
has 1 && IMAGES+=(segmentation)
has 2 && IMAGES+=(generation)
has 3 && IMAGES+=(vla)
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then TAG="$IMAGE_TAG"; else TAG="$MASTER_RUN_ID"; fi
image_ref() { echo "${REGISTRY:+$REGISTRY/}lanepaint-$1:$2"; }
built() { [[ "${SKIP_BUILD:-0}" != 1 && " ${IMAGES[*]} " == *" $1 "* ]]; }
IMAGE_ENV=()   # the images the DAG's environments use: this run's builds, else IMAGE_TAG
IMAGE_ARGS=()  # the same as flyte run --image <name>=<uri>
for name in orchestrator segmentation generation vla; do
    if built "$name"; then tag="$MASTER_RUN_ID"; else tag="$IMAGE_TAG"; fi
    IMAGE_ENV+=("LANEPAINT_${name^^}_IMAGE=$(image_ref "$name" "$tag")")
    IMAGE_ARGS+=(--image "$name=$(image_ref "$name" "$tag")")
done

# ---- settings forwarded to every stage --------------------------------------------------------
FORWARD=()
while IFS= read -r name; do
    FORWARD+=("$name=${!name}")
done < <(compgen -e | grep -E '^(SAM2_|VP_|ALPAMAYO_|PAI_DATASET_|LANEPAINT_(SEGMENT|EDIT|EVALUATE)_)|^(LLM_MODEL_SIZE|QWEN_VRAM_RESERVE_GIB|HF_HUB_OFFLINE|LANEPAINT_CACHE_DIR)$' \
         | grep -viE 'TOKEN|SECRET|PASSWORD|KEY' | sort)

# ---- plan ---------------------------------------------------------------------------------------
show() {   # a command as it would be typed
    local out="" a
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+="$a "; else out+="${a@Q} "; fi
    done
    echo "${out% }"
}
step() {   # print, then run unless --dry-run
    echo "+ $(show "$@")"
    [[ "$DRY_RUN" == 1 ]] || "$@"
}

echo "lanepaint build_and_run$([[ "$DRY_RUN" == 1 ]] && echo " (dry run: nothing is built or run)")"
echo "  run id:        $RUN_ID (master run id $MASTER_RUN_ID)"
echo "  stages:        $STAGES on $([[ "$LOCAL" == 1 ]] && echo "this machine (docker compose)" || echo "Flyte")"
echo "  profile:       $PROFILE, concurrency $CONCURRENCY, videos per shard $VIDEOS_PER_SHARD"
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    echo "  images:        reuse tag $IMAGE_TAG of: ${IMAGES[*]}"
else
    echo "  images:        build ${IMAGES[*]} as :$MASTER_RUN_ID and :latest${REGISTRY:+, push to $REGISTRY}"
fi
has 1 && echo "  inputs:        $INPUTS"
has 2 && ! has 1 && echo "  stage 2 reads: segmentation run $DATA_RUN_ID ($OUTPUT_ROOT/preprocessed_data_vp/$DATA_RUN_ID)"
has 3 && ! has 2 && echo "  stage 3 reads: $VIDEO_DATA"
[[ -n "${VP_INSTRUCTIONS:-}" ]] && has 2 && echo "  instructions:  $VP_INSTRUCTIONS"
echo "  settings:      ${FORWARD[*]:-(stage defaults)}"
echo "  outputs:"
has 1 && echo "    stage 1: $OUTPUT_ROOT/sam2/$RUN_ID and $OUTPUT_ROOT/preprocessed_data_vp/$RUN_ID"
has 2 && echo "    stage 2: $OUTPUT_ROOT/vp/$RUN_ID"
has 3 && echo "    stage 3: $OUTPUT_ROOT/alpamayo/$RUN_ID ($RUN_ID""_report.txt, inference_summary.json)"

# ---- build --------------------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    [[ "$DRY_RUN" == 1 ]] || command -v docker > /dev/null || die "docker is not installed (or use SKIP_BUILD=1)"
    for name in "${IMAGES[@]}"; do
        step docker build -f "${DOCKERFILE[$name]}" -t "$(image_ref "$name" "$MASTER_RUN_ID")" \
            -t "$(image_ref "$name" latest)" .
        if [[ -n "$REGISTRY" ]]; then
            step docker push "$(image_ref "$name" "$MASTER_RUN_ID")"
            step docker push "$(image_ref "$name" latest)"
        fi
    done
fi

# ---- run ----------------------------------------------------------------------------------------
read -r -a INPUT_LIST <<< "$INPUTS"
if [[ "$LOCAL" == 1 ]]; then
    declare -A SERVICE=([1]=segmentation [2]=generation [3]=vla)
    ENV_ARGS=()
    for kv in "${FORWARD[@]}"; do ENV_ARGS+=(-e "$kv"); done
    for ((i = 0; i < ${#STAGES}; i++)); do
        stage="${STAGES:i:1}"
        args=(lanepaint run --stages "$stage" --run-id "$RUN_ID" --output-root "$OUTPUT_ROOT" --profile "$PROFILE")
        case "$stage" in
            1) args+=(--input "${INPUT_LIST[@]}") ;;
            2) args+=(--data-run-id "$([[ "$STAGES" == *1* ]] && echo "$RUN_ID" || echo "$DATA_RUN_ID")") ;;
            3) args+=(--video-data "${VIDEO_DATA:-$OUTPUT_ROOT/vp/$RUN_ID}") ;;
        esac
        step env "LANEPAINT_IMAGE_TAG=$TAG" docker compose run --rm "${ENV_ARGS[@]}" "${SERVICE[$stage]}" "${args[@]}"
    done
else
    [[ "$DRY_RUN" == 1 ]] || command -v flyte > /dev/null || die "the flyte CLI is not installed (pip install -e '.[orchestrator]')"
    declare -A ENTRY=([1]=sam2_only [12]=sam2_vp [2]=vp_only [23]=vp_alpamayo [3]=alpamayo_only [123]=master_pipeline)
    cmd=(flyte)
    [[ -n "${FLYTE_CONFIG:-}" ]] && cmd+=(--config "$FLYTE_CONFIG")
    cmd+=(run)
    [[ -n "${FLYTE_PROJECT:-}" ]] && cmd+=(--project "$FLYTE_PROJECT")
    [[ -n "${FLYTE_DOMAIN:-}" ]] && cmd+=(--domain "$FLYTE_DOMAIN")
    cmd+=(--name "lanepaint-${MASTER_RUN_ID//[^A-Za-z0-9-]/-}" "${IMAGE_ARGS[@]}")
    for kv in "${FORWARD[@]}"; do cmd+=(-e "$kv"); done
    cmd+=(workflow_master.py "${ENTRY[$STAGES]}" --run_id "$RUN_ID" --output_root "$OUTPUT_ROOT"
          --profile "$PROFILE" --concurrency "$CONCURRENCY" --videos_per_shard "$VIDEOS_PER_SHARD")
    if has 1; then
        json="["
        for uri in "${INPUT_LIST[@]}"; do json+="\"${uri//\"/\\\"}\", "; done
        cmd+=(--inputs "${json%, }]")
    fi
    has 2 && ! has 1 && cmd+=(--data_run_id "$DATA_RUN_ID")
    has 3 && ! has 2 && cmd+=(--video_data "$VIDEO_DATA")
    step env "${IMAGE_ENV[@]}" "${cmd[@]}"    # the images as --image refs; the settings travel with the tasks
fi

# ---- what next ----------------------------------------------------------------------------------
case "${STAGES: -1}" in
    1) echo "next: STAGES=23 DATA_RUN_ID=$RUN_ID RUN_ID=<new run id> OUTPUT_ROOT=$OUTPUT_ROOT scripts/build_and_run.sh" ;;
    2) echo "next: STAGES=3 RUN_ID=$RUN_ID VIDEO_DATA=$OUTPUT_ROOT/vp/$RUN_ID OUTPUT_ROOT=$OUTPUT_ROOT scripts/build_and_run.sh" ;;
    3) echo "report: $OUTPUT_ROOT/reports/$RUN_ID/report.html (table: results.parquet; stage 3: $OUTPUT_ROOT/alpamayo/$RUN_ID/${RUN_ID}_report.txt)" ;;
esac
