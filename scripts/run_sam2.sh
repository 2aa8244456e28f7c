#!/usr/bin/env bash
# Stage 1 (SAM2) alone: needs INPUTS.
# Builds only this stage's image (and the orchestrator's) and runs it; every other setting is the one
# of build_and_run.sh (RUN_ID, OUTPUT_ROOT, SKIP_BUILD, REGISTRY, LOCAL, ...). --dry-run prints the plan.
set -euo pipefail
STAGES=1 exec "$(dirname "${BASH_SOURCE[0]}")/build_and_run.sh" "$@"
