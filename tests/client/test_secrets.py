"""No session token or API key in any repr, str, log record (DEBUG included, HTTP stack
included) or exception text, across logins, re-logins and failure paths."""

from __future__ import annotations

import logging
import traceback

import pytest

from projectx_lab import ProjectX, ProjectXError
from projectx_lab.client.redaction import REDACTED, REDACTOR
from projectx_lab.realtime.redact import install_log_redaction, redact

ACCOUNTS = "/api/Account/search"
PLACE = "/api/Order/place"


async def test_secrets_never_leak(sim, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = await make_client(sim, timeout=0.3, order_lookup_timeout=0.2, retry_attempts=2)
    await client.authenticate()
    tokens = {client.session_token}
    sim.faults.expire_all_tokens()
    await client.list_accounts()  # 401 -> re-login
    tokens.add(client.session_token)
    assert len(tokens) == 2 and None not in tokens

    errors: list[BaseException] = []
    bad_key = "wrong-key-0123456789"
    async with ProjectX.for_simulator(sim, api_key=bad_key) as bad:
        with pytest.raises(ProjectXError) as info:
            await bad.authenticate()
        errors.append(info.value)
        texts = [repr(bad), str(bad), repr(bad.settings)]
    sim.faults.fail_next(PLACE, 1, 503)
    sim.faults.fail_next(ACCOUNTS, 5, 500)
    for call in (
        lambda: client.place_order("MNQ", side="buy", size=1),
        client.list_accounts,
    ):
        with pytest.raises(ProjectXError) as info:
            await call()
        errors.append(info.value)
    sim.faults.swallow_next(ACCOUNTS, count=5)
    with pytest.raises(ProjectXError) as info:
        await client.list_accounts()
    errors.append(info.value)

    session = client._session
    texts += [
        repr(client),
        str(client),
        repr(client.settings),
        repr(session),
        repr(session.auth),
        repr(session.transport),
        repr(session.limiter),
        repr(client.stats),
        repr(client.account_info),
        repr(await client.get_health_status()),
    ]
    texts += ["".join(traceback.format_exception(e)) for e in errors]
    texts += [repr(e) for e in errors]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    assert any("httpcore" in r.name for r in caplog.records)  # the HTTP stack did log at DEBUG
    for secret in (*tokens, sim.api_key, bad_key):
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"secret leaked into: {leaks[0][:300]}"


async def test_http_stack_records_are_scrubbed_or_dropped(client, caplog):
    caplog.set_level(logging.DEBUG)
    token = client.session_token
    header = [(b"authorization", f"Bearer {token}".encode())]
    logging.getLogger("httpcore.http11").debug("send_request_headers headers=%r", header)
    logging.getLogger("httpx").info("token %s in a message", token)
    logging.getLogger("hpack.hpack").debug("Encoded header block to %s", token.encode())
    messages = [r.getMessage() for r in caplog.records]
    assert not any(token in m for m in messages)
    assert sum(REDACTED in m for m in messages) == 2
    assert not any(r.name == "hpack.hpack" for r in caplog.records)


async def test_one_redactor_covers_rotated_tokens_on_the_realtime_path(sim, client, caplog):
    """The session token, and the one it replaced, are masked in the real-time stack's logs and
    error texts too (signalrcore's logger included), not just on the HTTP path."""
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    old = client.session_token
    sim.faults.expire_all_tokens()
    await client.list_accounts()  # 401 -> re-login: `old` is retired
    new = client.session_token
    assert new != old
    for name in ("SignalRCoreClient", "projectx_lab.realtime", "websockets.client"):
        logging.getLogger(name).debug("frame headers %s / %s", old, new)
    messages = [r.getMessage() for r in caplog.records if r.name != "httpcore.http11"]
    assert sum(m.count(REDACTED) for m in messages if "frame headers" in m) == 6
    assert old not in redact(f"late error quoting {old}") and new not in redact(new)
    REDACTOR.add("k")  # a placeholder key, as in a test: masking it would mangle every "k"
    try:
        assert redact("keep the kernel") == "keep the kernel"
    finally:
        REDACTOR.discard("k")
