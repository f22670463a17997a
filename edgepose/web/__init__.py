"""Live views: the device page of ``edgepose serve`` (``[http]``) and the fleet page of ``edgepose view``.

See edgepose/web/README.md. This package's ``__init__`` stays import-light:
``edgepose.config`` imports :mod:`edgepose.web.config` on every start.
"""
