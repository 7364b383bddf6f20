"""Every signature decision goes through a constant-time comparison: ``hmac.compare_digest``
on bytes of the expected length (shared secrets), or the key library's own ``verify``
(RSA, Ed25519). Checked on the code path, never by timing:

- the comparison is called, on bytes, with both sides of the same length (a wrong length
  is refused before comparing: the length is not secret, it is the digest's);
- it is the only gate: when it says "no", a valid request is refused, so no ``==`` on a
  signature (which returns at the first differing byte) accepts anything on its own;
- the verifier modules never compare with ``==`` what they decode from a signature
  (read from their source, so a new ``==`` in a scheme fails here).
"""

from __future__ import annotations

import ast
import hmac
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

import verifiers
from relay.config import ProviderInstance, parse_config
from relay.samples import signed_sample
from tests.fuzz.instances import fuzz_providers
from verifiers import SignatureMismatch

CONFIG = parse_config({"providers": fuzz_providers()}, env={})
NOW = time.time()
ASYMMETRIC = {"ed25519-header", "wise", "paypal"}  # RSA with a published or named key


def uses_public_keys(instance: ProviderInstance) -> bool:
    scheme, params = instance.profile.scheme.name, instance.params
    return scheme in ASYMMETRIC or getattr(params, "algorithm", "") == "rsa-sha256"


def signed(instance: ProviderInstance) -> tuple[bytes, dict[str, str]]:
    sample = signed_sample(instance, order="ct-order", now=NOW)
    return sample.body, {name.lower(): value for name, value in sample.headers.items()}


def verify(instance: ProviderInstance, body: bytes, headers: dict[str, str]) -> None:
    instance.profile.scheme.verify(body, headers, instance.params, instance.keys, NOW)


class Spy:
    def __init__(self, answer: Callable[..., Any]) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.answer = answer

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.answer(*args)


def spying_key(key: Any, verify: Spy) -> Any:
    """``key`` behind a class of the same kind whose ``verify`` is ``verify``."""
    kind = rsa.RSAPublicKey if isinstance(key, rsa.RSAPublicKey) else ed25519.Ed25519PublicKey

    def delegate(name: str) -> Any:
        if isinstance(getattr(kind, name), property):  # key_size
            return property(lambda self: getattr(key, name))
        return lambda self, *args, **kwargs: getattr(key, name)(*args, **kwargs)

    methods = {name: delegate(name) for name in kind.__abstractmethods__}
    methods["verify"] = lambda self, *args: verify(key, *args)
    return type(f"Spying{kind.__name__}", (kind,), methods)()


def with_spying_keys(instance: ProviderInstance, verify: Spy) -> ProviderInstance:
    keys = tuple(spying_key(key, verify) for key in instance.keys.public_keys)
    return replace(instance, keys=replace(instance.keys, public_keys=keys))


@pytest.mark.parametrize("name", sorted(CONFIG.providers))
def test_signatures_are_compared_in_constant_time(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = CONFIG.providers[name]
    body, headers = signed(instance)
    if uses_public_keys(instance):
        spy = Spy(lambda key, *args: key.verify(*args))
        verify(with_spying_keys(instance, spy), body, headers)
        assert spy.calls, "the key library's verify was not called"
    else:
        spy = Spy(hmac.compare_digest)
        monkeypatch.setattr(hmac, "compare_digest", spy)
        verify(instance, body, headers)
        assert spy.calls, "hmac.compare_digest was not called"
        for provided, expected in spy.calls:
            assert isinstance(provided, bytes) and isinstance(expected, bytes)
            assert len(provided) == len(expected)


@pytest.mark.parametrize("name", sorted(CONFIG.providers))
def test_the_constant_time_comparison_is_the_only_gate(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid request whose comparison says "no" is refused: nothing else accepts it."""
    instance = CONFIG.providers[name]
    body, headers = signed(instance)
    verify(instance, body, headers)  # valid as it is
    # The signature's gate alone: a configured Authorization value (Adyen's Basic
    # credentials, Checkout.com's) is compared with compare_digest too, and refused first.
    instance = replace(instance, keys=replace(instance.keys, authorizations=()))
    if uses_public_keys(instance):

        def refuse(key: Any, *args: Any) -> None:
            raise InvalidSignature

        instance = with_spying_keys(instance, Spy(refuse))
    else:
        monkeypatch.setattr(hmac, "compare_digest", Spy(lambda a, b: False))
    with pytest.raises(SignatureMismatch):
        verify(instance, body, headers)


# --- by reading -------------------------------------------------------------------------------

VERIFIERS = Path(verifiers.__file__).parent
# Names that hold signature bytes or digests in the scheme modules.
SECRET_NAMES = {"provided", "signature", "signatures", "digest", "digests", "expected", "raw"}


def _names(node: ast.AST) -> set[str]:
    return {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}


@pytest.mark.parametrize("path", sorted(VERIFIERS.glob("*.py")), ids=lambda path: path.name)
def test_no_equality_on_signature_bytes(path: Path) -> None:
    """``==``/``!=``/``in`` exit at the first differing byte: never on a signature or digest.

    Length checks (``len(raw) != ...``) compare public sizes and are fine; ``sign`` (which
    only writes signatures) is not checked.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    offending = []
    for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
        if function.name == "sign":
            continue
        for compare in (node for node in ast.walk(function) if isinstance(node, ast.Compare)):
            if not any(
                isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in compare.ops
            ):
                continue
            operands = [compare.left, *compare.comparators]
            direct = set().union(
                *(_names(operand) for operand in operands if not _is_len_call(operand))
            )
            if direct & SECRET_NAMES:
                offending.append(f"{path.name}:{compare.lineno}: {ast.unparse(compare)}")
    assert offending == []


def _is_len_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
