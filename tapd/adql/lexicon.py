"""Reserved words: names a query may only use as "delimited" identifiers.

ADQL 2.1 §2.1.2 reserves the SQL-92 reserved words and ADQL's own function
and keyword names. Two SQL-92 words are deliberately left usable as plain
names, because refusing them would break ordinary astronomical queries:

* ``DEC`` (SQL's abbreviation of DECIMAL) is the usual name of the
  declination column; the IVOA conformance suite accepts ``SELECT ra1, dec``.
* ``PUBLIC`` is PostgreSQL's default schema, so ``public.stars`` must work.
"""

from __future__ import annotations

import re

SQL92_RESERVED = frozenset(
    """
    ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION
    AVG BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR
    CHARACTER CHARACTER_LENGTH CHAR_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN
    COMMIT CONNECT CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING
    COUNT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER
    CURSOR DATE DAY DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DELETE
    DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN DOUBLE DROP ELSE END
    END-EXEC ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH
    FIRST FLOAT FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR
    IDENTITY IMMEDIATE IN INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER
    INTERSECT INTERVAL INTO IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE
    LOCAL LOWER MATCH MAX MIN MINUTE MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO
    NOT NULL NULLIF NUMERIC OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT
    OVERLAPS PAD PARTIAL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES
    PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS
    SCHEMA SCROLL SECOND SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME
    SPACE SQL SQLCODE SQLERROR SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN
    TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE TO TRAILING TRANSACTION TRANSLATE
    TRANSLATION TRIM TRUE UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER USING VALUE
    VALUES VARCHAR VARYING VIEW WHEN WHENEVER WHERE WITH WORK WRITE YEAR ZONE
    """.split()  # noqa: SIM905
)

ADQL_RESERVED = frozenset(
    """
    ABS ACOS AREA ASIN ATAN ATAN2 BIT_AND BIT_NOT BIT_OR BIT_XOR BOX CEILING CENTROID
    CIRCLE CONTAINS COORD1 COORD2 COORDSYS COS COT DEGREES DISTANCE EXP FLOOR ILIKE
    INTERSECTS IN_UNIT LOG LOG10 MOD OFFSET PI POINT POLYGON POWER RADIANS REGION RAND
    ROUND SIN SQRT TAN TOP TRUNCATE
    """.split()  # noqa: SIM905
)

#: SQL-92 words deliberately usable as plain names (see the module docstring).
NOT_RESERVED = frozenset({"DEC", "PUBLIC"})

RESERVED_WORDS = (SQL92_RESERVED | ADQL_RESERVED) - NOT_RESERVED


def is_reserved(word: str) -> bool:
    """True when ``word`` may not be used as an undelimited name."""
    return word.upper() in RESERVED_WORDS


_REGULAR = re.compile(r"[a-z][a-z0-9_]*\Z")


def adql_name(pg_name: str) -> str:
    """How ADQL must write a PostgreSQL name: as is when regular, else in double quotes."""
    if _REGULAR.match(pg_name) and not is_reserved(pg_name):
        return pg_name
    return '"' + pg_name.replace('"', '""') + '"'


def split_name(name: str) -> list[tuple[str, bool]]:
    """``schema.table`` as published -> [(text, delimited), ...], quotes removed."""
    parts: list[tuple[str, bool]] = []
    i = 0
    while i < len(name):
        if name[i] == '"':
            j = i + 1
            text = []
            while j < len(name):
                if name[j] == '"':
                    if name.startswith('""', j):
                        text.append('"')
                        j += 2
                        continue
                    break
                text.append(name[j])
                j += 1
            parts.append(("".join(text), True))
            i = j + 1
        else:
            j = name.find(".", i)
            j = len(name) if j < 0 else j
            parts.append((name[i:j], False))
            i = j
        if i < len(name) and name[i] == ".":
            i += 1
    return parts
