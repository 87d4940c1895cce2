"""Gemini contract, requests: canonical requests → the exact URL, headers and body Gemini
expects; embeddings and key validation both ways. `ReplayTransport` answers; no sockets."""

from __future__ import annotations

import base64
import struct

import pytest

from gatewise.errors import AuthenticationError, InvalidRequestError, ProviderResponseError
from gatewise.providers.base import Target
from gatewise.providers.gemini.adapter import GeminiAdapter
from gatewise.transport.base import Timeouts
from gatewise.transport.replay import Recorded
from gatewise.types.validation import embedding_request_from_dict
from tests.contract.gemini.recording import (
    BASE,
    SIG,
    SSE,
    chat_request,
    gemini_target,
    plain,
    recorded,
    replay,
    sent_json,
)

# --- requests ----------------------------------------------------------------------------------

async def test_a_full_conversation_becomes_the_exact_generate_content_request():
    sig_id = f"call-5e1c0a__thought__{SIG}"
    req = chat_request([
        {"role": "system", "content": "You are a weather bot."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in Celsius."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What is the weather here?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photos/paris.jpg"}},
        ]},
        {"role": "user", "content": "And in Tokyo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": sig_id, "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'}},
        ]},
        {"role": "tool", "tool_call_id": sig_id, "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "09:30"},
        {"role": "user", "content": "Thanks!"},
    ], tools=[
        {"type": "function", "function": {
            "name": "get_weather", "description": "Current weather", "strict": True,
            "parameters": {"$schema": "http://json-schema.org/draft-07/schema#",
                           "type": "object", "additionalProperties": False,
                           "properties": {"location": {"type": "string", "format": "uri"},
                                          "unit": {"type": ["string", "null"],
                                                   "enum": ["celsius", "fahrenheit"]}},
                           "required": ["location"]}}},
        {"type": "function", "function": {"name": "get_time",
                                          "parameters": {"type": "object", "properties": {}}}},
    ], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0.2, top_p=0.9, max_tokens=256, stop="END", seed=7, n=2,
        presence_penalty=0.5, frequency_penalty=0.25, user="u-1")
    client, transport = replay(Recorded(body=recorded("chat_text.json")))
    await client.chat(req, gemini_target(timeouts=Timeouts(total=30.0, connect=2.0, read=10.0)))
    sent = transport.requests[0]
    assert sent.method == "POST"
    assert sent.url == f"{BASE}/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers == {"content-type": "application/json",
                            "x-goog-api-key": "AIzaSyD-test-key"}
    assert sent.timeouts == Timeouts(total=30.0, connect=2.0, read=10.0)
    assert sent_json(transport) == {
        "contents": [
            {"role": "user", "parts": [
                {"text": "What is the weather here?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"fileUri": "https://example.com/photos/paris.jpg",
                              "mimeType": "image/jpeg"}},
                {"text": "And in Tokyo?"},
            ]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                 "thoughtSignature": SIG},
                {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Tokyo"}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "09:30"}}},
                {"text": "Thanks!"},
            ]},
        ],
        "systemInstruction": {"parts": [{"text": "You are a weather bot."},
                                        {"text": "Answer in Celsius."}]},
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Current weather",
             "parameters": {"type": "OBJECT", "properties": {
                 "location": {"type": "STRING"},
                 "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"], "nullable": True},
             }, "required": ["location"]}},
            {"name": "get_time"},
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                 "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256,
                             "stopSequences": ["END"], "seed": 7, "candidateCount": 2,
                             "presencePenalty": 0.5, "frequencyPenalty": 0.25},
    }


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("required", "ANY"),
                                              ("none", "NONE")])
async def test_tool_choice_becomes_a_function_calling_mode(choice, mode):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}}}}}]
    client, transport = replay(Recorded(body=recorded("chat_text.json")))
    await client.chat(chat_request(tools=tools, tool_choice=choice), gemini_target())
    assert sent_json(transport)["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


async def test_json_object_output_asks_for_the_json_mime_type_only():
    client, transport = replay(Recorded(body=recorded("chat_text.json")))
    await client.chat(chat_request(response_format={"type": "json_object"}), gemini_target())
    assert sent_json(transport)["generationConfig"] == {"responseMimeType": "application/json"}


async def test_json_schema_output_is_converted_to_gemini_response_schema():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "additionalProperties": False,
        "properties": {
            "city": {"$ref": "#/$defs/City"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "kind": {"const": "report"},
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        "required": ["city", "tags", "kind", "score"],
        "$defs": {"City": {"type": "object", "properties": {"name": {"type": "string"}},
                           "required": ["name"], "additionalProperties": False}},
    }
    req = chat_request(response_format={"type": "json_schema", "json_schema": {
        "name": "report", "strict": True, "schema": schema}})
    client, transport = replay(Recorded(body=recorded("chat_text.json")))
    await client.chat(req, gemini_target())
    assert sent_json(transport)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {
            "city": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}},
                     "required": ["name"]},
            "tags": {"type": "ARRAY", "maxItems": 3, "items": {"type": "STRING"}},
            "kind": {"type": "STRING", "enum": ["report"]},
            "score": {"type": "NUMBER", "nullable": True},
        }, "required": ["city", "tags", "kind", "score"]},
    }


async def test_audio_and_file_parts_become_inline_data_or_file_data():
    req = chat_request([{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x",
                                  "filename": "a.pdf"}},
        {"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/"
                                             "v1beta/files/abc123"}},
    ]}])
    client, transport = replay(Recorded(body=recorded("chat_text.json")))
    await client.chat(req, gemini_target())
    assert sent_json(transport)["contents"] == [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
    ]}]


