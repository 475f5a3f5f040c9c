"""Changelog item ids the rules enforce (the catalog's public ids, shared so both spell them alike)."""

from __future__ import annotations

__all__ = [
    "ANTHROPIC_MESSAGES",
    "AUTH_TOKENS",
    "BASE_CHAT",
    "BASE_COMPLETIONS",
    "BASE_ERRORS",
    "BASE_MODELS",
    "BASE_STREAMING",
    "EMBEDDINGS",
    "FINISH_REASON_TOOL_CALLS",
    "MODEL_CAPABILITIES",
    "NO_EMPTY_FUNCTION_NAME",
    "PARALLEL_TOOL_CALLS_CHUNKED",
    "PARALLEL_TOOL_CALLS_STREAM",
    "PRESETS",
    "REASONING_CONTENT",
    "REASONING_FIELD",
    "RESPONSES",
    "RESPONSES_FUNCTION_TOOLS",
    "RESPONSES_REASONING_EFFORT",
    "RESPONSES_REMOTE_MCP",
    "RESPONSES_STATEFUL",
    "RESPONSES_STREAMING",
    "RESPONSE_FORMAT_TEXT",
    "REST_V1_CHAT",
    "REST_V1_MCP",
    "REST_V1_MODELS",
    "SPECULATIVE_DECODING",
    "STREAMED_TOOL_ARGUMENTS",
    "STREAM_ERRORS",
    "STREAM_INCLUDE_USAGE",
    "STREAM_USAGE_CORRECT",
    "STRUCTURED_OUTPUT",
    "TOOLS_REQUEST_ROBUSTNESS",
    "TOOLS_WITHOUT_PARAMETERS",
    "TOOL_CALLING",
    "TOOL_CHOICE",
    "TOOL_NAME_NORMALIZATION",
    "TOOL_SCHEMA_DEFS",
    "TTL",
    "USAGE_INCLUDES_SYSTEM_AND_TOOLS",
]

BASE_CHAT = "base/chat-completions"
BASE_STREAMING = "base/chat-streaming"
BASE_MODELS = "base/models"
BASE_ERRORS = "base/errors"
BASE_COMPLETIONS = "base/completions"
STRUCTURED_OUTPUT = "base/structured-output"
TOOL_CALLING = "0.3.6/tool-calling"
TTL = "0.3.9/ttl"
REASONING_CONTENT = "0.3.9/reasoning-content"
SPECULATIVE_DECODING = "0.3.10/speculative-decoding"
PRESETS = "0.3.14/presets"
TOOL_CHOICE = "0.3.15/tool-choice"
FINISH_REASON_TOOL_CALLS = "0.3.15/finish-reason-tool-calls"
MODEL_CAPABILITIES = "0.3.16/model-capabilities"
NO_EMPTY_FUNCTION_NAME = "0.3.16/no-empty-function-name"
USAGE_INCLUDES_SYSTEM_AND_TOOLS = "0.3.17/usage-includes-system-and-tools"
STREAMED_TOOL_ARGUMENTS = "0.3.17/streamed-tool-arguments"
TOOLS_WITHOUT_PARAMETERS = "0.3.17/tools-without-parameters"
STREAM_INCLUDE_USAGE = "0.3.18/stream-include-usage"
STREAM_ERRORS = "0.3.18/stream-errors"
RESPONSE_FORMAT_TEXT = "0.3.18/response-format-text"
PARALLEL_TOOL_CALLS_CHUNKED = "0.3.18/parallel-tool-calls-chunked"
TOOL_SCHEMA_DEFS = "0.3.18/tool-schema-defs"
STREAM_USAGE_CORRECT = "0.3.19/stream-usage-correct"
PARALLEL_TOOL_CALLS_STREAM = "0.3.19/parallel-tool-calls-stream"
REASONING_FIELD = "0.3.23/reasoning-field"
TOOL_NAME_NORMALIZATION = "0.3.23/tool-name-normalization"
TOOLS_REQUEST_ROBUSTNESS = "0.3.23/tools-request-robustness"
EMBEDDINGS = "0.3.25/embeddings"
ANTHROPIC_MESSAGES = "0.4.1/anthropic-messages"
RESPONSES = "0.3.29/responses"
RESPONSES_STATEFUL = "0.3.29/responses-stateful"
RESPONSES_STREAMING = "0.3.29/responses-streaming"
RESPONSES_FUNCTION_TOOLS = "0.3.29/responses-function-tools"
RESPONSES_REMOTE_MCP = "0.3.29/responses-remote-mcp"
RESPONSES_REASONING_EFFORT = "0.3.29/responses-reasoning-effort"
REST_V1_MODELS = "0.4.0/rest-v1-models"
REST_V1_CHAT = "0.4.0/rest-v1-chat"
REST_V1_MCP = "0.4.0/rest-v1-mcp"
AUTH_TOKENS = "0.4.0/auth-tokens"
