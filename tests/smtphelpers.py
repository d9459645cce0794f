"""A minimal SMTP server on loopback for tests (RFC 5321 subset, no TLS).

It takes EHLO/HELO, AUTH PLAIN (any credentials, kept), MAIL, RCPT, DATA,
RSET, NOOP and QUIT, keeps every
accepted message's raw bytes, and can be told to answer a number of
transactions with a temporary (451) or permanent (550) refusal, or to drop
the connection before the greeting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


@dataclass
class Received:
    """One accepted message."""

    sender: str
    recipients: list[str]
    raw: bytes

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    """The server's state: what it received and how it misbehaves."""

    received: list[Received] = field(default_factory=list)
    temporary_failures: int = 0
    refuse_recipients: bool = False
    drop_connections: int = 0
    transcript: list[bytes] = field(default_factory=list)
    logins: list[bytes] = field(default_factory=list)  # AUTH PLAIN responses
    port: int = 0
    _server: Any = None

    async def start(self) -> SmtpServer:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        if self.drop_connections:
            self.drop_connections -= 1
            writer.close()
            return
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode("ascii") + b"\r\n")
            await writer.drain()

        await say("220 test ESMTP")
        sender, recipients = "", []
        while line := await reader.readline():
            self.transcript.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                await say("250-test")
                await say("250 AUTH PLAIN")
            elif verb == b"HELO":
                await say("250 test")
            elif verb == b"AUTH":
                self.logins.append(line.split()[-1])
                await say("235 ok")
            elif verb == b"MAIL":
                sender, recipients = line[10:].strip().decode(), []
                await say("250 ok")
            elif verb == b"RCPT":
                if self.refuse_recipients:
                    await say("550 no such user here")
                    continue
                recipients.append(line[8:].strip().decode())
                await say("250 ok")
            elif verb == b"DATA":
                await self._data(reader, say, sender, recipients)
            elif verb == b"QUIT":
                await say("221 bye")
                return
            else:  # RSET, NOOP and the rest
                await say("250 ok")

    async def _data(self, reader: asyncio.StreamReader, say: Any, sender: str,
                    recipients: list[str]) -> None:
        await say("354 go ahead")
        lines = []
        while (line := await reader.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        if self.temporary_failures:
            self.temporary_failures -= 1
            await say("451 try again later")
            return
        self.received.append(Received(sender, recipients, b"".join(lines)))
        await say("250 queued")
