#!/usr/bin/env bash
# Stage 2 (FluxFill + VideoPainter) alone: needs DATA_RUN_ID, the segmentation run to edit.
# Builds only this stage's image (and the orchestrator's) and runs it; every other setting is the one
# of build_and_run.sh (RUN_ID, OUTPUT_ROOT, SKIP_BUILD, REGISTRY, LOCAL, ...). --dry-run prints the plan.
set -euo pipefail
STAGES=2 exec "$(dirname "${BASH_SOURCE[0]}")/build_and_run.sh" "$@"
