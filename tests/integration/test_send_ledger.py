"""The send ledger against an SMTP server that fails at each moment of the conversation.

A real loopback SMTP server (aiosmtpd) that accepts a message and then drops the connection
before its answer reaches the client reproduces SMTP's one unknowable moment: the server has
the message, the sender does not know it. The retry that follows is the activity's next attempt
(the same input, called again), which is what Temporal runs after a failed or timed-out one.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.exceptions import ApplicationError

from activities.delivery import DeliveryActivities
from journeys.channels.email import EmailSender, SmtpConfig
from journeys.channels.sms import TwilioSmsProvider
from journeys.config import Settings
from journeys.domain.runs import SendEmailInput, SendSmsInput
from journeys.embedded.process import free_port
from journeys.ingest import Ingest
from journeys.store import audiences, contacts, messages
from tests.helpers import flow_body, stored_send
from workers.worker import tracking_config


class _FlakyServer:
    """SMTP handler that misbehaves as told, once per planned fault, then accepts normally.

    Faults: `drop-after-accept` (keep the message, cut the connection before answering 250),
    `refuse-for-now` (answer 451 to the message), `drop-at-rcpt` (cut the connection when the
    recipient is given, before any DATA).
    """

    def __init__(self) -> None:
        self.faults: list[str] = []
        self.accepted: list[EmailMessage] = []

    def _take(self, *faults: str) -> str | None:
        """The next planned fault if it is one of `faults` (it is then used up)."""
        if self.faults and self.faults[0] in faults:
            return self.faults.pop(0)
        return None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._take("drop-at-rcpt"):
            server.transport.abort()  # type: ignore[union-attr]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._take("drop-after-accept", "refuse-for-now")
        if fault == "refuse-for-now":
            return "451 4.3.0 try again later"
        raw = envelope.original_content or envelope.content or b""
        self.accepted.append(
            email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[arg-type]
        )
        if fault == "drop-after-accept":
            # abort() drops the socket at once: the 250 aiosmtpd writes next never leaves.
            server.transport.abort()  # type: ignore[union-attr]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_FlakyServer, int]]:
    handler = _FlakyServer()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def delivery(pool: asyncpg.Pool, smtp: tuple[_FlakyServer, int]) -> DeliveryActivities:
    sender = EmailSender(SmtpConfig(host="127.0.0.1", port=smtp[1], timeout=10))
    return DeliveryActivities(
        pool,
        sender,
        default_from="Flows <flows@journeys.test>",
        ingest=Ingest(pool, None),
        tracking=tracking_config(Settings()),
    )


async def _send_input(pool: asyncpg.Pool, *, transactional: bool = False) -> SendEmailInput:
    audience = await audiences.create(pool, name="Ledger", timezone="UTC")
    contact, _ = await contacts.upsert(
        pool, audience_id=audience["id"], email=f"l-{uuid.uuid4().hex[:8]}@example.com"
    )
    trigger = {"type": "order_confirmation"} if transactional else {"type": "tag_added", "tag": "t"}
    steps = [
        {"id": "hello", "type": "send_email", "subject": "Hello", "text": "Hi"},
        {"id": "text", "type": "send_sms", "body": "Hi"},
    ]
    body = flow_body(audience["id"], triggers=[trigger], steps=steps)
    return await stored_send(pool, contact, body)


async def _row(pool: asyncpg.Pool, input: SendEmailInput) -> dict:
    [row] = await messages.for_contact(pool, input.contact_id)
    return row


async def _first_attempt_fails(
    delivery: DeliveryActivities, pool: asyncpg.Pool, server: _FlakyServer, fault: str
) -> tuple[SendEmailInput, ApplicationError]:
    """Sends a new marketing email once with `fault` on the server; the attempt must fail.

    Returns:
        The send's input (for the retries) and the error the attempt raised.
    """
    server.faults = [fault]
    input = await _send_input(pool)
    with pytest.raises(ApplicationError) as failed:
        await delivery.send_email(input)
    return input, failed.value


async def test_marketing_email_interrupted_after_acceptance_is_uncertain_not_resent(
    delivery: DeliveryActivities, pool: asyncpg.Pool, smtp: tuple[_FlakyServer, int]
) -> None:
    server, _ = smtp
    input, failed = await _first_attempt_fails(delivery, pool, server, "drop-after-accept")
    assert not failed.non_retryable and "connection lost during DATA" in str(failed)
    interrupted = await _row(pool, input)
    assert (interrupted["status"], interrupted["attempts"]) == ("sending", 1)
    assert interrupted["attempted_at"] is not None
    assert len(server.accepted) == 1

    # The retries: never a second copy, and the ledger says why.
    for _ in range(2):
        result = await delivery.send_email(input)
        assert result.status == "uncertain"
        assert result.message_id == interrupted["message_id"]
    row = await _row(pool, input)
    assert row["status"] == "uncertain" and "attempt 1 was interrupted" in row["error"]
    assert len(server.accepted) == 1


async def test_transactional_email_interrupted_after_acceptance_is_resent_with_same_id(
    delivery: DeliveryActivities, pool: asyncpg.Pool, smtp: tuple[_FlakyServer, int]
) -> None:
    server, _ = smtp
    server.faults = ["drop-after-accept"]
    input = await _send_input(pool, transactional=True)
    with pytest.raises(ApplicationError):
        await delivery.send_email(input)
    result = await delivery.send_email(input)
    assert result.status == "sent"
    row = await _row(pool, input)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    # Two copies reached the server, both carrying one Message-ID a mailbox can dedupe on.
    assert [m["Message-ID"] for m in server.accepted] == [row["message_id"]] * 2


async def test_a_temporary_refusal_of_the_message_is_sent_again_not_uncertain(
    delivery: DeliveryActivities, pool: asyncpg.Pool, smtp: tuple[_FlakyServer, int]
) -> None:
    server, _ = smtp
    input, failed = await _first_attempt_fails(delivery, pool, server, "refuse-for-now")
    assert "451" in str(failed)
    refused = await _row(pool, input)
    assert (refused["status"], refused["attempts"]) == ("pending", 1)
    assert "451" in refused["error"]
    assert (await delivery.send_email(input)).status == "sent"
    assert [m["Subject"] for m in server.accepted] == ["Hello"]
    assert (await _row(pool, input))["status"] == "sent"


async def test_a_connection_lost_before_data_is_sent_again_not_uncertain(
    delivery: DeliveryActivities, pool: asyncpg.Pool, smtp: tuple[_FlakyServer, int]
) -> None:
    server, _ = smtp
    input, failed = await _first_attempt_fails(delivery, pool, server, "drop-at-rcpt")
    assert "connection lost during DATA" not in str(failed)
    # The message never reached DATA: the ledger did not even mark it as being handed over.
    assert ((await _row(pool, input))["status"], len(server.accepted)) == ("pending", 0)
    assert (await delivery.send_email(input)).status == "sent"
    row = await _row(pool, input)
    assert (row["status"], row["attempts"], len(server.accepted)) == ("sent", 1, 1)


class _TwilioStandIn:
    """A loopback stand-in for Twilio's Messages endpoint that can swallow a request.

    It answers like Twilio (201, JSON with the message `sid`), except that the first `drops`
    requests are read in full and the connection is then closed without an answer.
    """

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        self.requests.append(head + await reader.readexactly(length))
        if self.drops:
            self.drops -= 1
        else:
            body = json.dumps({"sid": f"SM{len(self.requests):032x}", "status": "queued"})
            writer.write(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        writer.close()


async def _sms_input(pool: asyncpg.Pool) -> SendSmsInput:
    email_input = await _send_input(pool)
    await contacts.upsert(
        pool,
        audience_id=email_input.audience_id,
        email=(await contacts.get(pool, email_input.contact_id))["email"],  # type: ignore[index]
        phone="+15550100",
        sms_status="subscribed",
    )
    return SendSmsInput(**{**email_input.model_dump(), "step_id": "text"})


def _sms_delivery(pool: asyncpg.Pool, port: int) -> DeliveryActivities:
    twilio = TwilioSmsProvider(
        account_sid="AC" + "0" * 32,
        auth_token="token",
        from_number="+15550199",
        base_url=f"http://127.0.0.1:{port}",
    )
    sender = EmailSender(SmtpConfig(host="127.0.0.1", port=free_port()))
    return DeliveryActivities(
        pool,
        sender,
        default_from="flows@journeys.test",
        ingest=Ingest(pool, None),
        tracking=tracking_config(Settings()),
        sms=twilio,
    )


async def test_marketing_sms_whose_request_got_no_answer_is_uncertain_not_resent(
    pool: asyncpg.Pool,
) -> None:
    twilio = _TwilioStandIn(drops=1)
    server = await asyncio.start_server(twilio.handle, "127.0.0.1", 0)
    delivery = _sms_delivery(pool, server.sockets[0].getsockname()[1])
    input = await _sms_input(pool)
    async with server:
        with pytest.raises(ApplicationError) as failed:
            await delivery.send_sms(input)
        assert "did not answer" in str(failed.value)
        assert (await _row(pool, input))["status"] == "sending"
        assert (await delivery.send_sms(input)).status == "uncertain"
    assert len(twilio.requests) == 1 and b"Body=Hi" in twilio.requests[0]


async def test_sms_provider_unreachable_is_sent_later_not_uncertain(pool: asyncpg.Pool) -> None:
    port = free_port()
    delivery = _sms_delivery(pool, port)
    input = await _sms_input(pool)
    with pytest.raises(ApplicationError) as failed:
        await delivery.send_sms(input)  # nothing listens on the port yet
    assert "unreachable" in str(failed.value)
    assert (await _row(pool, input))["status"] == "pending"
    twilio = _TwilioStandIn(drops=0)
    async with await asyncio.start_server(twilio.handle, "127.0.0.1", port):
        result = await delivery.send_sms(input)
    assert (result.status, result.message_id) == ("sent", f"SM{1:032x}")
    assert (await _row(pool, input))["status"] == "sent"
