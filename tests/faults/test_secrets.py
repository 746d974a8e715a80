"""A whole session under DEBUG logging everywhere: no token or API key in any log record,
repr or exception text."""

from __future__ import annotations

from projectx_lab.testing import secrets


async def test_no_secret_in_logs_reprs_or_errors() -> None:
    report = await secrets.secret_scan()
    assert report.secrets >= 3 and report.records > 100
    assert report.leaked == 0, report.where
