"""pytest plugin: with --conformance-base-url, every catalog check becomes a test; without it, nothing changes."""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.check import EXTENSIONS, Check, Item, Status, Target
from conformance.client import DEFAULT_EXCHANGE_TIMEOUT
from conformance.errors import UsageError
from conformance.findings import ConformanceFailure, Finding
from conformance.report._text import check_text, requests_text
from conformance.results import CheckResult
from conformance.runner import default_client, item_skip_reason, run_check

__all__ = ["CheckError", "CheckFailure", "CheckItem", "ConformanceWarning", "ItemCollector"]

_NO_CHECKS = "item"
"""Name of the one test standing for an item without checks (it skips)."""


class CheckError(Exception):
    """A check could not be judged (plan or verdict raised, or the server did not answer)."""


class CheckFailure(ConformanceFailure):
    """A failed check: its findings, then the requests it sent with a curl command for each."""

    def __init__(self, findings: Sequence[Finding], *, requests: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(findings)
        self.requests = tuple(requests)

    def __str__(self) -> str:
        return "\n\n".join(part for part in (super().__str__(), requests_text(self.requests)) if part)


class ConformanceWarning(UserWarning):
    """A check passed with warning-level findings (a deviation the API's documentation allows)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "LLM server conformance (llm-conformance)")
    group.addoption(
        "--conformance-base-url",
        dest="conformance_base_url",
        metavar="URL",
        help="run the conformance catalog against this server root, e.g. http://localhost:1234",
    )
    group.addoption(
        "--conformance-model",
        dest="conformance_model",
        metavar="ID",
        help="model id to test (default: the first from GET /v1/models)",
    )
    group.addoption(
        "--conformance-api-key",
        dest="conformance_api_key",
        metavar="KEY",
        help="token sent as Authorization: Bearer",
    )
    group.addoption(
        "--conformance-expect",
        dest="conformance_expect",
        action="append",
        default=[],
        choices=EXTENSIONS,
        help="a surface the server must implement (repeatable): its items fail instead of skipping when missing",
    )
    group.addoption(
        "--conformance-preset",
        dest="conformance_preset",
        metavar="NAME",
        help="a preset the server has, for 0.3.14/presets to check that naming it applies it; write "
        "--conformance-preset=@local:NAME (pytest reads a lone @ argument as a file of arguments)",
    )
    group.addoption(
        "--conformance-exchange-timeout",
        dest="conformance_exchange_timeout",
        type=float,
        default=DEFAULT_EXCHANGE_TIMEOUT,
        metavar="SECONDS",
        help=f"wall-clock limit for one request and its whole answer (default: {DEFAULT_EXCHANGE_TIMEOUT:g})",
    )
    group.addoption(
        "--conformance-only",
        dest="conformance_only",
        metavar="IDS",
        help="comma-separated item or check ids (prefixes match, e.g. 0.3.18)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "conformance_item(id): a check of this changelog item, e.g. -m \"conformance_item(id='base/models')\"",
        "conformance_version(version): a check of an item from this changelog version",
        "conformance_kind(kind): a check of an item of this kind (api, model-specific, cli)",
    ):
        config.addinivalue_line("markers", line)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Append the catalog's checks; tryfirst so that -k, -m and --deselect apply to them too."""
    if not config.getoption("conformance_base_url"):
        return
    from conformance.run import catalog, parse_only, select

    try:
        only = parse_only(config.getoption("conformance_only"), option="--conformance-only")
        chosen = select(catalog(), only or (), option="--conformance-only")
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    for item in chosen:
        items.extend(session.genitems(ItemCollector.from_parent(session, name=item.id, nodeid=item.id, item=item)))


@pytest.fixture(scope="session")
def conformance_http_client() -> Iterator[httpx.Client]:
    """The client the checks send with; override it for a proxy, custom TLS or timeouts."""
    with default_client() as client:
        yield client


@pytest.fixture(scope="session")
def conformance_target(pytestconfig: pytest.Config, conformance_http_client: httpx.Client) -> Target:
    """The server under test, from the --conformance-* options; override it to point elsewhere."""
    base_url = pytestconfig.getoption("conformance_base_url")
    if not base_url:
        pytest.skip("no --conformance-base-url given")
    from conformance.run import resolve_target

    try:
        target = resolve_target(
            conformance_http_client,
            base_url,
            model=pytestconfig.getoption("conformance_model"),
            api_key=pytestconfig.getoption("conformance_api_key"),
            option="--conformance-base-url",
        )
        return replace(
            target,
            expect=frozenset(pytestconfig.getoption("conformance_expect")),
            preset=pytestconfig.getoption("conformance_preset"),
        )
    except UsageError as exc:
        pytest.exit(f"conformance: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


class ItemCollector(pytest.Collector):
    """One changelog item; its node id is the item id, its children its checks."""

    def __init__(self, *, item: Item, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item

    def collect(self) -> Iterable[pytest.Item]:
        checks: tuple[Check | None, ...] = self.item.checks or (None,)
        for check in checks:
            name = check.id if check else _NO_CHECKS
            test = CheckItem.from_parent(
                self,
                name=name,
                callobj=_test_function(self.item, check),
                location=_source(check.verdict if check else sys.modules["conformance.catalog"]),
                domain=f"{name} ({self.item.id})",
            )
            test.add_marker(pytest.mark.conformance_item(id=self.item.id))
            test.add_marker(pytest.mark.conformance_version(version=self.item.version))
            test.add_marker(pytest.mark.conformance_kind(kind=str(self.item.kind)))
            reason = self.item.skip_reason or (None if check else "not covered: no checks yet")
            if reason:
                test.add_marker(pytest.mark.skip(reason=reason))
            test.extra_keyword_matches.update({self.item.id, test.nodeid})
            yield test

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.item.id


class CheckItem(pytest.Function):
    """One check as a test: fixtures as usual, failures shown as the check's evidence.

    Its location is where the check's verdict is defined; its report heading `check (item)`.
    """

    def __init__(self, *, location: tuple[Path, int], domain: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._location = location
        self._domain = domain

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]  # Function drops Node's `style`
        if isinstance(excinfo.value, ConformanceFailure | CheckError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self._location[0], self._location[1], self._domain


def _test_function(item: Item, check: Check | None) -> Callable[[Target, httpx.Client, pytest.Config], None]:
    def test(conformance_target: Target, conformance_http_client: httpx.Client, pytestconfig: pytest.Config) -> None:
        __tracebackhide__ = True
        reason = item_skip_reason(item, conformance_target.model)
        if reason is not None:
            # As pytest's own skip marks do: report the check's location, not this line.
            raise pytest.skip.Exception(reason, _use_item_location=True)
        assert check is not None, "check-less items carry a skip mark"
        timeout = pytestconfig.getoption("conformance_exchange_timeout")
        _raise_for(run_check(conformance_http_client, conformance_target, check, timeout=timeout, item=item))

    test.__name__ = f"test_{check.id if check else _NO_CHECKS}"
    return test


def _source(obj: Any) -> tuple[Path, int]:
    """File and 0-based line where a verdict (or the catalog) is defined: the test's location in reports."""
    try:
        path = inspect.getsourcefile(obj)
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        path, line = None, 0
    return Path(path or __file__), max(line - 1, 0)


def _raise_for(result: CheckResult) -> None:
    __tracebackhide__ = True
    if result.status == Status.SKIP:
        pytest.skip(result.message)
    if result.status == Status.FAIL:
        raise CheckFailure([Finding(**dict(e)) for e in result.evidence], requests=result.requests)
    if result.status == Status.ERROR:
        raise CheckError(f"{result.message}\n\n{check_text(result.evidence, result.requests)}".rstrip())
    if result.warnings:
        warnings.warn(ConformanceWarning(check_text(result.warnings, result.requests)), stacklevel=1)
