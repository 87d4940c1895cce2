"""Fake upstream servers speaking each provider's real wire format over real HTTP on 127.0.0.1."""
