"""Peer: the same Django multipart app, served by Twisted's WSGI container (twisted.web.wsgi on the reactor's
thread pool), which is how a Django site runs inside Twisted without our WebSocket path.

  python twisted_wsgi.py PORT      (BENCH_STORE as for django_multipart_app)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from twisted.internet import reactor  # noqa: E402
from twisted.web.server import Site  # noqa: E402
from twisted.web.wsgi import WSGIResource  # noqa: E402

from django_multipart_app import application  # noqa: E402

port = int(sys.argv[1])
resource = WSGIResource(reactor, reactor.getThreadPool(), application)
reactor.listenTCP(port, Site(resource), interface="127.0.0.1")
reactor.run()
