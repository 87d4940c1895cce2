"""LiteLLM in process: every provider gatewise has no adapter for, as `litellm/<model>`.

`gatewise.providers.litellm.provider.LiteLLMProvider` is the client; importing this package
never imports LiteLLM itself (that happens on the first call, see `provider.py`).
"""
