"""The demo's URLs plus the probes the gunicorn tests ask."""

import json
import os
import socket

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from demo.urls import urlpatterns as demo_urlpatterns
from django_shim import bridge


def probe(request: HttpRequest) -> HttpResponse:
    """One upload call through the bridge, answered with this worker's pid and what came of it."""
    result: dict = {"pid": os.getpid()}
    try:
        result["entries"] = len(bridge.get_bridge().list_entries("probe-session"))
        result["ok"] = True
    except Exception as error:  # noqa: BLE001 - the probe reports every failure by its name
        result.update(ok=False, error=type(error).__name__, message=str(error))
    result["reactor_pid"] = bridge.reactor_pid()
    return JsonResponse(result)


def hold(request: HttpRequest) -> HttpResponse:
    """Keep this (sync) worker busy until the test sends a byte on its socket, so the next request goes elsewhere."""
    with socket.create_connection(("127.0.0.1", int(request.GET["port"])), timeout=60) as held:
        held.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        held.recv(1)
    return JsonResponse({"pid": os.getpid()})


urlpatterns = [path("probe/", probe), path("hold/", hold), *demo_urlpatterns]
