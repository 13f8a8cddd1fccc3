"""Fake messaging-platform servers for tests, the benchmark and rehearsals (not part of the
product: nothing in bot/, handlers/, scheduler/, storage/ or contest/ imports them).

* ``fakes.telegram``: a fake Telegram Bot API server (``python -m fakes.telegram``).
"""
