"""aiosmtpd with an authenticator over an in-memory user table: AUTH PLAIN
(and LOGIN) on a plain connection. A peer for examples/bench.

    python aiosmtpd_smtp.py PORT USER PASS
"""
import asyncio
import hmac
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def authenticator_for(users):
    def authenticator(server, session, envelope, mechanism, auth_data):
        # A failure must be handled=False, or aiosmtpd sends no reply.
        fail = AuthResult(success=False, handled=False)
        if not isinstance(auth_data, LoginPassword):
            return fail
        stored = users.get(auth_data.login)
        if stored is None or not hmac.compare_digest(stored, auth_data.password):
            return fail
        return AuthResult(success=True)

    return authenticator


async def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    users = {user.encode(): password.encode()}
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            Sink(),
            hostname="aiosmtpd.bench.invalid",
            authenticator=authenticator_for(users),
            auth_require_tls=False,
        )

    server = await loop.create_server(factory, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
