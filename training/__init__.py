"""Side tools beside the stages: lane inpainting datasets (SAM2 masks + VLM lane captions, attribute
filters) and FluxFill LoRA training. Uses the stages' model code; no stage imports it."""
