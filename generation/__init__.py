"""Stage 2: paint lane markings into the road of stage 1's clips (FluxFill first frame judged by
Qwen2.5-VL, propagated by CogVideoX-5B-I2V with the VideoPainter branch) and score the edits.

Entry point ``generation.stage.run_edit(EditConfig)``; CLI ``lanepaint edit``. Sub-packages:
``videopainter`` (the port) and ``quality`` (judge and metrics). Importing this package does not import torch.
"""
