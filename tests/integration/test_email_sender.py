"""EmailSender against a real SMTP server: connections are reused, and survive a server restart."""

from __future__ import annotations

from journeys.channels.email import EmailSender, SmtpConfig, TransientSendError, build_message
from journeys.embedded.mailcatcher import MailCatcher
from journeys.embedded.process import free_port
from tests.helpers import eventually


def _message(n: int):  # type: ignore[no-untyped-def]
    return build_message(
        sender="flows@journeys.test",
        to=f"r{n}@example.com",
        subject=f"n{n}",
        html=None,
        text="hi",
        message_id=f"<{n}@journeys.test>",
    )


async def test_sequential_sends_share_one_connection() -> None:
    with MailCatcher(port=free_port()) as mail:
        sender = EmailSender(SmtpConfig(host="127.0.0.1", port=mail.port), pool_size=4)
        for n in range(3):
            await sender.send(_message(n))
        assert len(sender._idle) == 1
        assert [m.subject for m in mail.messages] == ["n0", "n1", "n2"]
        await sender.aclose()
        assert sender._idle == []


async def test_pool_size_zero_connects_per_message() -> None:
    with MailCatcher(port=free_port()) as mail:
        sender = EmailSender(SmtpConfig(host="127.0.0.1", port=mail.port), pool_size=0)
        await sender.send(_message(1))
        assert sender._idle == []
        assert len(mail.messages) == 1


async def test_a_dropped_connection_is_replaced() -> None:
    port = free_port()
    sender = EmailSender(SmtpConfig(host="127.0.0.1", port=port, timeout=5), pool_size=2)
    with MailCatcher(port=port):
        await sender.send(_message(1))
    with MailCatcher(port=port) as mail:
        # The kept connection died with the old server: at worst one transient failure
        # (the activity retries), never a lost or permanent one.
        try:
            await sender.send(_message(2))
        except TransientSendError:
            await sender.send(_message(2))
        await eventually(lambda: [m.subject for m in mail.messages] == ["n2"])
    await sender.aclose()
