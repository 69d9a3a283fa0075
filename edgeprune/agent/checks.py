"""Structural checks of uploaded model files, run before any runtime sees them.

The agent accepts only model files, and refuses (:class:`Refused`, HTTP 4xx) anything that is not
structurally one:

* TFLite: FlatBuffer identifier ``TFL3`` and a bounds-checked root table (:func:`check_tflite`);
* OpenVINO IR: a zip declaring at most two members in a small directory, holding exactly ``model.xml`` +
  ``model.bin``, unpacked (within a size cap) under the agent's own names, whose XML is pre-parsed by
  ``defusedxml`` with DOCTYPE/ENTITY declarations refused (:func:`unpack_openvino_zip`, :func:`check_ir_xml`);
* ONNX: protobuf parse, no tensor anywhere naming external data (:func:`external_data_places`), then
  ``onnx.checker`` (:func:`check_onnx`).

The TFLite check is a bounded read of a memory map and runs in the server process. The IR unpacking and the
ONNX check run in the measurement worker (:mod:`edgeprune.agent.worker`), under its memory and CPU limits,
just before the runtime loads the model: a hostile archive or protobuf costs the worker, never the server.
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
    _check_zip_directory(zip_path)
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


#: the most members an IR upload zip may declare (it holds exactly two), and the largest central directory
MAX_ZIP_MEMBERS = 2
MAX_ZIP_DIRECTORY_BYTES = 64 << 10
_EOCD, _EOCD_SIZE, _ZIP64_LOCATOR = b"PK\x05\x06", 22, b"PK\x06\x07"


def _check_zip_directory(zip_path: Path) -> None:
    """Refuse (415) a zip whose end record declares more than :data:`MAX_ZIP_MEMBERS` members or a central
    directory over :data:`MAX_ZIP_DIRECTORY_BYTES`, before ``zipfile`` reads the directory (a million empty
    members cost it seconds and hundreds of MiB). The end record is found the way ``zipfile`` finds it."""
    size = zip_path.stat().st_size
    with open(zip_path, "rb") as f:
        tail_size = min(size, _EOCD_SIZE + 0xFFFF)
        f.seek(size - tail_size)
        tail = f.read(tail_size)
    at = len(tail) - _EOCD_SIZE if tail[-_EOCD_SIZE:-_EOCD_SIZE + 4] == _EOCD and tail[-2:] == b"\0\0" else \
        tail.rfind(_EOCD)
    if at < 0 or at + _EOCD_SIZE > len(tail):
        raise Refused(415, "not an OpenVINO IR upload: expected a zip holding model.xml and model.bin")
    if at >= 20 and tail[at - 20:at - 16] == _ZIP64_LOCATOR:
        raise Refused(415, "zip64 archives are not accepted for an IR upload")
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if entries > MAX_ZIP_MEMBERS or directory_size > MAX_ZIP_DIRECTORY_BYTES:
        raise Refused(415, f"an OpenVINO IR zip must hold exactly {IR_XML} and {IR_BIN}; this one declares "
                           f"{entries} members in a {directory_size}-byte directory")


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
    places = external_data_places(model)
    if places:
        raise Refused(415, f"ONNX models with external data are not accepted ({len(places)} tensor(s), first at "
                           f"{one_line(places[0], 120)}); export with the weights embedded")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise Refused(415, f"not a valid ONNX model: {one_line(str(exc), 200)}") from None
    if not model.graph.node:
        raise Refused(415, "not a valid ONNX model: the graph has no nodes")


def external_data_places(model: Any) -> list[str]:
    """Where ``model`` (an ``onnx.ModelProto``) names external data: a description of each such tensor.

    Every ``TensorProto`` reachable from the model is visited, by walking the protobuf message tree rather than
    a list of known fields: initializers, sparse initializers' values and indices, node attributes (``value``,
    ``sparse_value``, tensor lists), the graphs of control-flow nodes at any depth, function bodies and training
    graphs, and any place a later ONNX version adds.
    """
    from onnx import TensorProto

    places: list[str] = []
    stack: list[tuple[Any, str]] = [(model, "model")]
    while stack:
        message, where = stack.pop()
        if isinstance(message, TensorProto):
            if message.data_location == TensorProto.EXTERNAL or len(message.external_data):
                places.append(where)
            continue
        for descriptor, value in message.ListFields():
            if descriptor.message_type is None:
                continue
            name = f"{where}.{descriptor.name}"
            repeated = descriptor.is_repeated if hasattr(descriptor, "is_repeated") else \
                descriptor.label == descriptor.LABEL_REPEATED  # protobuf before 5.x has only the label
            if repeated:
                items = list(value.values()) if hasattr(value, "keys") else list(value)  # a map's values
                stack.extend((item, f"{name}[{i}]") for i, item in enumerate(items))
            else:
                stack.append((value, name))
    return places
