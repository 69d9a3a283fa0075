"""What hostile clients send an agent, for the hardening and load tests: tiny models, raw requests, tricklers."""

from __future__ import annotations

import http.client
import io
import json
import select
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from edgeprune.agent.protocol import MEASURE_PATH, REQUEST_HEADER, MeasureRequest
from edgeprune.timing import TimingSpec

INPUT, SHAPE = "x", (1, 3, 8, 8)
QUICK = TimingSpec(warmup_runs=1, min_runs=5, max_runs=50, min_seconds=0.02, max_cv=10.0, retries=0)


def relu_onnx(name: str = "g") -> bytes:
    """A one-node ONNX model (x: 1x3x8x8 → Relu); ``name`` changes its bytes (and so its reference id)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", [INPUT], ["y"])], name,
                              [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def memory_bomb_onnx(elements: int = 1 << 30) -> bytes:
    """About 180 bytes of ONNX that make the runtime allocate ``elements`` floats (4 GiB) when it runs."""
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [elements])
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
             helper.make_node("Add", [INPUT, "s"], ["y"])]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def meta(fmt: str = "onnx", runtime: str = "onnxruntime", shape: tuple[int, ...] = SHAPE, **changes: Any) -> str:
    """The X-Edgeprune-Request header of a measurement of ``shape`` zeros with the quick timing."""
    request = MeasureRequest(format=fmt, runtime=runtime, device="CPU" if runtime == "openvino" else "cpu",
                             threads=1, precision="fp32", input_name=INPUT, input_shape=shape, timing=QUICK)
    return json.dumps({**request.to_dict(), **changes})


def post(url_port: tuple[str, int], body: bytes, token: str | None, meta_header: str | None = None,
         path: str = MEASURE_PATH, source: str | None = None, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    """One POST (GET when ``body`` is empty and ``path`` is not the measure path) with http.client."""
    host, port = url_port
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if meta_header is not None:
        headers[REQUEST_HEADER] = meta_header
    try:
        method = "POST" if path == MEASURE_PATH else "GET"
        conn.request(method, path, body=body if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {"raw": raw.decode("latin-1")}
    finally:
        conn.close()


def raw_exchange(url_port: tuple[str, int], request: bytes, timeout: float = 30.0) -> bytes:
    """Send ``request`` bytes as they are; everything the agent answers before it closes."""
    with socket.create_connection(url_port, timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def ir_zip(onnx_path: Path, folder: Path) -> bytes:
    """An OpenVINO IR upload (zip of model.xml + model.bin) converted from an ONNX file."""
    import openvino as ov

    xml = folder / "model.xml"
    ov.save_model(ov.Core().read_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(xml, "model.xml")
        archive.write(xml.with_suffix(".bin"), "model.bin")
    return buffer.getvalue()


class Tricklers:
    """``count`` connections that each send a request's first line and then one header byte every ``interval``
    seconds, never finishing; a connection the agent closes is opened again at once. One thread, select-based.

    Counts how many connections the agent closed (``closed``) and how long each had lived (``lifetimes``).
    """

    def __init__(self, url_port: tuple[str, int], count: int, interval: float = 1.0) -> None:
        self.url_port, self.count, self.interval = url_port, count, interval
        self.closed = 0
        self.lifetimes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tricklers")

    def __enter__(self) -> Tricklers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _open(self) -> tuple[socket.socket, float] | None:
        try:
            sock = socket.create_connection(self.url_port, timeout=2)
            sock.sendall(f"POST {MEASURE_PATH} HTTP/1.1\r\nHost: agent\r\nX-Slow: ".encode())
            sock.setblocking(False)
            return sock, time.monotonic()
        except OSError:
            return None

    def _run(self) -> None:
        conns: dict[socket.socket, float] = {}
        next_byte = time.monotonic()
        try:
            while not self._stop.is_set():
                while len(conns) < self.count and not self._stop.is_set():
                    opened = self._open()
                    if opened is None:
                        break
                    conns[opened[0]] = opened[1]
                readable, _, _ = select.select(list(conns), [], [], 0.05)
                for sock in readable:  # an answer (503) or the close: this connection is done
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data or b"HTTP/" in data:
                        self.closed += 1
                        self.lifetimes.append(time.monotonic() - conns.pop(sock))
                        sock.close()
                if time.monotonic() >= next_byte:
                    next_byte = time.monotonic() + self.interval
                    for sock in list(conns):
                        try:
                            sock.send(b"a")
                        except OSError:
                            self.closed += 1
                            self.lifetimes.append(time.monotonic() - conns.pop(sock))
                            sock.close()
        finally:
            for sock in conns:
                sock.close()
