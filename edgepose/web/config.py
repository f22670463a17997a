"""``[http]``: the device's web page, MJPEG stream and metrics (``edgepose serve``), and ``edgepose view``.

Bound to 127.0.0.1 unless ``host`` says otherwise. Any other address needs
credentials, read from the environment (never from the file, never logged):
``token_env`` names a variable holding a bearer token, ``username`` +
``password_env`` a basic-auth pair. Browsers use basic auth; a token is also
accepted as the basic-auth password (any user name).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from ..config_base import ConfigModel
from ..errors import ConfigError
from ..net import is_loopback

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class HttpConfig(ConfigModel):
    enabled: bool = Field(
        False, description="`edgepose serve` starts the web server only when enabled (`edgepose view` always serves)."
    )
    host: str = Field("127.0.0.1", description="Address to listen on; anything but loopback needs credentials.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 picks a free one).")
    privacy: Literal["camera", "skeleton"] = Field(
        "camera",
        description="`camera`: the annotated camera; `skeleton`: skeletons on a plain background, no camera pixel leaves the process.",
    )
    stream_fps: float = Field(
        10.0, ge=0.1, le=60, description="Highest MJPEG frame rate (frames/s), whatever the camera delivers."
    )
    jpeg_quality: int = Field(70, ge=10, le=95, description="JPEG quality of the stream (higher: sharper and bigger).")
    stream_width: int = Field(
        640,
        ge=64,
        le=3840,
        description="Width of the stream in pixels (the camera frame is scaled down to it, never up).",
    )
    max_viewers: int = Field(
        4, ge=1, le=64, description="Viewers served at once; one more gets 503 (each costs a socket and a thread)."
    )
    events_kept: int = Field(100, ge=1, le=10000, description="Events kept for the page and `/api/events`.")
    token_env: str | None = Field(None, pattern=_ENV_NAME, description="Environment variable holding a bearer token.")
    username: str | None = Field(None, description="Basic-auth user; its password comes from `password_env`.")
    password_env: str | None = Field(
        None, pattern=_ENV_NAME, description="Environment variable holding the basic-auth password."
    )

    @model_validator(mode="after")
    def _pairs(self) -> HttpConfig:
        if (self.username is None) != (self.password_env is None):
            raise ValueError(
                "username and password_env go together (basic auth: the password comes from that environment variable)"
            )
        return self

    def credentials(self) -> tuple[str | None, tuple[str, str] | None]:
        """``(token, (user, password))`` from the environment; checks the binding rule.

        Raises :class:`ConfigError` when a named variable is unset, or when the
        server would listen beyond loopback with no credentials.
        """
        token = basic = None
        if self.token_env:
            token = os.environ.get(self.token_env) or None
            if token is None:
                raise ConfigError(
                    f"http.token_env names the environment variable {self.token_env}, which is not set or empty.",
                    f"export {self.token_env}=<a long random token> or remove http.token_env.",
                )
        if self.username and self.password_env:
            pw = os.environ.get(self.password_env) or None
            if pw is None:
                raise ConfigError(
                    f"http.password_env names the environment variable {self.password_env}, which is not set or empty.",
                    f"export {self.password_env}=... or remove http.username and http.password_env.",
                )
            basic = (self.username, pw)
        if not is_loopback(self.host) and token is None and basic is None:
            raise ConfigError(
                f"http.host = {self.host!r} serves beyond this machine, and no credentials are set.",
                'set http.token_env (bearer token) or http.username + http.password_env (basic auth), or keep http.host = "127.0.0.1".',
            )
        return token, basic
