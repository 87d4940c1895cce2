"""Environment defaults that keep LiteLLM offline, set just before it is first imported.

LiteLLM reads these switches from the environment (some only at import time) and otherwise
fetches its model price map and Anthropic beta-header table from GitHub, retrying for seconds
when there is no network. gatewise is offline by default, so the bundled copies are used
unless the operator set the variables themselves (`setdefault`: an explicit value wins).
Environment writes live here because `gatewise.config` is the only package allowed to touch
`os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType

LITELLM_OFFLINE_DEFAULTS: Mapping[str, str] = MappingProxyType({
    # Import time: the model price / context-window map (litellm/__init__.py).
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # First Anthropic or Bedrock-Claude call: the beta-header support table.
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    # Proxy-side catalogues; never used in process, but set so no code path reaches out.
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
})


def apply_litellm_env_defaults() -> None:
    for name, value in LITELLM_OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
