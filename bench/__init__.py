"""The benchmark behind ``make bench``: Relay end to end against the aiohttp ceiling.

Not part of the installed package and imported by nothing in ``relay``; it
uses ``relay``, the test suite's service launchers (``tests.redis_server``,
``tests.apache_kafka``) and the ``dev`` extra (matplotlib, standardwebhooks).
"""
