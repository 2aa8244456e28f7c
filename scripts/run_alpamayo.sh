#!/usr/bin/env bash
# Stage 3 (Alpamayo-R1) alone: reads VIDEO_DATA (default OUTPUT_ROOT/vp/RUN_ID).
# Builds only this stage's image (and the orchestrator's) and runs it; every other setting is the one
# of build_and_run.sh (RUN_ID, OUTPUT_ROOT, SKIP_BUILD, REGISTRY, LOCAL, ...). --dry-run prints the plan.
set -euo pipefail
STAGES=3 exec "$(dirname "${BASH_SOURCE[0]}")/build_and_run.sh" "$@"
