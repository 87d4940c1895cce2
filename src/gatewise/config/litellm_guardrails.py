"""LiteLLM guardrails → the gatewise guard policy every request runs (`guardrails.default`).

Read from the top-level `guardrails:` list (`guardrail_name` + `litellm_params.guardrail`),
the older `litellm_settings.guardrails` list (`{name: {callbacks: [...], default_on}}`) and
guard callbacks in `litellm_settings.callbacks` (`presidio`, `detect_prompt_injection`,
`lakera_prompt_injection`).

- Presidio → the PII guard: `pii_entities_config` (`MASK` → `mask`, `BLOCK` → `block`) picks
  the entity types and their action; `presidio_score_thresholds.ALL` the minimum score;
  PERSON/LOCATION/ORGANIZATION/NRP turn name recognition (spaCy) on. gatewise runs Presidio in
  process and always restores masked values in the answer (LiteLLM's `output_parse_pii`).
- Prompt-injection guards (LiteLLM's own `detect_prompt_injection`, Lakera) → gatewise's local
  injection detector, which blocks with a 400. The report says so: no request goes to Lakera.
- Everything else (Aporia, Bedrock, a vendor's service) is reported as having no equivalent.

LiteLLM runs a guardrail without `default_on: true` only for requests that name it in their
body; gatewise has no per-request opt-in, so such a guardrail runs on every request (reported).
Several guardrails of one kind merge into one guard; for an entity named twice, blocking wins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gatewise.config.litellm_common import Translation, names_list

# What the PII engine recognises (guardrails/pii/engine.py: DEFAULT_ENTITIES, NER_ENTITIES,
# OPTIONAL_ENTITIES). Config sits below guardrails and cannot import them; a unit test keeps
# the two lists equal.
DETECTABLE_ENTITIES = frozenset({
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
    "CRYPTO", "US_BANK_NUMBER", "UK_NHS", "UK_NINO", "PERSON", "LOCATION", "URL",
    "ORGANIZATION", "NRP"})
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP"})
PII_GUARDS = frozenset({"presidio"})
INJECTION_GUARDS = frozenset({"detect_prompt_injection", "lakera", "lakera_v2",
                              "lakera_prompt_injection"})
_ACTIONS = {"MASK": "mask", "BLOCK": "block"}
_INPUT_MODES = frozenset({"pre_call", "during_call"})
# Keys that mean nothing once the guard runs in process (the vendor's address and key) or
# only describe the guardrail.
_VENDOR_KEYS = frozenset({"guardrail", "mode", "default_on", "api_key", "api_base"})
_PRESIDIO_MAPPED = frozenset({"pii_entities_config", "presidio_score_thresholds",
                              "presidio_language", "output_parse_pii", "presidio_filter_scope",
                              "presidio_ad_hoc_recognizers"})
_WHY_PRESIDIO = {
    "presidio_analyzer_api_base": "gatewise runs Presidio in process; no analyzer service is "
                                  "called",
    "presidio_anonymizer_api_base": "gatewise runs Presidio in process; no anonymizer service "
                                    "is called",
    "presidio_phrase_allow_list": "gatewise has no phrase allow-list; those phrases are masked "
                                  "when detected",
    "presidio_skip_system_developer_message": "gatewise masks system and developer messages "
                                              "too",
}


def translate_guardrails(t: Translation, entries: Any) -> None:
    """The top-level `guardrails:` list."""
    if not isinstance(entries, list):
        raise t.error("must be a list of guardrails", "guardrails")
    for i, entry in enumerate(entries):
        where = f"guardrails[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("litellm_params"), dict):
            raise t.error("each guardrail needs 'guardrail_name' and 'litellm_params'", where)
        params: dict[str, Any] = entry["litellm_params"]
        kind = str(params.get("guardrail") or "")
        name = str(entry.get("guardrail_name") or kind)
        label = f"{where} ({name})"
        if not _applies(t, label, kind, params.get("mode"), bool(params.get("default_on"))):
            continue
        if kind in PII_GUARDS:
            add_pii(t, label, params, f"{where}.litellm_params")
        elif kind in INJECTION_GUARDS:
            add_injection(t, label, kind)
            extra = sorted(k for k in params if k not in _VENDOR_KEYS)
            if extra:
                t.report(label, f"{', '.join(extra)}: the local detector has no such setting")
        else:
            t.report(label, f"guardrail '{kind}' has no gatewise equivalent, not applied")
        for key in entry:
            if key not in ("guardrail_name", "litellm_params", "guardrail_info"):
                t.unsupported(f"{where}.{key}")


def translate_legacy_guardrails(t: Translation, items: Any, settings: dict[str, Any]) -> None:
    """`litellm_settings.guardrails: [{prompt_injection: {callbacks: [...], default_on}}]`."""
    where = "litellm_settings.guardrails"
    if not isinstance(items, list):
        raise t.error("must be a list of guardrails", where)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise t.error("each entry maps a guardrail name to its callbacks", f"{where}[{i}]")
        for name, spec in item.items():
            label = f"{where}[{i}] ({name})"
            spec = spec if isinstance(spec, dict) else {}
            if spec.get("logging_only"):
                t.report(label, "logging_only: gatewise logs no prompt text, so there is nothing "
                         "to mask; not applied")
                continue
            default_on = bool(spec.get("default_on", True))
            for cb in names_list(spec.get("callbacks")):
                if cb not in PII_GUARDS | INJECTION_GUARDS:
                    t.report(label, f"callback '{cb}' has no gatewise equivalent, not applied")
                elif _applies(t, label, cb, None, default_on):
                    apply_callback(t, cb, label, settings)


def apply_callback(t: Translation, name: str, label: str, settings: dict[str, Any]) -> bool:
    """A guard named as a LiteLLM callback; False when `name` is no guard gatewise has."""
    if name in PII_GUARDS:
        params = {k: v for k, v in settings.items()
                  if k.startswith("presidio_") or k == "output_parse_pii"}
        add_pii(t, label, params, "litellm_settings")
        return True
    if name in INJECTION_GUARDS:
        add_injection(t, label, name)
        return True
    return False


def translate_injection_params(t: Translation, params: Any) -> None:
    """`litellm_settings.prompt_injection_params` (for `detect_prompt_injection`)."""
    where = "litellm_settings.prompt_injection_params"
    if not isinstance(params, dict):
        raise t.error("must be a mapping", where)
    for key, value in params.items():
        if key in ("heuristics_check", "similarity_check"):
            continue  # the local detector does both, always
        if key == "llm_api_check" and not value:
            continue
        if key in ("llm_api_check", "llm_api_name", "llm_api_system_prompt",
                   "llm_api_fail_call_string"):
            t.report(f"{where}.{key}", "gatewise does not ask a model whether a prompt is an "
                     "injection; the local detector decides")
        elif key == "reject_as_response":
            t.report(f"{where}.{key}", "a detected injection is always a 400 error "
                     "(code prompt_injection_detected), never a chat answer")
        else:
            t.unsupported(f"{where}.{key}")


def _applies(t: Translation, label: str, kind: str, mode: Any, default_on: bool) -> bool:
    """Whether a guardrail becomes part of the policy, reporting what changes on the way."""
    modes = set(names_list(mode)) or {"pre_call"}
    if kind not in PII_GUARDS | INJECTION_GUARDS:
        return True  # reported by the caller
    if not modes & (_INPUT_MODES | {"post_call"}):
        t.report(label, f"mode {'/'.join(sorted(modes))}: gatewise guards chat requests only "
                 "(and logs no prompt text); not applied")
        return False
    if "post_call" in modes:
        t.report(label, "mode post_call: gatewise checks what goes to the model; the model's "
                 "answer is not scanned for this guard")
    if not default_on:
        t.report(label, "default_on is not set: LiteLLM runs it only for requests that name "
                 "it; gatewise has no per-request opt-in, so it runs on every request")
    return True


def add_injection(t: Translation, label: str, kind: str) -> None:
    t.section("guardrails", "default").setdefault("injection", {"action": "block"})
    if kind.startswith("lakera"):
        t.report(label, f"'{kind}' runs as gatewise's local injection detector, not Lakera's "
                 "service (nothing is sent to Lakera)")


def add_pii(t: Translation, label: str, params: dict[str, Any], where: str) -> None:
    pii: dict[str, Any] = t.section("guardrails", "default").setdefault("pii", {})
    entities: dict[str, str] = pii.setdefault("entities", {})
    if params.get("presidio_ad_hoc_recognizers"):
        _ad_hoc(t, pii, params["presidio_ad_hoc_recognizers"],
                f"{where}.presidio_ad_hoc_recognizers")
    known = DETECTABLE_ENTITIES | {c["entity"] for c in pii.get("custom", [])}
    config = params.get("pii_entities_config")
    if config is not None:
        if not isinstance(config, dict):
            raise t.error("must map entity types to MASK or BLOCK",
                          f"{where}.pii_entities_config")
        detect: list[str] | None = pii.setdefault("detect", [])
        for entity, action in config.items():
            name = str(entity).upper()
            mapped = _ACTIONS.get(str(action).upper())
            if mapped is None:
                raise t.error(f"'{action}' is not an action (MASK or BLOCK)",
                              f"{where}.pii_entities_config.{entity}")
            if name not in known:
                t.report(f"{where}.pii_entities_config.{entity}",
                         "gatewise's PII engine has no recognizer for this entity type")
                continue
            if entities.get(name) != "block":
                entities[name] = mapped
            if detect is not None and name not in detect:
                detect.append(name)
            if name in NER_ENTITIES:
                pii["ner"] = True
    else:
        # No entity list means every type the engine knows, even when another guardrail
        # listed some (None: the engine's defaults).
        pii["detect"] = None
    _thresholds(t, pii, params.get("presidio_score_thresholds"), where)
    language = params.get("presidio_language")
    if language is not None and str(language).lower() not in ("en", "english"):
        t.report(f"{where}.presidio_language", f"'{language}': gatewise's PII engine reads "
                 "English patterns only")
    scope = params.get("presidio_filter_scope")
    if scope in ("output", "both"):
        t.report(f"{where}.presidio_filter_scope", f"'{scope}': the model's own output is not "
                 "scanned for PII (masked inputs are restored in the answer)")
    for key in params:
        if key in _PRESIDIO_MAPPED or key in _VENDOR_KEYS:
            continue
        why = _WHY_PRESIDIO.get(key)
        if why:
            t.report(f"{where}.{key}", why)
        else:
            t.unsupported(f"{where}.{key}")
    if not entities:
        del pii["entities"]


def _thresholds(t: Translation, pii: dict[str, Any], thresholds: Any, where: str) -> None:
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise t.error("must map entity types to scores", f"{where}.presidio_score_thresholds")
    for entity, score in thresholds.items():
        if str(entity).upper() == "ALL":
            pii["min_score"] = max(float(score), float(pii.get("min_score", 0.0)))
        else:
            t.report(f"{where}.presidio_score_thresholds.{entity}", "gatewise has one minimum "
                     "score for every entity type (the ALL entry)")


def _ad_hoc(t: Translation, pii: dict[str, Any], ref: Any, where: str) -> None:
    """Presidio ad-hoc recognizers from LiteLLM's JSON file (a list, or Presidio's
    `{"ad_hoc_recognizers": [...]}`; a relative path is read next to the config file) →
    gatewise custom recognizers. gatewise gives a recognizer one score: its strongest
    pattern's. Deny-list recognizers have no equivalent."""
    base = Path(t.file).parent if t.file else Path.cwd()
    path = Path(str(ref)).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise t.error(f"cannot read {path}: {exc.strerror}", where) from None
    except ValueError as exc:
        raise t.error(f"{path} is not JSON: {exc}", where) from None
    items = data.get("ad_hoc_recognizers") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise t.error(f"{path} must hold a list of recognizers", where)
    custom: list[dict[str, Any]] = pii.setdefault("custom", [])
    for i, rec in enumerate(items):
        label = f"{where}[{i}]"
        if not isinstance(rec, dict) or not rec.get("supported_entity"):
            raise t.error("each recognizer needs 'supported_entity'", label)
        patterns = [p for p in rec.get("patterns") or [] if isinstance(p, dict) and p.get("regex")]
        if not patterns:
            t.report(f"{label} ({rec.get('name', '')})", "deny-list recognizers have no gatewise "
                     "equivalent (patterns only)")
            continue
        scores = [float(p.get("score", 0.5)) for p in patterns]
        custom.append({"name": str(rec.get("name") or rec["supported_entity"]),
                       "entity": str(rec["supported_entity"]).upper(),
                       "patterns": [str(p["regex"]) for p in patterns],
                       "context": [str(c) for c in rec.get("context") or []],
                       "score": min(1.0, max(max(scores), 0.01))})
