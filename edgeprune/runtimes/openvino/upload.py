"""The agent's structural check of an uploaded OpenVINO IR's xml (the zip it came in is unpacked by the agent)."""

from __future__ import annotations

from pathlib import Path

from edgeprune.errors import InputError, first_line


def check_ir_xml(path: Path) -> None:
    """Refuse (415) an IR xml that is not well formed, declares a DOCTYPE or entities, or is not an IR ``<net>``.

    Parsed with ``defusedxml`` (the maintained guard against entity expansion and external references), told
    to refuse any DOCTYPE outright: an OpenVINO IR has none.
    """
    try:
        from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
        from defusedxml import ElementTree as SafeTree
    except ImportError:  # an agent installed without the OpenVINO extra cannot run an IR anyway
        raise InputError("this agent cannot take OpenVINO IR uploads: install 'edgeprune[agent-openvino]' on "
                      "the device") from None

    try:
        root = SafeTree.parse(str(path), forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise InputError("the IR xml declares a DOCTYPE or entities; DOCTYPE and ENTITY declarations are refused"
                      ) from None
    except SafeTree.ParseError as exc:
        raise InputError(f"the IR xml is not well-formed XML: {first_line(exc, 120)}") from None
    if root.tag != "net" or root.find("layers") is None:
        raise InputError("not an OpenVINO IR: the xml's root is not <net> with <layers>")
