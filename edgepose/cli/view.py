"""``edgepose view``: a local web page showing every device on the broker, live (see edgepose/web/README.md)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from typing import Any

log = logging.getLogger("edgepose.view")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "view",
        help="fleet page: every device under the topic prefix, skeletons live in the browser",
        description="Subscribe to every device under [mqtt] topic_prefix and serve a page with a live tile per device "
        "(skeletons, online/offline) and a merged event log, pushed to the browser with Server-Sent Events. "
        "Binding and credentials as [http] of the config: 127.0.0.1 unless set; any other address needs a token.",
    )
    p.add_argument(
        "--config",
        "-c",
        help="config (TOML) whose [mqtt] gives broker, TLS, credentials and topic_prefix, and [http] the page",
    )
    p.add_argument("--broker", metavar="HOST[:PORT]", help="broker (overrides the config)")
    p.add_argument("--username", help="broker user name (overrides the config)")
    p.add_argument("--password-env", help="environment variable holding the broker password")
    p.add_argument("--http-host", help="address of the page (default: [http] host, 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="port of the page (default: [http] port, 8080)")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import ConfigError
    from ..web.fleet import FleetHub

    cfg = load_config(args.config)
    upd: dict[str, Any] = {
        k: v for k, v in (("username", args.username), ("password_env", args.password_env)) if v is not None
    }
    if args.broker:
        host, _, port = args.broker.rpartition(":") if args.broker.count(":") == 1 else (args.broker, "", "")
        if port and not port.isdigit():
            raise ConfigError(f"--broker {args.broker!r} is not HOST or HOST:PORT.", "e.g. --broker broker.lan:1883.")
        upd["host"] = host or args.broker
        if port:
            upd["port"] = int(port)
    mcfg = cfg.mqtt.model_copy(update=upd)
    http = cfg.http.model_copy(
        update={k: v for k, v in (("host", args.http_host), ("port", args.http_port)) if v is not None}
    )
    hub = FleetHub(http, mcfg, client_id=f"edgepose-view-{os.getpid()}-{int(time.time() * 1000) % 10**6}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    hub.start()
    print(f"edgepose view: {hub.url} (devices under {hub.filter} on {mcfg.host}:{mcfg.port}); Ctrl-C stops", flush=True)
    try:
        done.wait(args.timeout)
    except KeyboardInterrupt:
        pass
    finally:
        hub.close()
    return 0
