"""OpenAI-compatible reference server on llama-cpp-python: the suite's known-good target."""

from __future__ import annotations

import atexit

from llama_cpp import _utils as _llama_utils

from reference_server.app import create_app
from reference_server.embedded import serve_in_thread
from reference_server.engine import Engine

__all__ = ["Engine", "create_app", "serve_in_thread"]

# llama_cpp opens os.devnull twice when imported (to silence model loading) and never closes it, so every
# process that loaded it ended with "ResourceWarning: unclosed file" under pytest; they are only used while
# a model loads, which is over by exit.
atexit.register(_llama_utils.outnull_file.close)
atexit.register(_llama_utils.errnull_file.close)
