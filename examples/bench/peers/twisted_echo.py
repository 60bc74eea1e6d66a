"""Example 9-1 of shared/seeds/001 (Twisted Network Programming Essentials,
chapter 9): the echo server with Cred, ported to Python 3 (zope's
@implementer for implements(), bytes lines, a tuple unpacked in the body).
A peer for examples/bench.

    python twisted_echo.py PORT USER PASS
"""
import sys

from zope.interface import Interface, implementer
from twisted.cred import checkers, credentials, portal
from twisted.internet import protocol, reactor
from twisted.protocols import basic


class IProtocolAvatar(Interface):
    def logout():
        """Clean up per-login resources allocated to this avatar."""


@implementer(IProtocolAvatar)
class EchoAvatar:
    def logout(self):
        pass


class Echo(basic.LineReceiver):
    portal = None
    avatar = None
    logout = None

    def connectionLost(self, reason):
        if self.logout:
            self.logout()
            self.avatar = None
            self.logout = None

    def lineReceived(self, line):
        if not self.avatar:
            username, password = line.strip().split(b" ")
            self.tryLogin(username, password)
        else:
            self.sendLine(line)

    def tryLogin(self, username, password):
        self.portal.login(
            credentials.UsernamePassword(username, password), None, IProtocolAvatar
        ).addCallbacks(self._cbLogin, self._ebLogin)

    def _cbLogin(self, result):
        interface, avatar, logout = result
        self.avatar = avatar
        self.logout = logout
        self.sendLine(b"Login successful, please proceed.")

    def _ebLogin(self, failure):
        self.sendLine(b"Login denied, goodbye.")
        self.transport.loseConnection()


class EchoFactory(protocol.Factory):
    def __init__(self, portal):
        self.portal = portal

    def buildProtocol(self, addr):
        proto = Echo()
        proto.portal = self.portal
        return proto


@implementer(portal.IRealm)
class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        if IProtocolAvatar in interfaces:
            avatar = EchoAvatar()
            return IProtocolAvatar, avatar, avatar.logout
        raise NotImplementedError(
            "This realm only supports the IProtocolAvatar interface.")


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    realm = Realm()
    my_portal = portal.Portal(realm)
    checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser(user.encode(), password.encode())
    my_portal.registerChecker(checker)
    reactor.listenTCP(port, EchoFactory(my_portal), backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
