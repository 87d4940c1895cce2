"""llama.cpp in process: the embedded local model that makes gatewise work offline.

Import `gatewise.providers.llamacpp.provider` for `LlamaCppProvider`; this package stays
import-light so the catalog can be read without loading llama-cpp-python.
"""

from gatewise.providers.llamacpp.catalog import CATALOG, DEFAULT_MODEL

__all__ = ["CATALOG", "DEFAULT_MODEL"]
