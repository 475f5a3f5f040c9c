"""The lifecycle checks: 0.3.16/model-capabilities on real LM Studio lists, 0.3.9/ttl against a fake server with
model state and a simulated clock, 0.4.0/auth-tokens against a fake server that wants a token; each broken one way."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conformance.catalog import by_id
from conformance.catalog.auth import SURFACES
from conformance.check import Check, RequestSpec, Status, Target
from conformance.exchange import Exchange, Request, Response
from conformance.runner import CheckRun, applicable, default_client, judge_check, run_check
from conformance.verdicts import items as ids
from conformance.verdicts.auth import token_of
from tests.conformance.conftest import MODEL, TARGET, TTL_SHAPE, Wire, run_plan

NOT_EXERCISED = "not exercised: "

# GET /api/v0/models of LM Studio 0.4.25 as the research quotes it (wire-v2 section 2): the embedding row has no
# `capabilities`, and `object` comes after `data`.
LMSTUDIO_0_4_25 = {
    "data": [
        {
            "id": "qwen3.6-35b-a3b-mtp",
            "object": "model",
            "type": "vlm",
            "publisher": "unsloth",
            "arch": "qwen35moe",
            "compatibility_type": "gguf",
            "quantization": "Q3_K_M",
            "state": "loaded",
            "max_context_length": 262144,
            "loaded_context_length": 262144,
            "capabilities": ["tool_use"],
        },
        {
            "id": "text-embedding-nomic-embed-text-v1.5",
            "object": "model",
            "type": "embeddings",
            "publisher": "nomic-ai",
            "arch": "nomic-bert",
            "compatibility_type": "gguf",
            "quantization": "Q4_K_M",
            "state": "not-loaded",
            "max_context_length": 2048,
        },
    ],
    "object": "list",
}


def _item_check(item_id: str) -> tuple[Any, Check]:
    item = by_id(item_id)
    return item, item.checks[0]


def _judged_listing(body: Any, status: int = 200) -> CheckRun:
    item, check = _item_check(ids.MODEL_CAPABILITIES)
    exchange = Wire.plain(None, body, status=status, path="/api/v0/models", method="GET")
    return applicable(item, TARGET, judge_check(check, [exchange]))


# -- 0.3.16/model-capabilities ------------------------------------------------------------------------------------


def test_capabilities_pass_on_lm_studio_0_4_25_with_an_embedding_row() -> None:
    result = _judged_listing(LMSTUDIO_0_4_25).result
    assert (result.status, result.message, result.evidence) == (Status.PASS, "", ())


@pytest.mark.parametrize("kind", ["llm", "vlm", None])
def test_capabilities_fail_on_an_llm_row_without_them(kind: str | None) -> None:
    body = {"object": "list", "data": [dict(row) for row in LMSTUDIO_0_4_25["data"]]}
    del body["data"][0]["capabilities"]
    if kind is None:
        del body["data"][0]["type"]
    else:
        body["data"][0]["type"] = kind
    result = _judged_listing(body).result
    assert result.status == Status.FAIL
    assert "'capabilities' is a required property" in result.message
    [finding] = result.evidence
    assert finding["item"] == ids.MODEL_CAPABILITIES
    assert finding["pointer"] == "/data/0"
    assert "qwen3.6-35b-a3b-mtp" in finding["raw"]


def test_capabilities_of_the_wrong_type_fail_even_on_an_embedding_row() -> None:
    body = {"object": "list", "data": [dict(row) for row in LMSTUDIO_0_4_25["data"]]}
    body["data"][1]["capabilities"] = "tool_use"
    result = _judged_listing(body).result
    assert result.status == Status.FAIL
    assert result.evidence[0]["pointer"] == "/data/1/capabilities"


def test_capabilities_not_exercised_by_a_list_of_embedding_models() -> None:
    body = {"object": "list", "data": [LMSTUDIO_0_4_25["data"][1]]}
    result = _judged_listing(body).result
    assert result.status == Status.SKIP
    assert (
        result.message
        == NOT_EXERCISED + "GET /api/v0/models lists no LLM or VLM row (embedding rows need no `capabilities`)"
    )


# -- 0.3.9/ttl --------------------------------------------------------------------------------------------------

JIT = "fake-jit-model"
BIG = "fake-big-model"
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_REQUEST_SECONDS = 0.05
"""How long each fake request takes on the simulated clock."""


class LifecycleServer:
    """A fake LM Studio with model state and a simulated clock (a RequestSpec's `wait` advances it): the target's
    model is loaded for good, JIT is not loaded; a request naming JIT loads it with its `ttl`, which unloads it
    after that much idle time. `bugs` break it one way."""

    BUGS = frozenset(
        {
            "never_unloads",  # the TTL is accepted and ignored (issue 12: "a server whose models never unload")
            "reload_fails",  # the request after an unload fails instead of loading the model again
            "not_loaded_while_serving",  # the row says not-loaded right after the model answered
            "all_loaded",  # every model is loaded: nothing to JIT-load
            "no_state",  # rows without `state`
            "no_v0",  # /api/v0 answers 404
            "reject_ttl",  # 400 on `ttl`
            "slow_first_poll",  # the first poll arrives after the TTL (a loaded machine): nothing to judge there
            "bad_state",  # a loaded model's row says `state` "ready"
            "two_jit",  # a bigger not-loaded model is listed before JIT; /api/v1/models tells their sizes
            "no_v1",  # /api/v1 answers 404
        }
    )

    def __init__(self, *bugs: str) -> None:
        assert set(bugs) <= self.BUGS, set(bugs) - self.BUGS
        self.bugs = frozenset(bugs)
        self.now = 0.0
        self.loaded: dict[str, float | None] = {MODEL: None}
        """Loaded model -> its TTL (None: never unloads)."""
        self.idle_since: dict[str, float] = {}
        self.unloads = 0
        self.polls = 0
        if "all_loaded" in self.bugs:
            self.loaded[JIT] = None

    def __call__(self, spec: RequestSpec) -> Exchange:
        self.now += spec.wait
        if spec.path.startswith("/api/v0/models/") and self.polls == 0 and "slow_first_poll" in self.bugs:
            self.now += 3.0
        started = self.now
        self._expire()
        status, body = self._answer(spec)
        self.now += _REQUEST_SECONDS
        request = Request(spec.method, TARGET.base_url + spec.path, spec.path, dict(spec.headers), spec.body)
        response = Response(status, {"content-type": "application/json"}, body=body)
        started_at = (_EPOCH + timedelta(seconds=started)).isoformat()
        return Exchange(request, response, started_at=started_at, duration_ms=_REQUEST_SECONDS * 1000)

    def _expire(self) -> None:
        if "never_unloads" in self.bugs:
            return
        for key, ttl in list(self.loaded.items()):
            if ttl is not None and self.now - self.idle_since[key] >= ttl:
                del self.loaded[key]
                self.unloads += 1

    def _row(self, key: str) -> dict[str, Any]:
        row: dict[str, Any] = {"id": key, "object": "model", "type": "llm", "capabilities": ["tool_use"]}
        if "no_state" not in self.bugs:
            row["state"] = "loaded" if key in self.loaded else "not-loaded"
            if key == JIT and "not_loaded_while_serving" in self.bugs:
                row["state"] = "not-loaded"
            if key == JIT and row["state"] == "loaded" and "bad_state" in self.bugs:
                row["state"] = "ready"
        return row

    def _answer(self, spec: RequestSpec) -> tuple[int, Any]:
        if spec.path.startswith("/api/") and "no_v0" in self.bugs:
            return 404, {"error": {"message": f"Cannot {spec.method} {spec.path}", "type": "not_found_error"}}
        if spec.path == "/api/v1/models" and "no_v1" in self.bugs:
            return 404, {"error": {"message": f"Cannot GET {spec.path}", "type": "not_found_error"}}
        if spec.path == "/api/v1/models":
            sizes = {MODEL: 100_000_000, BIG: 9_000_000_000, JIT: 100_000_000}
            return 200, {"models": [{"type": "llm", "key": key, "size_bytes": size} for key, size in sizes.items()]}
        if spec.path == "/api/v0/models":
            rows = [MODEL, BIG, JIT] if "two_jit" in self.bugs else [MODEL, JIT]
            return 200, {"object": "list", "data": [self._row(key) for key in rows]}
        if spec.path.startswith("/api/v0/models/"):
            self.polls += 1
            return 200, self._row(spec.path.rsplit("/", 1)[-1])
        body = spec.body
        assert spec.method == "POST", spec
        assert isinstance(body, dict), spec
        if "reject_ttl" in self.bugs and "ttl" in body:
            return 400, {"error": {"message": "Unrecognized key: ttl", "type": "invalid_request_error"}}
        model = body["model"]
        if model not in self.loaded:
            if self.unloads and "reload_fails" in self.bugs:
                return 500, {"error": {"message": "model handle is closed", "type": "server_error"}}
            self.loaded[model] = body.get("ttl")
        self.idle_since[model] = self.now + _REQUEST_SECONDS
        return 200, Wire.completion("Hello!", usage=Wire.usage(5, 2)) | {"model": model}


def _ttl_run(*bugs: str) -> CheckRun:
    item, check = _item_check(ids.TTL)
    return applicable(item, TARGET, judge_check(check, run_plan(check, LifecycleServer(*bugs))))


def test_ttl_passes_when_the_jit_model_unloads_and_reloads() -> None:
    run = _ttl_run()
    assert (run.result.status, run.result.message, run.result.evidence) == (Status.PASS, "", ())
    requests = [(e.request.method, e.request.path) for e in run.exchanges]
    assert requests[:3] == [
        ("GET", "/api/v0/models"),
        ("POST", "/v1/chat/completions"),
        ("GET", f"/api/v0/models/{JIT}"),
    ]
    assert requests[-2:] == [("POST", "/v1/chat/completions"), ("GET", f"/api/v0/models/{JIT}")]
    jit_requests = [e.request.json for e in run.exchanges if e.request.method == "POST"]
    assert all(r["model"] == JIT and r["ttl"] == 2 and r["seed"] == 42 and r["max_tokens"] <= 8 for r in jit_requests)
    assert run.result.shape == TTL_SHAPE


def test_ttl_loads_the_smallest_not_loaded_model_when_lm_studio_tells_sizes() -> None:
    run = _ttl_run("two_jit")
    assert (run.result.status, run.result.evidence) == (Status.PASS, ())
    assert [e.request.path for e in run.exchanges[:2]] == ["/api/v0/models", "/api/v1/models"]
    assert {e.request.json.get("model") for e in run.exchanges if e.request.method == "POST"} == {JIT}
    assert run.result.shape[:3] == [["list", 200], ["sizes", 200], ["request", 200, True]]
    first_listed = _ttl_run("two_jit", "no_v1")  # sizes unknown: the first one listed
    assert {e.request.json.get("model") for e in first_listed.exchanges if e.request.method == "POST"} == {BIG}
    assert first_listed.result.status == Status.PASS


def test_ttl_polls_wait_between_them_and_give_up_after_the_deadline() -> None:
    from conformance.catalog.lifecycle import POLL_INTERVAL, UNLOAD_DEADLINE

    run = _ttl_run("never_unloads")
    polls = [e for e in run.exchanges if e.request.path == f"/api/v0/models/{JIT}"]
    assert len(polls) == 1 + int(
        UNLOAD_DEADLINE / POLL_INTERVAL
    )  # the first right after the request, then one a second
    assert run.exchanges[-1] is polls[-1]  # no further request once it never unloaded


def test_ttl_fails_when_the_model_never_unloads() -> None:
    result = _ttl_run("never_unloads").result
    assert result.status == Status.FAIL
    assert result.message.startswith(f"'{JIT}' was JIT-loaded by a request with `ttl` 2 but its row still said")
    assert "the idle TTL did not unload it" in result.message
    [finding] = result.evidence
    assert finding["item"] == ids.TTL
    assert (finding["pointer"], finding["expected"], finding["seen"]) == ("/state", "not-loaded", "loaded")
    assert finding["endpoint"] == f"/api/v0/models/{JIT}"
    assert '"state":"loaded"' in finding["raw"]


def test_ttl_fails_when_the_next_request_after_an_unload_fails() -> None:
    result = _ttl_run("reload_fails").result
    assert result.status == Status.FAIL
    [finding] = [e for e in result.evidence if e["item"] == ids.TTL]
    assert finding["message"].startswith(f"after its idle unload, the next request naming '{JIT}' failed")
    assert "500 model handle is closed" in finding["message"]
    assert finding["endpoint"] == "/v1/chat/completions"


def test_ttl_fails_when_the_state_is_wrong_while_serving() -> None:
    result = _ttl_run("not_loaded_while_serving").result
    assert result.status == Status.FAIL
    finding = result.evidence[0]
    assert finding["item"] == ids.TTL
    assert finding["message"].startswith(f"right after answering a request naming it, the row of '{JIT}' says")
    assert (finding["pointer"], finding["expected"], finding["seen"]) == ("/state", "loaded", "not-loaded")


def test_ttl_fails_on_a_state_that_is_neither_loaded_nor_not_loaded() -> None:
    run = _ttl_run("bad_state")
    assert run.result.status == Status.FAIL
    [finding] = run.result.evidence
    assert finding["message"] == f"the row of '{JIT}' has `state` 'ready'"
    assert (finding["pointer"], finding["expected"], finding["seen"]) == ("/state", ["loaded", "not-loaded"], "ready")
    assert [e.request.method for e in run.exchanges] == ["GET", "POST", "GET"]  # nothing more to learn


def test_ttl_does_not_judge_a_first_poll_that_came_after_the_ttl() -> None:
    run = _ttl_run("slow_first_poll")
    assert (run.result.status, run.result.evidence) == (Status.PASS, ())


@pytest.mark.parametrize(
    ("bugs", "reason"),
    [
        (("all_loaded",), "every model is loaded, none can be JIT-loaded"),
        (("no_state",), "GET /api/v0/models gives no `state`, so an idle unload cannot be observed"),
        (("no_v0",), "GET /api/v0/models answered 404: the server shows no model state"),
    ],
)
def test_ttl_is_not_exercised_without_a_model_to_jit_load(bugs: tuple[str, ...], reason: str) -> None:
    run = _ttl_run(*bugs)
    assert run.result.status == Status.SKIP
    assert run.result.message.startswith(NOT_EXERCISED + reason)
    # only the acceptance of `ttl` was tried, with the target's own model
    [request] = [e.request.json for e in run.exchanges if e.request.method == "POST"]
    assert (request["model"], request["ttl"]) == (MODEL, 300)


def test_ttl_refused_fails_even_where_eviction_cannot_be_observed() -> None:
    result = _ttl_run("no_v0", "reject_ttl").result
    assert result.status == Status.FAIL
    assert result.message.startswith("the request was refused (400) over its `ttl` field")
    assert result.evidence[0]["item"] == ids.TTL


# -- 0.4.0/auth-tokens ------------------------------------------------------------------------------------------

TOKEN = "sk-lm-right:token"
KEYED = replace(TARGET, api_key=TOKEN)


class TokenServer:
    """A fake server that requires TOKEN on every route, answering 401 in each surface's format; `bugs` break it."""

    BUGS = frozenset(
        {
            "wrong_token_accepted",  # any token opens the door
            "open_without_token",  # no token needed at all (auth off, or one route forgotten)
            "openai_body_on_messages",  # /v1/messages refuses with an OpenAI envelope
            "detail_body",  # 401 with a framework's {"detail": "Unauthorized"}
            "right_token_refused",  # the token given to the suite is refused
            "no_anthropic",  # /v1/messages answers 404 (no such surface): left out
            "no_lmstudio",  # /api/* answers LM Studio's "Unexpected endpoint" 200: left out
            "all_absent",  # every route answers 404
        }
    )

    def __init__(self, *bugs: str) -> None:
        assert set(bugs) <= self.BUGS, set(bugs) - self.BUGS
        self.bugs = frozenset(bugs)

    def __call__(self, spec: RequestSpec) -> Exchange:
        headers = {k.lower(): v for k, v in spec.headers.items()}
        status, body = self._answer(spec, headers)
        request = Request(spec.method, KEYED.base_url + spec.path, spec.path, headers, spec.body)
        return Exchange(request, Response(status, {"content-type": "application/json"}, body=body))

    def _answer(self, spec: RequestSpec, headers: dict[str, str]) -> tuple[int, Any]:
        if "all_absent" in self.bugs or (spec.path.startswith("/v1/messages") and "no_anthropic" in self.bugs):
            return 404, {"type": "error", "error": {"type": "not_found_error", "message": "no route"}}
        if spec.path.startswith("/api/") and "no_lmstudio" in self.bugs:
            return 200, {"error": f"Unexpected endpoint or method. ({spec.method} {spec.path})"}
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        token = bearer or headers.get("x-api-key")
        allowed = token == TOKEN and "right_token_refused" not in self.bugs
        allowed = allowed or (token is not None and "wrong_token_accepted" in self.bugs)
        allowed = allowed or "open_without_token" in self.bugs
        if not allowed:
            return 401, self._refusal(spec.path)
        if spec.path == "/v1/chat/completions":
            return 200, Wire.completion("Hello!")
        return 200, {"object": "list", "data": []} if spec.method == "GET" else {"ok": True}

    def _refusal(self, path: str) -> Any:
        message = "An API token is required"
        if "detail_body" in self.bugs:
            return {"detail": "Unauthorized"}
        if path.startswith("/v1/messages") and "openai_body_on_messages" not in self.bugs:
            return {"type": "error", "error": {"type": "authentication_error", "message": message}}
        if path.startswith("/api/v1/"):
            return {"error": {"type": "invalid_request", "code": "invalid_api_key", "message": message}}
        return {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
        }


def _auth_run(*bugs: str, target: Target = KEYED) -> CheckRun:
    item, check = _item_check(ids.AUTH_TOKENS)
    return applicable(item, target, judge_check(check, run_plan(check, TokenServer(*bugs), target)))


def _auth_findings(run: CheckRun) -> list[dict[str, Any]]:
    return [e for e in run.result.evidence if e["item"] == ids.AUTH_TOKENS]


def test_auth_passes_when_every_surface_refuses_missing_and_wrong_tokens() -> None:
    run = _auth_run()
    assert (run.result.status, run.result.message, run.result.evidence) == (Status.PASS, "", ())
    sent = [(e.request.method, e.request.path, token_of(e).value) for e in run.exchanges]
    for method, path in [(s.method, s.path) for s in SURFACES]:
        assert [t for m, p, t in sent if (m, p) == (method, path)] == ["right", "missing", "wrong"], path
    anthropic = [e.request.headers for e in run.exchanges if e.request.path == "/v1/messages"]
    assert anthropic[0]["x-api-key"] == TOKEN
    assert all("authorization" not in h for h in anthropic)


def test_auth_fails_when_a_wrong_token_is_accepted() -> None:
    run = _auth_run("wrong_token_accepted")
    assert run.result.status == Status.FAIL
    findings = _auth_findings(run)
    assert len(findings) == len(SURFACES)
    assert findings[0]["message"] == (
        "GET /v1/models with a wrong token accepted the request (200): a server that requires a token refuses it "
        "with 401"
    )
    assert (findings[0]["expected"], findings[0]["seen"], findings[0]["exchange"]) == (401, 200, 2)


def test_auth_fails_on_200_without_a_token() -> None:
    run = _auth_run("open_without_token")
    assert run.result.status == Status.FAIL
    messages = [f["message"] for f in _auth_findings(run)]
    assert "POST /v1/chat/completions without a token accepted the request (200)" in messages[2]
    assert len(messages) == 2 * len(SURFACES)


def test_auth_fails_on_a_401_in_the_wrong_format() -> None:
    run = _auth_run("openai_body_on_messages")
    assert run.result.status == Status.FAIL
    [missing, wrong] = _auth_findings(run)
    assert missing["endpoint"] == wrong["endpoint"] == "/v1/messages"
    assert missing["message"].startswith(
        "the 401 of POST /v1/messages without a token is not in the error format its clients read (Anthropic"
    )
    assert '"invalid_api_key"' in missing["raw"]
    detail = _auth_run("detail_body")
    assert len(_auth_findings(detail)) == 2 * len(SURFACES)
    assert _auth_findings(detail)[0]["pointer"] == ""


def test_auth_fails_when_the_right_token_is_refused() -> None:
    run = _auth_run("right_token_refused")
    assert run.result.status == Status.FAIL
    assert run.result.message == "GET /v1/models refused the right token with 401"


def test_auth_leaves_out_surfaces_the_server_does_not_have() -> None:
    run = _auth_run("no_anthropic", "no_lmstudio")
    assert (run.result.status, run.result.evidence) == (Status.PASS, ())
    probed = {(e.request.path, token_of(e).value) for e in run.exchanges}
    assert ("/v1/messages", "right") in probed
    assert ("/v1/messages", "missing") not in probed
    assert ("/api/v1/models", "wrong") not in probed


def test_auth_is_not_exercised_when_every_surface_is_absent() -> None:
    run = _auth_run("all_absent")
    assert run.result.status == Status.SKIP
    assert run.result.message == (
        NOT_EXERCISED + "every surface answered the right token as a route it does not have (404, 405, 501)"
    )


def test_auth_is_not_exercised_without_an_api_key() -> None:
    run = _auth_run(target=TARGET)
    assert run.exchanges == ()
    assert run.result.status == Status.SKIP
    assert run.result.message.startswith(NOT_EXERCISED + "no --api-key given")


def test_auth_passes_on_the_reference_server_with_a_token(reference_engine: Any) -> None:
    """Live: the reference server started with a token passes on every surface it has (those it lacks are left
    out); the right-token requests generate a few tokens only."""
    from reference_server.embedded import serve_in_thread
    from tests.conftest import TEST_THREADS

    item, check = _item_check(ids.AUTH_TOKENS)
    with serve_in_thread(api_key=TOKEN, threads=TEST_THREADS) as url, default_client() as client:
        target = Target(base_url=url, model=reference_engine.info.id, api_key=TOKEN)
        result = run_check(client, target, check, item=item)
    assert (result.status, result.message) == (Status.PASS, ""), result.evidence
