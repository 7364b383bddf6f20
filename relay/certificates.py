"""PayPal's signing certificates, fetched and cached: the one request Relay makes because a
webhook asked it to.

A PayPal webhook names the certificate that verifies it (``PAYPAL-CERT-URL``), and the
URL is the sender's word. :func:`resolve_keys` is the PayPal profile's key-resolving
step (:attr:`relay.providers.base.Profile.resolve_keys`), run before the synchronous
verify, on receipt and on replay:

1. The transmission's signed headers are read and checked first
   (:func:`verifiers.paypal.read`: algorithm, fields, time within the tolerance,
   signature shape), so an unsigned request costs no fetch.
2. With a pinned certificate (the instance's ``public_keys``), nothing is fetched.
3. Else the URL must pass :func:`verifiers.paypal.certificate_url` (``https://``, an
   allow-listed host, PayPal's certificate path, no user info or IP literal): anything
   else is a 401 without a network call. A URL seen before is answered from a bounded
   cache (:data:`CACHE_SIZE` chains, least recently used dropped), checked again for
   validity at each transmission's time.
4. A miss fetches: HTTPS only, no redirects (a 3xx is a 401), at most
   ``max_certificate_bytes``, within ``fetch_timeout_s``, TLS verified against the
   system trust store or ``ca_bundle``, at most :data:`MAX_FETCHES` at once. The chain
   must then be PayPal's at the transmission time (:func:`verifiers.paypal.signer_key`).
   A fetch that fails for network reasons (timeout, refused, TLS, a 5xx) is a 503:
   PayPal retries, and nothing is accepted unverified.
5. With ``confirm_with_api``, a transmission whose signature verifies offline is also
   put to PayPal's ``POST /v1/notifications/verify-webhook-signature`` (after
   ``/v1/oauth2/token`` with the instance's client id and secret), which must answer
   ``SUCCESS``; the exact body is sent as ``webhook_event``.

Everything here answers with :class:`verifiers.VerificationError` (401) or
:class:`relay.errors.Unavailable` (503); messages name the URL's fault, never a secret.
"""

from __future__ import annotations

import base64
import functools
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace

import aiohttp
import orjson
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import Store

import verifiers.paypal
from relay.errors import Unavailable
from verifiers import SignatureMismatch, UntrustedCertificate
from verifiers.keys import KeyRing, UnusableKey, first_secret

CACHE_SIZE = 64
"""Chains kept, by URL (PayPal rotates its certificate every year or two)."""
MAX_FETCHES = 4
"""Fetches in flight at once; more is a 503 (a flood of made-up certificate URLs on
PayPal's own hosts costs PayPal's bandwidth and a few connections, never more)."""

_Chain = tuple[rsa.RSAPublicKey, tuple[x509.Certificate, ...]]
_cache: OrderedDict[tuple[str, str, str], _Chain] = OrderedDict()
_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_fetching = 0


async def resolve_keys(
    body: bytes,
    headers: Mapping[str, str],
    params: verifiers.paypal.Params,
    keys: KeyRing,
    now: float,
) -> KeyRing:
    """The key ring to verify this transmission with (module docstring)."""
    transmission = verifiers.paypal.read(headers, params, now)
    if not keys.public_keys:
        url = verifiers.paypal.certificate_url(headers, params)
        key = await certificate_key(url, params, transmission.time)
        keys = replace(keys, public_keys=(key,))
    if params.confirm_with_api:
        # Only a transmission that verifies costs a call to PayPal.
        verifiers.paypal.verify(body, headers, params, keys, now)
        await confirm(body, headers, params, keys)
    return keys


async def certificate_key(url: str, params: verifiers.paypal.Params, at: float) -> rsa.RSAPublicKey:
    """The signing key of the certificate at ``url``, PayPal's at ``at``: cached or fetched."""
    cache_key = (url, params.ca_bundle, params.cert_names)
    cached = _cache.get(cache_key)
    if cached is not None:
        _cache.move_to_end(cache_key)
        key, chain = cached
        if not verifiers.paypal.valid_at(chain, at):
            raise UntrustedCertificate(
                "the PayPal certificate is not valid at the transmission time"
            )
        return key
    fetched = verifiers.paypal.load_chain(await _fetch(url, params))
    key = verifiers.paypal.signer_key(fetched, _anchors(params.ca_bundle), params, at)
    _cache[cache_key] = (key, tuple(fetched))
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return key


