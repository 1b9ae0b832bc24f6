from __future__ import annotations

import pytest

from lrsearch.errors import ConfigError
from lrsearch.storage.urls import DEFAULT_STORAGE, grpc_address, masked, passwords, redact, resolve_url, sqlite_file


def test_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LRSEARCH_STORAGE", raising=False)
    assert resolve_url(None) == DEFAULT_STORAGE
    monkeypatch.setenv("LRSEARCH_STORAGE", "sqlite:///env.db")
    assert resolve_url(None) == "sqlite:///env.db"
    assert resolve_url("sqlite:///flag.db") == "sqlite:///flag.db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),  # the bundled driver
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),  # an explicit driver is kept
        ("postgresql://u:p%40ss{w}@h/db", "postgresql+psycopg://u:p%40ss%7Bw%7D@h/db"),  # braces break str.format
    ],
)
def test_normalisation(url: str, expected: str) -> None:
    assert resolve_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://h:6379", "scheme 'redis' is not supported"),
        ("just words", "storage 'just words' is not a database URL"),
        # Shapes that once were echoed whole, password and all:
        ("postgresql://u:s3cr3tpw@host:notaport/db", "storage postgresql://... is not a database URL"),
        (
            "postgresql://u:s3cr@3tpw@127.0.0.1/db",
            "storage postgresql://u:***@127.0.0.1/db has an @ after its password",
        ),
        ("grpc://u:s3cr3tpw@127.0.0.1:1", "storage grpc://u:***@127.0.0.1:1: the storage proxy takes no credentials"),
        ("grpc://u:s3cr3tpw", "storage grpc://...: a proxy URL is grpc://HOST:PORT"),
        ("grpc://h:99999", "a proxy URL is grpc://HOST:PORT"),
        ("host=h password=s3cr3tpw", "storage <a storage URL that does not parse> is not a database URL"),
    ],
)
def test_bad_urls_are_refused_without_their_password(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_url(url)
    assert fragment in str(error.value) and "s3cr" not in str(error.value) and "3tpw" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://me:s3cret@db/x", "postgresql+psycopg://me:***@db/x"),
        ("postgresql://me@db/x", "postgresql://me@db/x"),  # a user is no secret
        ("postgresql://me:p@ss@db/x", "postgresql://me:***@db/x"),  # up to the last @
        ("postgresql://me:p/a:ss@db/x", "postgresql://me:***@db/x"),
        ("postgresql://me@db/x?password=s3cret&sslmode=require", "postgresql://me@db/x?password=***&sslmode=require"),
        ("postgresql://me:s3cret@db:port/x", "postgresql://..."),  # does not parse: the scheme alone
        ("me:s3cret@db/x", "<a storage URL that does not parse>"),
        ("lrsearch.db", "'lrsearch.db'"),
        ("sqlite:////srv/x.db", "sqlite:////srv/x.db"),
        ("grpc://10.0.0.5:13000", "grpc://10.0.0.5:13000"),
    ],
)
def test_masked(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_redact_takes_out_passwords_as_written_and_decoded() -> None:
    url = "postgresql+psycopg://me:p%40ssword@db/x"
    assert set(passwords(url)) == {"p%40ssword", "p@ssword"}
    assert redact("failed for p@ssword and p%40ssword", [url]) == "failed for *** and ***"
    assert redact("user pw", ["postgresql://me:pw@db/x"]) == "user pw"  # too short to replace everywhere


def test_grpc_urls() -> None:
    assert resolve_url("grpc://10.0.0.5:13000") == "grpc://10.0.0.5:13000"
    assert grpc_address("grpc://10.0.0.5:13000/") == ("10.0.0.5", 13000)
    with pytest.raises(ConfigError, match="a proxy URL is grpc://HOST:PORT"):
        resolve_url("grpc://nohost")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////srv/s.db", "/srv/s.db"),
        ("sqlite:///s.db", "s.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@db/s", None),
        ("grpc://proxy:13000", None),
    ],
)
def test_the_sqlite_file_of_a_url(url: str, expected: str | None) -> None:
    assert sqlite_file(url) == expected
