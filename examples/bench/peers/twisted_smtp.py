"""Twisted's ESMTP server with Cred: an in-memory checker, AUTH PLAIN (and
LOGIN), a realm that hands out a message-delivery avatar which accepts and
drops messages. A peer for examples/bench.

    python twisted_smtp.py PORT USER PASS
"""
import sys

from zope.interface import implementer
from twisted.cred import checkers, portal
from twisted.internet import defer, protocol, reactor
from twisted.mail import smtp
from twisted.mail.imap4 import LOGINCredentials, PLAINCredentials


@implementer(smtp.IMessage)
class Discard:
    def lineReceived(self, line):
        pass

    def eomReceived(self):
        return defer.succeed(None)

    def connectionLost(self):
        pass


@implementer(smtp.IMessageDelivery)
class Delivery:
    def receivedHeader(self, helo, origin, recipients):
        return b"Received: by the benchmark's Twisted peer"

    def validateFrom(self, helo, origin):
        return origin

    def validateTo(self, user):
        return lambda: Discard()


@implementer(portal.IRealm)
class Realm:
    def requestAvatar(self, avatar_id, mind, *interfaces):
        if smtp.IMessageDelivery in interfaces:
            return smtp.IMessageDelivery, Delivery(), lambda: None
        raise NotImplementedError()


class Factory(protocol.ServerFactory):
    def __init__(self, the_portal):
        self.portal = the_portal

    def buildProtocol(self, addr):
        proto = smtp.ESMTP(
            {b"LOGIN": LOGINCredentials, b"PLAIN": PLAINCredentials}
        )
        proto.factory = self
        proto.portal = self.portal
        proto.host = b"twisted.bench.invalid"
        return proto


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser(user.encode(), password.encode())
    the_portal = portal.Portal(Realm(), [checker])
    reactor.listenTCP(port, Factory(the_portal), backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
