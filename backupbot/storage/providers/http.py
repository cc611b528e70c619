"""The HTTP client every provider adapter uses: httpx with timeouts, the credential in
a header (never in a URL, a log line or an error), and retries of the answers the
providers document as retryable: 429 (waiting as `Retry-After`, `X-RateLimit-Reset` or
`Ratelimit-Reset` say), 423 (Neon: operations in progress), 5xx and transport errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from backupbot.errors import ProviderError

log = logging.getLogger(__name__)

RETRYABLE = frozenset({423, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5  # doubled per attempt when the answer names no wait
    max_delay: float = 30.0  # a longer wait the provider asks for is capped at this


class ProviderHttp:
    """JSON over HTTP to one provider's API. `sleep` is injectable so tests that
    exercise waits can count them instead of sleeping."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Accept": "application/json", **headers},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """The decoded JSON body (None for an empty one). Retryable answers are retried
        per the policy; anything else that is not 2xx raises `ProviderError`."""
        for attempt in range(1, self.policy.attempts + 1):
            last = attempt == self.policy.attempts
            try:
                response = self._client.request(method, path, json=json, params=params)
            except httpx.TransportError as exc:
                if last:
                    raise ProviderError(
                        f"{self.provider}'s API could not be reached ({type(exc).__name__}) "
                        f"after {attempt} attempts; check the network and api_url",
                        permanent=False,
                    ) from None
                self._wait(attempt, None, f"{type(exc).__name__}")
                continue
            if response.status_code < 300:
                return response.json() if response.content.strip() else None
            if response.status_code in RETRYABLE and not last:
                self._wait(attempt, response, str(response.status_code))
                continue
            raise self._error(method, path, response, attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _wait(self, attempt: int, response: httpx.Response | None, why: str) -> None:
        asked = wait_asked(response.headers) if response is not None else None
        delay = self.policy.base_delay * 2 ** (attempt - 1) if asked is None else asked
        delay = min(max(delay, 0.0), self.policy.max_delay)
        log.info("%s API answered %s; retrying in %.1f s", self.provider, why, delay)
        self._sleep(delay)

    def _error(
        self, method: str, path: str, response: httpx.Response, attempts: int
    ) -> ProviderError:
        status = response.status_code
        message = error_message(response)
        tried = f" after {attempts} attempts" if status in RETRYABLE else ""
        hint = {
            401: "; check the API key (api_key) in the database's provider section",
            403: "; the API key lacks access to this project",
            404: "; check the IDs in the database's provider section",
            429: "; the provider's rate limit: try again in a minute",
        }.get(status, "")
        log.warning("%s API %s %s answered %s: %s", self.provider, method, path, status, message)
        return ProviderError(
            f"{self.provider}'s API answered {status}{tried}: {message}{hint}",
            permanent=status not in RETRYABLE,
            status=status,
        )


def wait_asked(headers: Mapping[str, str]) -> float | None:
    """Seconds the answer asks to wait: `Retry-After` (seconds or an HTTP date), else a
    rate-limit reset header. Reset headers hold seconds to wait (Supabase, Render) or a
    Unix time (Railway); a value larger than a day is read as a Unix time."""
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return float(retry_after)
        except ValueError:
            try:
                return parsedate_to_datetime(retry_after).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
    for name in ("X-RateLimit-Reset", "Ratelimit-Reset"):
        value = headers.get(name)
        if value:
            try:
                reset = float(value)
            except ValueError:
                continue
            return reset - time.time() if reset > 86_400 else reset
    return None


def error_message(response: httpx.Response) -> str:
    """The provider's own error text (`message`, or GraphQL's `errors[0].message`),
    cut to one line; the status reason when the body says nothing readable."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text: Any = None
    if isinstance(body, dict):
        text = body.get("message")
        errors = body.get("errors")
        if text is None and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = errors[0].get("message")
    if not isinstance(text, str) or not text.strip():
        text = response.reason_phrase or "no detail"
    return " ".join(text.split())[:300]
