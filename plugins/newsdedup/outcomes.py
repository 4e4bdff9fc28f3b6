"""What a request came to: the outcome vocabulary of crawl_log, the fetch result, and the retry rule."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(enum.StrEnum):
    """Every value crawl_log.outcome (and FetchResult.outcome) can take; docs/schema.md lists them."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    HTTP_ERROR = "http_error"
    ROBOTS_DISALLOWED = "robots_disallowed"
    ADDRESS_REFUSED = "address_refused"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    REDIRECT_ERROR = "redirect_error"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    INVALID_URL = "invalid_url"
    DEFERRED = "deferred"  # not sent: the host asked us to back off or keeps failing (HostHealth), or out of time
    PARSE_ERROR = "parse_error"  # fetched, but not a usable feed or sitemap (set by newsdedup.sources)
    TRUNCATED = "truncated"  # a feed or sitemap listing more entries than its cap: the newest were read
    EXTRACT_FAILED = "extract_failed"  # a staged page that yielded no article (newsdedup.process)
    GIVEN_UP = "given_up"  # extract_failed again, and the URL is given up (page_failures.settle)


# A request that read its resource or learnt it unchanged: every other outcome is an error (a SQL parameter:
# `outcome = ANY(%s)`, `outcome <> ALL(%s)`).
SUCCEEDED = [Outcome.OK, Outcome.NOT_MODIFIED]


# Only these failures without a response are retried within a request: they say nothing about the resource.
TRANSIENT_ERROR_CLASSES = frozenset({"ConnectionError", "ConnectTimeout"})
# Failures without a response that a later run may not meet again.
_UNREACHED = frozenset({Outcome.TIMEOUT, Outcome.CONNECTION_ERROR})


@dataclass
class FetchResult:
    """Everything the pipeline needs to know about one fetch, successful or not."""

    url: str
    final_url: str
    outcome: str
    status: int | None = None
    body: bytes | None = None
    text: str | None = None
    content_type: str | None = None
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    cache_control: str | None = None  # the response's Cache-Control header (a feed's max-age: newsdedup.polling)
    retry_after: float | None = None
    nbytes: int = 0
    elapsed_ms: int = 0
    error_class: str | None = None
    error_message: str | None = None
    attempts: int = 1
    # robots.txt fetches this request caused (at most one per origin and cache period), for crawl_log.
    robots: list[FetchResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the body was fetched and kept."""
        return self.outcome == Outcome.OK


def failed(url: str, final_url: str, outcome: Outcome, error_class: str, message: str, **fields: object) -> FetchResult:
    """The FetchResult of a request that failed (status, nbytes, ... as keyword fields)."""
    return FetchResult(
        url=url, final_url=final_url, outcome=outcome, error_class=error_class, error_message=message, **fields
    )


def retryable_status(status: int | None) -> bool:
    """429 and 5xx, except 501 (Not Implemented: asking again gets the same answer)."""
    status = status or 0
    return status == 429 or (500 <= status < 600 and status != 501)


def worth_retry(result: FetchResult, *, later: bool = False) -> bool:
    """The one retry rule: is this failure worth another try now (within the request) or in a later run?

    Now: 429/5xx (not 501), refused or timed-out connects. A later run also retries any timeout or
    connection error (the site may be back) and requests deferred by a back-off or the time budget.
    """
    if result.outcome == Outcome.HTTP_ERROR:
        return retryable_status(result.status)
    if result.outcome in _UNREACHED:
        return later or result.error_class in TRANSIENT_ERROR_CLASSES
    return later and result.outcome == Outcome.DEFERRED
