"""The on-device agent: the program that times model files on a device, and the client that talks to it.

On the device (``pip install 'edgeprune[agent-tflite]'``, ``[agent-openvino]`` or ``[agent-onnxruntime]``:
no torch) ``edgeprune agent`` runs :func:`~edgeprune.agent.server.serve`. Each request is handled by
:mod:`~edgeprune.agent.handler`, its upload checked by :mod:`~edgeprune.agent.checks` and timed by a worker
process (:mod:`~edgeprune.agent.worker`) with the device's runtime; the wire format is
:mod:`~edgeprune.agent.protocol` (JSON), the settings :mod:`~edgeprune.agent.config`. On the workstation,
:mod:`~edgeprune.agent.client` uploads artifacts and reads back the measurements.

Nothing here imports torch: the agent uses the runtimes' load-run-time side (:mod:`edgeprune.runtimes`) and
:mod:`edgeprune.timing` only; export, which needs torch, stays on the workstation.
"""
