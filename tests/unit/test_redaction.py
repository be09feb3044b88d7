"""Credentials in URLs never reach a log line: the handler masks them, whoever logs."""

from __future__ import annotations

import logging

import pytest

from jobcast.logs import _Context, redact


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ('"WebSocket /ws?token=abc.def-_1" 403', '"WebSocket /ws?token=***" 403'),
        ("/ws/jobs/1?after=3&token=s3cret&x=1", "/ws/jobs/1?after=3&token=***&x=1"),
        ("/api/jobs?ACCESS_TOKEN=a;key=b", "/api/jobs?ACCESS_TOKEN=***;key=***"),
        ("https://h/cb?signature=ff00#frag", "https://h/cb?signature=***#frag"),
        ("/api/jobs?after=3&type=demo", "/api/jobs?after=3&type=demo"),
        ("tokens=5 in a sentence", "tokens=5 in a sentence"),
    ],
)
def test_credential_values_in_a_query_are_masked(line: str, masked: str) -> None:
    assert redact(line) == masked


def test_a_record_with_arguments_is_masked_once_formatted() -> None:
    # uvicorn's websocket line: the URL arrives as an argument, not in the format string
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/ws?token=hunter2"),
        None,
    )
    assert _Context().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?token=***" [accepted]'
