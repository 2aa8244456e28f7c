"""Stage-2 quality: the Qwen2.5-VL judge (``vlm``, ``judge``, prompts and answer parsing), the metrics
(``metrics``, ``clip_model``, ``metrics_report``) and their wiring into the edit loop (``checks``)."""
