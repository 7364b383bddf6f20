"""How Relay proves itself to Kafka: the TLS context and the OAUTHBEARER token function.

Built from :class:`relay.settings.KafkaConfig` when the config loads, so a
missing CA file, a key that does not match its certificate or a token function
that cannot be imported is a config error naming the key, before anything
connects. No aiokafka here: :mod:`relay.kafka` hands these to its clients.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from relay.settings import KafkaConfig

TokenFunction = Callable[[], "str | Awaitable[str]"]

_MSK_SIGNER = "aws_msk_iam_sasl_signer.MSKAuthTokenProvider"  # PyPI: aws-msk-iam-sasl-signer-python


class KafkaAuthError(ValueError):
    """A security setting that cannot work: ``key`` names it (``kafka.ssl_cafile``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def uses_tls(config: KafkaConfig) -> bool:
    return config.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(config: KafkaConfig) -> bool:
    return config.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def tls_context(config: KafkaConfig) -> ssl.SSLContext | None:
    """The TLS context of every Kafka connection; None without TLS.

    Certificate verification is always on; ``ssl_check_hostname`` may only relax
    the name check.
    """
    if not uses_tls(config):
        return None
    try:
        context = ssl.create_default_context(cafile=config.ssl_cafile or None)
    except FileNotFoundError as exc:
        raise KafkaAuthError("kafka.ssl_cafile", f"cannot read {config.ssl_cafile}") from exc
    except ssl.SSLError as exc:
        raise KafkaAuthError(
            "kafka.ssl_cafile", f"{config.ssl_cafile} holds no PEM certificate ({exc.reason})"
        ) from exc
    context.check_hostname = config.ssl_check_hostname
    if config.ssl_certfile:
        try:
            context.load_cert_chain(
                config.ssl_certfile,
                config.ssl_keyfile or None,
                password=config.ssl_key_password or None,
            )
        except FileNotFoundError as exc:
            missing = exc.filename or f"{config.ssl_certfile} or {config.ssl_keyfile}"
            raise KafkaAuthError("kafka.ssl_certfile", f"cannot read {missing}") from exc
        except ssl.SSLError as exc:
            # Never the password itself: the reason is OpenSSL's fixed text.
            raise KafkaAuthError(
                "kafka.ssl_keyfile",
                "the client certificate and key do not load together "
                f"({exc.reason or exc}): a key that does not match, or a wrong ssl_key_password",
            ) from exc
    return context


def token_function(config: KafkaConfig) -> TokenFunction:
    """The function named by ``sasl_oauth_token_provider`` (``module:function``)."""
    spec = config.sasl_oauth_token_provider
    where = "kafka.sasl_oauth_token_provider"
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise KafkaAuthError(where, f"{spec!r} is not module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KafkaAuthError(where, f"cannot import {module_name} ({exc})") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise KafkaAuthError(where, f"{module_name} has no function {attribute}")
    if function is aws_msk_iam and importlib.util.find_spec(_MSK_SIGNER) is None:
        raise KafkaAuthError(
            where, "AWS MSK IAM needs its signer library: pip install 'webhook-relay[msk]'"
        )
    return function  # type: ignore[no-any-return]


async def fetch_token(function: TokenFunction) -> str:
    """One token from ``function``: awaited when it is a coroutine function, otherwise run
    in a thread, because token functions read credentials and may block on the network."""
    if inspect.iscoroutinefunction(function):
        token = await function()
    else:
        token = await asyncio.to_thread(function)
        if inspect.isawaitable(token):
            token = await token
    if not isinstance(token, str) or not token:
        raise TypeError("the OAUTHBEARER token function returned no token")
    return token


def aws_msk_iam() -> str:
    """A token for AWS MSK IAM authentication, signed with the credentials the AWS SDK
    finds (environment, profile, instance or pod role) for the region in ``AWS_REGION``
    (or ``AWS_DEFAULT_REGION``). Needs ``webhook-relay[msk]``; tokens last 15 minutes and
    each new connection asks for a fresh one."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise RuntimeError("AWS MSK IAM: set AWS_REGION to the cluster's region")
    signer: Any = importlib.import_module(_MSK_SIGNER)
    token, _expiry_ms = signer.generate_auth_token(region)
    return str(token)
