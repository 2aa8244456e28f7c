"""The VideoPainter port on upstream diffusers: the context-encoder branch model (``branch``), its
injection into the CogVideoX transformer (``hooks``), ID resampling across windows (``id_resampling``)
and the I2V inpainting pipeline (``pipeline``)."""