async def _fetch(url: str, params: verifiers.paypal.Params) -> bytes:
    global _fetching
    if _fetching >= MAX_FETCHES:
        raise Unavailable("too many PayPal certificate fetches in flight", 1)
    _fetching += 1
    try:
        async with (
            _session(params) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status >= 500:
                raise Unavailable(f"the PAYPAL-CERT-URL answered {response.status}")
            if response.status != 200:
                raise UntrustedCertificate(f"the PAYPAL-CERT-URL answered {response.status}")
            return await _read_capped(response, params.max_certificate_bytes)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:  # ssl errors are OSErrors
        raise Unavailable(
            f"the PAYPAL-CERT-URL could not be fetched ({type(exc).__name__})"
        ) from None
    finally:
        _fetching -= 1


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise UntrustedCertificate("the PAYPAL-CERT-URL serves more than max_certificate_bytes")
    data = bytearray()
    async for chunk in response.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise UntrustedCertificate("the PAYPAL-CERT-URL serves more than max_certificate_bytes")
    return bytes(data)


async def confirm(
    body: bytes, headers: Mapping[str, str], params: verifiers.paypal.Params, keys: KeyRing
) -> None:
    """PayPal's ``verify-webhook-signature`` must answer ``SUCCESS`` for this transmission."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        raise SignatureMismatch("the body is not a JSON object PayPal's API can confirm")
    fields = {
        "auth_algo": headers[verifiers.paypal.AUTH_ALGO],
        "cert_url": headers[verifiers.paypal.CERT_URL],
        "transmission_id": headers[verifiers.paypal.TRANSMISSION_ID],
        "transmission_sig": headers[verifiers.paypal.TRANSMISSION_SIG],
        "transmission_time": headers[verifiers.paypal.TRANSMISSION_TIME],
        "webhook_id": params.webhook_id,
    }
    # The exact bytes as webhook_event (one JSON object, checked above): a re-serialized
    # event could read differently from what PayPal signed.
    request = orjson.dumps(fields)[:-1] + b',"webhook_event":' + body + b"}"
    try:
        async with _session(params) as session:
            token = await _token(session, params, keys)
            async with session.post(
                f"{params.api_base}/v1/notifications/verify-webhook-signature",
                data=request,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                if response.status >= 500 or response.status == 429:
                    raise Unavailable(
                        f"PayPal's verify-webhook-signature answered {response.status}"
                    )
                answer = await response.json(content_type=None) if response.status == 200 else {}
    except UnusableKey:
        raise  # a KeyLoadError, so a ValueError, but the instance's fault: not a 503
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        raise Unavailable(
            f"PayPal's verify-webhook-signature failed ({type(exc).__name__})"
        ) from None
    status = answer.get("verification_status") if isinstance(answer, dict) else None
    if status != "SUCCESS":
        raise SignatureMismatch("PayPal's verify-webhook-signature did not answer SUCCESS")


async def _token(
    session: aiohttp.ClientSession, params: verifiers.paypal.Params, keys: KeyRing
) -> str:
    """An OAuth access token (client credentials), kept until a minute before it expires."""
    cache_key = (params.api_base, params.client_id)
    cached = _tokens.get(cache_key)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    secret = first_secret(keys, verifiers.paypal.name).value
    credentials = base64.b64encode(params.client_id.encode() + b":" + secret).decode("ascii")
    async with session.post(
        f"{params.api_base}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {credentials}"},
        allow_redirects=False,
    ) as response:
        if response.status in (400, 401, 403):
            raise UnusableKey("PayPal refused the instance's client id and secret")
        if response.status != 200:
            raise Unavailable(f"PayPal's token endpoint answered {response.status}")
        answer = await response.json(content_type=None)
    token = answer.get("access_token") if isinstance(answer, dict) else None
    expires_in = answer.get("expires_in", 0) if isinstance(answer, dict) else 0
    if not isinstance(token, str) or not isinstance(expires_in, int):
        raise Unavailable("PayPal's token endpoint answered without an access token")
    _tokens[cache_key] = (token, time.monotonic() + max(expires_in - 60, 0))
    return token


def _session(params: verifiers.paypal.Params) -> aiohttp.ClientSession:
    # One per fetch: fetches are rare (the cache answers the rest), and a session outlives
    # no event loop. No proxy from the environment: the allow-list is the whole route.
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=params.fetch_timeout_s),
        connector=aiohttp.TCPConnector(ssl=_tls(params.ca_bundle)),
        trust_env=False,
    )


@functools.cache
def _tls(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle or None)


@functools.cache
def _anchors(ca_bundle: str) -> Store:
    """The trust anchors: ``ca_bundle``, else the system's CA file (read once)."""
    path = ca_bundle or ssl.get_default_verify_paths().cafile
    if not path:
        raise UnusableKey("no system CA file is found: set ca_bundle")
    try:
        with open(path, "rb") as file:
            return Store(x509.load_pem_x509_certificates(file.read()))
    except (OSError, ValueError) as exc:
        raise UnusableKey(f"the CA bundle {path} cannot be read ({type(exc).__name__})") from None


def clear() -> None:
    """Forget every cached chain and token (tests; a key rotation needs no call)."""
    _cache.clear()
    _tokens.clear()
    _anchors.cache_clear()
    _tls.cache_clear()
