"""Structural checks of uploaded model files, run before any runtime sees them.

The agent accepts only model files, and refuses (:class:`Refused`, HTTP 4xx) anything that is not
structurally one. Each format's own check is its runtime's (``check_upload`` in the runtime's folder:
TFLite's FlatBuffer identifier and root table, ONNX's parse + no external data + ``onnx.checker``, an IR's xml
pre-parsed by ``defusedxml`` with DOCTYPE/ENTITY declarations refused ...): :func:`check_upload` runs it and
turns its one line into a 415.

An artifact of several files (OpenVINO's ``.xml`` + ``.bin``) arrives as a zip declaring exactly its members
(``model<suffix>`` each, no folders) in a small directory, unpacked within a size cap under the agent's own names
(:func:`unpack_artifact_zip`).

Checks marked cheap in the runtime's row run in the server process; the zip unpacking and the other checks run
in the measurement worker (:mod:`edgeprune.agent.worker`), under its memory and CPU limits, just before the
runtime loads the model: a hostile archive or protobuf costs the worker, never the server.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from edgeprune.errors import InputError
from edgeprune.runtimes import backend_for_format, facts_of_format

#: read/write granularity when streaming uploads and zip members to disk
CHUNK = 1 << 20


class Refused(Exception):
    """A request the agent turns down: HTTP ``status`` and a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_upload(path: Path, fmt: str) -> None:
    """Refuse (415) a file that is not structurally a ``fmt`` artifact, by its runtime's own check."""
    try:
        backend_for_format(fmt).check_upload(path)
    except InputError as exc:
        raise Refused(415, str(exc)) from None


def member_names(fmt: str) -> list[str]:
    """The members of a ``fmt`` upload zip: ``model<suffix>`` for each file of the artifact, main file first."""
    return [f"model{suffix}" for suffix in facts_of_format(fmt).suffixes]


def unpack_artifact_zip(zip_path: Path, out_dir: Path, fmt: str, max_unpacked: int) -> Path:
    """Copy the files of a ``fmt`` artifact out of an upload zip into ``out_dir``; return the main file's path
    after its runtime's check (:func:`check_upload`).

    The zip must hold exactly :func:`member_names` (no directories, no other files, no path components),
    unencrypted, stored or deflated, at most ``max_unpacked`` bytes once unpacked. Names on disk are the
    agent's own; nothing is extracted by the name recorded in the zip.
    """
    members = member_names(fmt)
    title = facts_of_format(fmt).title
    expected = " and ".join(members)
    _check_zip_directory(zip_path, title, expected, len(members))
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Refused(415, f"not a {title} upload: expected a zip holding {expected}") from None
    with archive:
        infos = archive.infolist()
        names = sorted(i.filename for i in infos)
        if names != sorted(members):
            shown = ", ".join(ascii(n) for n in names[:6]) + (" ..." if len(names) > 6 else "")
            raise Refused(415, f"a {title} zip must hold exactly {expected} (no folders); "
                               f"found {shown or 'nothing'}")
        declared = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise Refused(415, "encrypted zip members are not accepted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Refused(415, "zip members must be stored or deflated")
            declared += info.file_size
        if declared > max_unpacked:
            raise Refused(413, f"the upload unpacks to {declared} bytes; the agent accepts at most {max_unpacked}")
        written = 0
        for info in infos:
            own_name = members[members.index(info.filename)]  # never a name taken from the zip
            try:
                with archive.open(info) as src, open(out_dir / own_name, "xb") as dst:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_unpacked:
                            raise Refused(413, f"the upload unpacks to more than {max_unpacked} bytes")
                        dst.write(chunk)
            except Refused:
                raise
            except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError ...
                raise Refused(415, f"corrupt zip member {own_name}: {type(exc).__name__}") from None
    main = out_dir / members[0]
    check_upload(main, fmt)
    return main


#: the largest central directory an upload zip may declare (it holds an artifact's few files)
MAX_ZIP_DIRECTORY_BYTES = 64 << 10
_EOCD, _EOCD_SIZE, _ZIP64_LOCATOR = b"PK\x05\x06", 22, b"PK\x06\x07"


def _check_zip_directory(zip_path: Path, title: str, expected: str, members: int) -> None:
    """Refuse (415) a zip whose end record declares more than its ``members`` members or a central
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
        raise Refused(415, f"not a {title} upload: expected a zip holding {expected}")
    if at >= 20 and tail[at - 20:at - 16] == _ZIP64_LOCATOR:
        raise Refused(415, "zip64 archives are not accepted for an upload")
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if entries > members or directory_size > MAX_ZIP_DIRECTORY_BYTES:
        raise Refused(415, f"a {title} zip must hold exactly {expected}; this one declares "
                           f"{entries} members in a {directory_size}-byte directory")


