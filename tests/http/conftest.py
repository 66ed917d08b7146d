"""Fixtures of the HTTP tests: offline validation against the IVOA schemas in ./schemas."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from lxml import etree

SCHEMAS = Path(__file__).parent / "schemas"

#: schemaLocation URLs found in the IVOA schemas -> local file names.
LOCATIONS = {
    "http://www.ivoa.net/xml/Xlink/xlink.xsd": "xlink.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.0.xsd",
    "http://www.ivoa.net/xml/VOResource/VOResource-v1.0.xsd": "VOResource-v1.0.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": "stc-v1.30.xsd",
    "http://www.w3.org/2001/xml.xsd": "xmlnamespace.xsd",
    "http://www.w3.org/2009/01/xml.xsd": "xmlnamespace.xsd",
}

#: Root namespaces and the schema files that define them, plus the xsi:types they may use.
IMPORTS = {
    "http://www.ivoa.net/xml/UWS/v1.0": "UWS-v1.1.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSITables/v1.0": "VOSITables-v1.1.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/TAPRegExt/v1.0": "TAPRegExt-v1.0-Erratum1.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.0.xsd",
}


class _LocalResolver(etree.Resolver):
    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        name = LOCATIONS.get(url) or (
            Path(url).name if (SCHEMAS / Path(url).name).exists() else None
        )
        if name is None:
            raise AssertionError(f"schema {url} is not available offline")
        return self.resolve_filename(str(SCHEMAS / name), context)


@functools.cache
def _schema() -> etree.XMLSchema:
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(SCHEMAS / f).as_uri()}"/>'
        for ns, f in IMPORTS.items()
    )
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'targetNamespace="urn:tapd:test-wrapper">{imports}</xs:schema>'
    )
    parser = etree.XMLParser()
    parser.resolvers.add(_LocalResolver())
    document = etree.fromstring(wrapper.encode(), parser, base_url=str(SCHEMAS / "wrapper.xsd"))
    return etree.XMLSchema(document)


def validation_errors(document: bytes) -> list[str]:
    """Schema violations of ``document`` (empty when valid)."""
    schema = _schema()
    tree = etree.fromstring(document)
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def assert_valid(document: bytes) -> None:
    errors = validation_errors(document)
    assert not errors, "\n".join(errors) + "\n" + document.decode()


class SchemaValidator:
    """``errors(document)`` lists violations; ``assert_valid(document)`` fails on any."""

    errors = staticmethod(validation_errors)
    assert_valid = staticmethod(assert_valid)


@pytest.fixture(scope="session")
def ivoa_schemas() -> SchemaValidator:
    """Validates UWS, VOSI and TAPRegExt documents against the IVOA schemas."""
    return SchemaValidator()
