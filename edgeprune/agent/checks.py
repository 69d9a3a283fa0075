"""Structural checks of uploaded model files, run before any runtime sees them.

The agent accepts only model files, and refuses (:class:`Refused`, HTTP 4xx) anything that is not
structurally one:

* TFLite: FlatBuffer identifier ``TFL3`` and a bounds-checked root table (:func:`check_tflite`);
* OpenVINO IR: a zip of exactly ``model.xml`` + ``model.bin``, unpacked under the agent's own names,
  whose XML is pre-parsed by ``defusedxml`` with DOCTYPE/ENTITY declarations refused (:func:`unpack_openvino_zip`,
  :func:`check_ir_xml`);
* ONNX: protobuf parse + ``onnx.checker``, no external data (:func:`check_onnx`).

The TFLite and IR checks are pure Python and run in the server process; the ONNX check needs the
``onnx`` package and is run by the measurement worker (:mod:`edgeprune.agent.worker`) just
before it loads the model.
"""

from __future__ import annotations

import mmap
import struct
import zipfile
from pathlib import Path
from typing import Any

from edgeprune.agent.protocol import IR_BIN, IR_XML, one_line

#: read/write granularity when streaming uploads and zip members to disk
CHUNK = 1 << 20


class Refused(Exception):
    """A request the agent turns down: HTTP ``status`` and a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_tflite(path: Path) -> None:
    """Refuse (415) anything that is not structurally a TFLite FlatBuffer: identifier ``TFL3`` at bytes 4..8,
    root table and vtable in bounds, schema version 3, at least one subgraph."""
    size = path.stat().st_size
    if size < 24:
        raise Refused(415, f"not a TFLite model: {size} bytes is too short")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[4:8] != b"TFL3":
            raise Refused(415, "not a TFLite model: no 'TFL3' FlatBuffer identifier at bytes 4-8")

        def u16(at: int) -> int:
            if not 0 <= at <= size - 2:
                raise Refused(415, "not a valid TFLite model: offset out of bounds")
            return int(struct.unpack_from("<H", buf, at)[0])

        def u32(at: int) -> int:
            if not 0 <= at <= size - 4:
                raise Refused(415, "not a valid TFLite model: offset out of bounds")
            return int(struct.unpack_from("<I", buf, at)[0])

        root = u32(0)
        vtable = root - struct.unpack_from("<i", buf, root)[0] if 8 <= root <= size - 4 else -1
        vt_len, table_len = u16(vtable), u16(vtable + 2)
        if vt_len < 4 or vt_len % 2 or vtable + vt_len > size or root + table_len > size:
            raise Refused(415, "not a valid TFLite model: malformed root table")

        def field_at(index: int) -> int:
            slot = 4 + 2 * index
            offset = u16(vtable + slot) if slot + 2 <= vt_len else 0
            if offset >= max(table_len, 1):
                raise Refused(415, "not a valid TFLite model: field outside its table")
            return root + offset if offset else 0

        version_at = field_at(0)
        if not version_at or u32(version_at) != 3:
            raise Refused(415, "not a valid TFLite model: schema version is not 3")
        for index, name, required in ((2, "subgraphs", True), (4, "buffers", False)):
            at = field_at(index)
            if not at:
                if required:
                    raise Refused(415, f"not a valid TFLite model: no {name}")
                continue
            vector = at + u32(at)
            count = u32(vector)
            if vector + 4 + 4 * count > size or (required and count == 0):
                raise Refused(415, f"not a valid TFLite model: malformed {name} vector")


def unpack_openvino_zip(zip_path: Path, out_dir: Path, max_unpacked: int) -> Path:
    """Copy ``model.xml`` and ``model.bin`` out of an IR upload zip into ``out_dir``; return the xml path.

    The zip must hold exactly those two members (no directories, no other files, no path components),
    unencrypted, stored or deflated, at most ``max_unpacked`` bytes once unpacked. Names on disk are the
    agent's own; nothing is extracted by the name recorded in the zip.
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Refused(415, "not an OpenVINO IR upload: expected a zip holding model.xml and model.bin") from None
    with archive:
        infos = archive.infolist()
        names = sorted(i.filename for i in infos)
        if names != [IR_BIN, IR_XML]:
            shown = ", ".join(ascii(n) for n in names[:6]) + (" ..." if len(names) > 6 else "")
            raise Refused(415, f"an OpenVINO IR zip must hold exactly {IR_XML} and {IR_BIN} (no folders); "
                               f"found {shown or 'nothing'}")
        declared = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise Refused(415, "encrypted zip members are not accepted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Refused(415, "zip members must be stored or deflated")
            declared += info.file_size
        if declared > max_unpacked:
            raise Refused(413, f"the IR unpacks to {declared} bytes; the agent accepts at most {max_unpacked}")
        written = 0
        for info in infos:
            own_name = IR_XML if info.filename == IR_XML else IR_BIN  # never a name taken from the zip
            try:
                with archive.open(info) as src, open(out_dir / own_name, "xb") as dst:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_unpacked:
                            raise Refused(413, f"the IR unpacks to more than {max_unpacked} bytes")
                        dst.write(chunk)
            except Refused:
                raise
            except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError ...
                raise Refused(415, f"corrupt zip member {own_name}: {type(exc).__name__}") from None
    xml_path = out_dir / IR_XML
    check_ir_xml(xml_path)
    return xml_path


def check_ir_xml(path: Path) -> None:
    """Refuse (415) an IR xml that is not well formed, declares a DOCTYPE or entities, or is not an IR ``<net>``.

    Parsed with ``defusedxml`` (the maintained guard against entity expansion and external references), told
    to refuse any DOCTYPE outright: an OpenVINO IR has none.
    """
    try:
        from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
        from defusedxml import ElementTree as SafeTree
    except ImportError:  # an agent installed without the OpenVINO extra cannot run an IR anyway
        raise Refused(415, "this agent cannot take OpenVINO IR uploads: install 'edgeprune[agent-openvino]' on "
                      "the device") from None

    try:
        root = SafeTree.parse(str(path), forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise Refused(415, "the IR xml declares a DOCTYPE or entities; DOCTYPE and ENTITY declarations are refused"
                      ) from None
    except SafeTree.ParseError as exc:
        raise Refused(415, f"the IR xml is not well-formed XML: {one_line(str(exc), 120)}") from None
    if root.tag != "net" or root.find("layers") is None:
        raise Refused(415, "not an OpenVINO IR: the xml's root is not <net> with <layers>")


def check_onnx(path: Path) -> None:
    """Parse + ``onnx.checker``; refuse external data (it would make the runtime read other files)."""
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        raise Refused(415, "not an ONNX model: the payload does not parse as an ONNX protobuf") from None
    if _has_external_data(model.graph):
        raise Refused(415, "ONNX models with external data are not accepted; export with the weights embedded")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise Refused(415, f"not a valid ONNX model: {one_line(str(exc), 200)}") from None
    if not model.graph.node:
        raise Refused(415, "not a valid ONNX model: the graph has no nodes")


def _has_external_data(graph: Any) -> bool:
    tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            tensors.extend([attr.t] if attr.HasField("t") else [])
            tensors.extend(attr.tensors)
            if attr.HasField("g") and _has_external_data(attr.g):
                return True
            if any(_has_external_data(g) for g in attr.graphs):
                return True
    return any(t.data_location == 1 or len(t.external_data) for t in tensors)  # 1 = TensorProto.EXTERNAL
