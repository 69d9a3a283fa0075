"""Tencent ncnn: PyTorch → ncnn ``.param``/``.bin`` via pnnx, run and timed by the ``ncnn`` Python bindings."""
