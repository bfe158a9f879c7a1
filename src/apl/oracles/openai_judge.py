"""The paper's oracle: an LLM judge behind any OpenAI-compatible chat-completions endpoint.

Works with OpenAI, Azure OpenAI (`azure_api_version`), vLLM, Ollama and llama.cpp's server
(`base_url`). The key is read from the environment variable `api_key_env` only, and scrubbed
from every error message. Retries are our own bounded loop (the client's `max_retries=0`), so
each one is counted, charged to the call budget and honours `Retry-After` exactly (up to
`max_retry_after_s`; a longer requested wait is an error, not early retries).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from apl.errors import ConfigError, OracleError
from apl.oracles.base import (
    ORACLES,
    JudgementCache,
    JudgeRequest,
    Oracle,
    cache_key,
    check_order_policy,
    choose_shown_order,
)
from apl.oracles.budget import Budget, SpendJournal
from apl.oracles.pricing import call_cost, resolve_price, worst_case_prompt_tokens
from apl.oracles.prompts import load_template
from apl.oracles.retry import Transient, parse_retry_after, retry_delay
from apl.oracles.verdict import combine_orders, is_order_flip, parse_verdict, unswap
from apl.types import Judgement

if TYPE_CHECKING:
    import openai  # imported where used: it takes ~1 s, and a config check needs none of it

logger = logging.getLogger(__name__)

NO_KEY = "EMPTY"  # what vLLM / llama.cpp accept when they run without authentication
_SECRETS = re.compile(r"(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+|api[-_]key[\"':= ]+\S+)", re.I)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "gsk_", "xai-", "AIza", "ghp_", "github_pat_", "Bearer")


def looks_like_key(value: str) -> bool:
    """True if `value` is not an environment-variable name, or has the shape of an API key."""
    if not _ENV_NAME.match(value) or value.startswith(_KEY_PREFIXES):
        return True
    lower, digit = any(c.islower() for c in value), any(c.isdigit() for c in value)
    # Variable names are short words with underscores; keys are long runs of mixed characters.
    return (len(value) >= 24 and "_" not in value and digit) or (
        len(value) >= 32 and lower and digit
    )


@ORACLES.register("openai_judge")
class OpenAIJudge(Oracle):
    """GPT-4 (or any chat model) comparing two completions with the paper's prompt."""

    def __init__(
        self,
        model: str = "gpt-4-1106-preview",  # the paper's oracle
        base_url: str | None = None,  # None: api.openai.com; vLLM/Ollama: http://host:port/v1
        api_key_env: str | None = "OPENAI_API_KEY",  # None: no key (a local server)
        temperature: float = 0.05,  # paper
        max_tokens: int = 256,  # one sentence + "Preferred: X"; also caps the worst-case cost
        template: str = "sentiment",  # built-in name or a template file
        template_file: str | None = None,  # overrides `template` (the task injects `template`)
        order: str = "random",  # random (paper) | fixed (always AB) | both (must agree)
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,  # caps our own backoff, never a server's Retry-After
        # A server asking for a longer wait is an error: sleeping hours inside a run helps nobody,
        # and retrying sooner only burns max_retries. 5 minutes covers per-minute rate limits.
        max_retry_after_s: float = 300.0,
        budget_usd: float | None = None,
        max_calls: int | None = None,  # HTTP requests, retries included
        prices: dict[str, tuple[float, float]] | None = None,  # model -> USD per 1M (in, out)
        azure_api_version: str | None = None,  # set for Azure OpenAI; base_url = the endpoint
        max_tokens_param: str = "max_tokens",  # "max_completion_tokens" for o-series models
        cache: JudgementCache | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(cache=cache, seed=seed)
        check_order_policy(order)
        for name, value in (
            ("temperature", temperature),
            ("timeout_s", timeout_s),
            ("max_retry_after_s", max_retry_after_s),
        ):
            if value < 0:
                raise ConfigError(f"{name} ({value}) is negative; use a value >= 0.")
        if max_tokens < 1 or concurrency < 1 or max_retries < 0:
            raise ConfigError(
                f"max_tokens ({max_tokens}), concurrency ({concurrency}) must be >= 1 and "
                f"max_retries ({max_retries}) >= 0; fix the oracle options."
            )
        self.model, self.temperature, self.max_tokens, self.order = (
            model,
            temperature,
            max_tokens,
            order,
        )
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.max_tokens_param = max_tokens_param
        self.template = load_template(template_file or template)
        self.price = resolve_price(model, prices)
        if self.price is None:
            if budget_usd is not None:
                raise ConfigError(
                    f"budget_usd ({budget_usd}) is set but model {model!r} has no price; add "
                    f"prices: {{{model}: [input_usd_per_1M, output_usd_per_1M]}}."
                )
            logger.warning("No price known for model %r: its cost is reported as $0.", model)
        self.budget = Budget(budget_usd, max_calls)
        self.base_url = base_url or "https://api.openai.com/v1"
        self.api_key_env = api_key_env
        self._key = self._read_key(api_key_env)
        self._client = self._make_client(base_url, azure_api_version, timeout_s)
        self._jitter = random.Random()
        self.judge_id = (
            f"openai_judge:{model}@{self.base_url}|tpl={self.template.digest}"
            f"|T={temperature:g}|max_tokens={max_tokens}|order={order}"
        )

    @staticmethod
    def _read_key(api_key_env: str | None) -> str:
        if not api_key_env:
            return NO_KEY
        if looks_like_key(api_key_env):  # a pasted key: refuse it without echoing it anywhere
            raise ConfigError(
                "oracle.api_key_env must be the NAME of an environment variable holding the key "
                "(e.g. OPENAI_API_KEY), and the value given is not one (not shown: it may be a "
                "key); export the key in a variable and set api_key_env to its name."
            )
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise OracleError(
                f"Environment variable {api_key_env} is not set; export it with your API key "
                "(or set api_key_env to another variable, or null for a server without auth)."
            )
        return key

    def _make_client(self, base_url: str | None, azure_version: str | None, timeout_s: float):
        import openai

        if azure_version:
            if not base_url:
                raise ConfigError(
                    "azure_api_version is set but base_url is not; set it to the Azure endpoint."
                )
            return openai.AzureOpenAI(
                api_key=self._key,
                azure_endpoint=base_url,
                api_version=azure_version,
                max_retries=0,
                timeout=timeout_s,
            )
        return openai.OpenAI(api_key=self._key, base_url=base_url, max_retries=0, timeout=timeout_s)

    def shown_order(self, request: JudgeRequest) -> str:
        """Seeded per request (see `choose_shown_order`)."""
        return choose_shown_order(self.order, self.seed, request)

    def worst_case_usd(self, request: JudgeRequest) -> float:
        """The most one call for `request` can cost: what the budget reserves before sending."""
        messages = self.template.render(request.prompt, request.completion_a, request.completion_b)
        return call_cost(self.price, worst_case_prompt_tokens(messages), self.max_tokens)

    def judge(self, request: JudgeRequest) -> Judgement:
        """Ask the model once (or once per order in `both` mode); verdict in request terms."""
        shown = self.shown_order(request)
        if shown != "both":
            return self._ask(request, shown)
        ab, ba = self._ask_once_cached(request, "AB"), self._ask_once_cached(request, "BA")
        self.stats.add(both_pairs=1, order_flips=int(is_order_flip(ab.verdict, ba.verdict)))
        return combine_orders(ab, ba)

    def _ask_once_cached(self, request: JudgeRequest, shown: str) -> Judgement:
        """One order of a `both` judgement, cached on its own: if the budget stops the second
        call, the first (paid) answer is reused by the next run instead of bought again."""
        key = cache_key(self.judge_id, request, shown)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return replace(
                hit, cost_usd=0.0, prompt_tokens=0, completion_tokens=0, latency_s=0.0, retries=0
            )
        return self._ask(request, shown)  # stores its answer under `key` itself

    def use_spend_journal(self, journal: SpendJournal) -> None:
        """Count every request in `journal` (the run's ledger) from now on."""
        self.budget.use_journal(journal)

    def _ask(self, request: JudgeRequest, shown: str) -> Judgement:
        """One judgement in one order: reserve, send, store the answer, then settle the call."""
        first, second = request.completion_a, request.completion_b
        if shown == "BA":
            first, second = second, first
        messages = self.template.render(request.prompt, first, second)
        worst_usd = call_cost(self.price, worst_case_prompt_tokens(messages), self.max_tokens)
        key = cache_key(self.judge_id, request, shown)
        for attempt in range(self.max_retries + 1):
            # Written ahead (a ledger journal commits it) before anything is sent; raises
            # BudgetExceededError instead when the call might pass a limit.
            token = self.budget.reserve(worst_usd, self.judge_id, key)
            self.stats.add(calls=1)
            charged, failed = worst_usd, True  # unknown outcome (e.g. interrupted): worst case
            started = time.monotonic()
            try:
                text, usage = self._send(messages)
                prompt_tokens, completion_tokens = usage
                charged = call_cost(self.price, *usage) if usage != (0, 0) else worst_usd
                judgement = Judgement(
                    verdict=unswap(parse_verdict(text), shown),
                    rationale=text,
                    shown_order=shown,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost_usd=charged,
                    latency_s=time.monotonic() - started,
                    judge_id=self.judge_id,
                    retries=attempt,
                )
                if self.cache is not None:
                    # Stored before the call is settled: once settled, the answer is on disk.
                    self.cache.put(key, judgement)
                failed = False
                return judgement
            except Transient as fault:
                charged = worst_usd if fault.maybe_billed else 0.0
                reason, wait_s = str(fault), fault.wait_s
            except OracleError:
                charged = 0.0  # an HTTP error status: the server did no billable work
                raise
            finally:
                self.budget.settle(token, charged, failed)
                self.stats.add_cost(charged)
            if attempt == self.max_retries:
                break
            self.stats.add(retries=1)
            delay = retry_delay(
                attempt,
                wait_s,
                self.backoff_base_s,
                self.backoff_max_s,
                self.max_retry_after_s,
                self._jitter,
                who=f"Judge {self.model} at {self.base_url}",
            )
            logger.info("Judge call failed (%s); retry %d in %.2fs", reason, attempt + 1, delay)
            time.sleep(delay)
        raise OracleError(
            f"Judge {self.model} at {self.base_url} failed after {self.max_retries} retries: "
            f"{reason}; check the server or raise max_retries."
        )

    def _send(self, messages: list[dict[str, str]]) -> tuple[str, tuple[int, int]]:
        """One HTTP request: (reply text, (prompt_tokens, completion_tokens)); (0, 0) = no usage."""
        import openai

        options = {self.max_tokens_param: self.max_tokens}
        failure: Exception | None = None
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, temperature=self.temperature, **options
            )
        except openai.APIStatusError as err:
            if err.status_code == 429 or err.status_code >= 500 or err.status_code == 408:
                failure = Transient(
                    f"HTTP {err.status_code}", parse_retry_after(err.response.headers)
                )
            else:
                failure = OracleError(self._describe(err))
        except openai.APITimeoutError:
            failure = Transient("timed out", maybe_billed=True)
        except openai.APIConnectionError as err:
            failure = Transient(f"connection error ({self._redact(str(err))})")
        if failure is not None:
            # Raised outside the except block: the client's exception (which may quote the
            # key or the request) is not chained onto ours.
            raise failure
        try:
            body = json.loads(raw.text)
            message = body["choices"][0]["message"]
            text = message.get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
            snippet = self._redact(raw.text[:80])
            raise Transient(
                f"malformed reply body {snippet!r} ({type(err).__name__})", maybe_billed=True
            ) from None
        usage = body.get("usage") or {}
        tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        if tokens == (0, 0):
            logger.debug("Judge reply reported no usage; charging the worst case.")
        return text, tokens

    def _describe(self, err: openai.APIStatusError) -> str:
        detail = self._redact(str(err.message).splitlines()[0] if err.message else "")[:200]
        hints = {
            401: f"check the key in ${self.api_key_env}",
            403: "check the key's permissions",
            404: f"check model ({self.model!r}) and base_url ({self.base_url})",
        }
        hint = hints.get(err.status_code, "check the request options")
        return f"Judge {self.model} at {self.base_url}: HTTP {err.status_code} {detail}; {hint}."

    def _redact(self, text: str) -> str:
        """Remove the key (and anything key-shaped) from text that may reach a log or error."""
        if self._key and self._key != NO_KEY:
            text = text.replace(self._key, "***")
        return _SECRETS.sub("***", text)
