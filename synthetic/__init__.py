"""Synthetic driving data with exact ground truth: front-camera clips with road masks (``scenes``) and a
small PhysicalAI-AV dataset in the Hugging Face cache layout (``av_dataset``). Used by the demo, the tests
and ``lanepaint synth``. Imports core only."""
