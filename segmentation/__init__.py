"""Stage 1: SAM2 road segmentation of driving videos, written in VideoPainter's input format.

Entry point ``segmentation.stage.run_segment(SegmentConfig)``; CLI ``lanepaint segment``. Importing
this package (or its ``config``/``cli`` modules) does not import torch.
"""
