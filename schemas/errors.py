"""The one error a normalizer raises.

An authentic message that cannot become a canonical event is not the
provider's fault to fix by retrying and must not be lost: the pipeline sends it
to the dead-letter topic with ``reason`` as the reason code.
"""

from __future__ import annotations


class NormalizationError(Exception):
    """``reason`` is a stable machine code: malformed_json, missing_field,
    invalid_amount, invalid_time, unknown_status, unknown_event_type, invalid_field,
    out_of_range (a number outside :mod:`schemas.ranges`), malformed_xml (a Braintree
    notification that cannot be read), unknown_currency."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