async def test_target_params_fill_unset_fields_and_pass_native_gemini_settings_through():
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    target = gemini_target(params={"temperature": 0.1, "max_tokens": 50, "topK": 40,
                             "thinkingConfig": {"thinkingBudget": 0}, "safetySettings": safety})
    client, transport = replay(Recorded(body=recorded("chat_text.json")))
    await client.chat(chat_request(temperature=0.7), target)
    sent = sent_json(transport)
    assert sent["safetySettings"] == safety
    assert sent["generationConfig"] == {"temperature": 0.7, "maxOutputTokens": 50, "topK": 40,
                                        "thinkingConfig": {"thinkingBudget": 0}}


@pytest.mark.parametrize("base", [BASE, BASE + "/", BASE + "/v1beta", BASE + "/v1beta/"])
async def test_the_key_goes_in_a_header_and_never_in_the_url(base):
    target = Target(provider="gemini", wire="gemini", model="models/gemini-2.0-flash",
                    api_base=base, api_key="AIzaSyD-secret", auth="x-goog-api-key",
                    headers={"x-goog-user-project": "proj-1"})
    client, transport = replay(Recorded(headers=SSE, body=recorded("stream_text.sse")))
    [c async for c in client.stream(chat_request(stream=True), target)]
    sent = transport.requests[0]
    assert sent.url == f"{BASE}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert "AIzaSyD-secret" not in sent.url
    assert sent.headers == {"content-type": "application/json",
                            "x-goog-api-key": "AIzaSyD-secret",
                            "x-goog-user-project": "proj-1"}


# --- embeddings and key validation ---------------------------------------------------------------

async def test_one_input_is_embedded_with_embed_content():
    client, transport = replay(Recorded(body=recorded("embed_content.json")))
    req = embedding_request_from_dict({"model": "e", "input": "hello world", "dimensions": 8})
    out = await client.embed(req, gemini_target("gemini-embedding-001"))
    sent = transport.requests[0]
    assert sent.url == f"{BASE}/v1beta/models/gemini-embedding-001:embedContent"
    assert sent.headers["x-goog-api-key"] == "AIzaSyD-test-key"
    assert sent_json(transport) == {"model": "models/gemini-embedding-001",
                                "content": {"parts": [{"text": "hello world"}]},
                                "outputDimensionality": 8}
    assert plain(out) == {
        "object": "list", "model": "gemini-embedding-001",
        "data": [{"object": "embedding", "index": 0, "embedding": [
            -0.022374554, -0.0032057497, 0.004930043, -0.08312152, 0.016189424, 0.010432591,
            -0.0014872913, 0.02146037]}],
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


async def test_several_inputs_are_embedded_with_batch_embed_contents_in_order():
    client, transport = replay(Recorded(body=recorded("batch_embed_contents.json")))
    req = embedding_request_from_dict({"model": "e", "input": ["first", "second"]})
    out = await client.embed(req, gemini_target("text-embedding-004"))
    assert transport.requests[0].url == \
        f"{BASE}/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent_json(transport) == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "first"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "second"}]}},
    ]}
    assert [(e.index, e.embedding) for e in out.data] == [
        (0, [-0.022374554, -0.0032057497, 0.004930043, -0.08312152]),
        (1, [0.0057812557, -0.011392498, -0.017206065, -0.06535452]),
    ]


async def test_base64_embeddings_are_little_endian_float32():
    client, _ = replay(Recorded(body=recorded("batch_embed_contents.json")))
    req = embedding_request_from_dict({"model": "e", "input": ["a", "b"],
                                       "encoding_format": "base64"})
    out = await client.embed(req, gemini_target("text-embedding-004"))
    first = out.data[0].embedding
    assert isinstance(first, str)
    assert struct.unpack("<4f", base64.b64decode(first)) == pytest.approx(
        (-0.022374554, -0.0032057497, 0.004930043, -0.08312152), rel=1e-6)


async def test_token_id_inputs_are_refused_before_any_request():
    client, transport = replay(Recorded(body=recorded("embed_content.json")))
    req = embedding_request_from_dict({"model": "e", "input": [[1, 2, 3]]})
    with pytest.raises(InvalidRequestError):
        await client.embed(req, gemini_target("text-embedding-004"))
    assert transport.requests == []


async def test_a_count_mismatch_in_embeddings_is_a_bad_response():
    client, _ = replay(Recorded(body=recorded("embed_content.json")))
    req = embedding_request_from_dict({"model": "e", "input": ["a", "b"]})
    with pytest.raises(ProviderResponseError):
        await client.embed(req, gemini_target("text-embedding-004"))


async def test_validate_key_lists_models_with_the_key_header():
    client, transport = replay(Recorded(body=recorded("models_list.json")))
    await client.validate_key(gemini_target())
    sent = transport.requests[0]
    assert (sent.method, sent.url, sent.body) == ("GET", f"{BASE}/v1beta/models", None)
    assert sent.headers == {"x-goog-api-key": "AIzaSyD-test-key"}


async def test_validate_key_with_an_invalid_key_raises_authentication_error():
    client, _ = replay(Recorded(status=400, body=recorded("error_400_api_key_invalid.json")))
    with pytest.raises(AuthenticationError):
        await client.validate_key(gemini_target())


def test_capabilities_follow_the_model_family():
    adapter = GeminiAdapter()
    flash = adapter.capabilities("gemini-2.5-flash")
    assert (flash.chat, flash.tools, flash.vision, flash.json_schema, flash.embeddings) == \
        (True, True, True, True, False)
    assert flash.context_window == 1_048_576
    assert adapter.capabilities("models/gemini-1.5-pro-002").context_window == 2_097_152
    embed = adapter.capabilities("gemini-embedding-001")
    assert (embed.chat, embed.streaming, embed.embeddings) == (False, False, True)
    assert adapter.capabilities("gemma-3-27b-it").tools is False
