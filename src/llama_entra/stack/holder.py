"""The client holder: one Llama Stack client for the process, Entra tokens per call.

``ClientHolder`` owns the Llama Stack client (in-process library or a server) for the life of
the service and never rebuilds it: the Entra token travels in the provider-data header of each
call. It knows which models belong to ``remote::azure`` providers and their base URLs, merges
the Azure keys with static provider data into one header, and when Azure answers 401 it drops
the token, gets one fresh token and retries the call once. Azure's 429 is called again after
Azure's wait under the one retry policy (``llama_entra.azure.retry``), in library mode only: in
service mode the server's provider already did it.

In library mode on a PostgreSQL run config the client may come later (``attach``): until then
every use of ``client`` raises ``DatabaseUnavailableError``; readiness checks the database too,
and a lost database in any call becomes that error (503 naming the database).

Under 500 lines on purpose: every call path (plain, streamed, Responses) goes through the
same retry and provider-data steps, and keeping them in one class keeps them one policy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue
from pydantic import SecretStr

from llama_entra.azure import RateLimitRetry
from llama_entra.backends import StackClient, active_backend
from llama_entra.config import AzureRetryPolicy, LlamaEntraConfig
from llama_entra.entra import TokenManager
from llama_entra.errors import (
    ContextLengthError,
    DatabaseUnavailableError,
    LlamaEntraError,
    ModelNotFoundError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
)
from llama_entra.identity import UserPermissionError, UserTokens
from llama_entra.stack.admission import Admission
from llama_entra.stack.models import ModelInfo
from llama_entra.stack.permission import PermissionWatch, is_permission_denied
from llama_entra.stack.resources import ResourceRouter
from llama_entra.storage.database import DatabaseTarget, database_cause, ping
from llama_entra.telemetry import spans

__all__ = ["AZURE_PROVIDER_TYPE", "ClientHolder", "ModelInfo"]

AZURE_PROVIDER_TYPE = "remote::azure"
_RETRY_SPAN = "azure.unauthorized_retry"
logger = logging.getLogger(__name__)

Headers = dict[str, str]
JSON = dict[str, Any]
# A call to Llama Stack: given the provider-data headers and the id of the model to send (the
# resource's copy of the model when it is on several Azure OpenAI resources).
type Operation[T] = Callable[[Headers, str], Awaitable[T]]


class ClientHolder:
    """Calls Llama Stack with the right provider data; see the module docstring."""

    def __init__(
        self,
        config: LlamaEntraConfig,
        client: StackClient | None,
        tokens: TokenManager | None,
        *,
        mode: str,
        database: DatabaseTarget | None = None,
    ) -> None:
        self.config = config
        self.backend = active_backend()
        self.tokens = tokens
        self.users: UserTokens | None = None  # on-behalf-of: the caller's own token
        self.mode = mode
        self.database = database
        self.header = config.llama_stack.provider_data_header or self.backend.provider_data_header
        self._client: StackClient | None = None
        self.waiting_for: DatabaseUnavailableError | None = None  # why Llama Stack is not ready
        # Set while Llama Stack must be (re)started once its database answers (library mode).
        self.restart_needed = asyncio.Event()
        if client is None:
            self.restart_needed.set()
        else:
            self.attach(client)
        self.unauthorized_retries = 0  # calls retried with a fresh token after Azure's 401
        self.permission = PermissionWatch()  # Azure's PermissionDenied: no refresh, no retry
        self.rate_limit = RateLimitRetry(self._retry_policy())
        self.resources = ResourceRouter(
            config.azure_entra_id.endpoints if config.azure_entra_id else {}
        )
        self._azure_bases: dict[str, str] | None = None
        service = config.service
        self.admission = (
            Admission(service.admission_max_lag_ms / 1000, service.admission_max_wait_seconds)
            if service.admission_max_lag_ms
            else None
        )
        self._models: dict[str, ModelInfo] = {}

    def _retry_policy(self) -> AzureRetryPolicy:
        """Library mode: ``azure_entra_id.retries``. Service mode: none here, the server's
        provider applied it (a second layer would multiply the calls to Azure)."""
        if self.mode != "library":
            return AzureRetryPolicy(max_retries=0)
        entra = self.config.azure_entra_id
        return entra.retries if entra is not None else AzureRetryPolicy()

    @property
    def client(self) -> StackClient:
        """The Llama Stack client; ``DatabaseUnavailableError`` while it waits for its database."""
        if self._client is None:
            raise self.waiting_for or DatabaseUnavailableError("Llama Stack's database", "not up")
        return self._client

    @property
    def started(self) -> bool:
        """Whether Llama Stack runs and needs no restart (library mode: its database answered)."""
        return self._client is not None and not self.restart_needed.is_set()

    def attach(self, client: StackClient) -> None:
        """The client, once Llama Stack could start (library mode, database back)."""
        if self.database is not None:
            client.error_hook = self._watch_database
        self._client = client
        self.waiting_for = None
        self.restart_needed.clear()

    async def detach(self) -> None:
        """Shut the current client down before a restart; calls get 503 until ``attach``."""
        client, self._client = self._client, None
        if client is not None:
            await _close(client)

    def _watch_database(self, error: LlamaEntraError) -> LlamaEntraError:
        """A lost database in ``error`` becomes a 503 naming it (and, in library mode, a
        restart of the stack once it answers: llama-stack 0.7.3's stores never reconnect)."""
        assert self.database is not None  # noqa: S101 - only hooked when there is one
        cause = database_cause(error, self.database)
        if cause is None:
            return error
        lost = DatabaseUnavailableError(self.database.label, cause)
        self.database_lost(lost)
        return lost

    def database_lost(self, lost: DatabaseUnavailableError) -> None:
        """Llama Stack's database was found gone (by a call, or by the conversation index on
        the same database): in library mode, restart the stack once it answers."""
        if self.mode == "library":
            self.waiting_for = lost
            self.restart_needed.set()

    # -- discovery ---------------------------------------------------------------------------

    async def azure_bases(self) -> dict[str, str]:
        """Base URL of each ``remote::azure`` provider, discovered once (retried until it works).

        ``azure_entra_id.api_base`` overrides every discovered URL.
        """
        if self._azure_bases is not None:
            return self._azure_bases
        providers = await self.client.list_providers()
        override = self.config.azure_entra_id.api_base if self.config.azure_entra_id else None
        found: dict[str, str] = {}
        for provider in providers:
            if provider.provider_type != AZURE_PROVIDER_TYPE:
                if self.users is not None:
                    self.users.saw_provider(provider.provider_id, provider.provider_type)
                continue
            own = str(provider.config.get("base_url") or "")
            self.resources.saw_provider(provider.provider_id, own)
            base = override or own
            if base:
                found[provider.provider_id] = base
            else:
                logger.warning("Azure provider %s has no base_url", provider.provider_id)
        self._azure_bases = found
        return found

    def known_azure_bases(self) -> dict[str, str]:
        """The Azure base URLs discovered so far (empty before the first discovery)."""
        return dict(self._azure_bases or {})

    async def check_reachable(self, seconds: float) -> None:
        """Return when Llama Stack answers within ``seconds``, else raise why (503, 426, ...).

        Library mode: in-process, up once started; a PostgreSQL run config also needs its
        database to answer. Service mode: the server's health endpoint.
        """
        if self.mode == "library" and not self.started:
            raise self.waiting_for or DatabaseUnavailableError("Llama Stack", "starting")
        await self.client.check_health(seconds)
        if self.database is not None:
            await ping(self.database, seconds)

    async def models(self) -> list[ModelInfo]:
        """Every model Llama Stack lists (no Azure call: model refresh is off)."""
        bases = await self.azure_bases()
        models = [
            ModelInfo(
                id=model.id,
                provider_id=model.provider_id,
                provider_resource_id=model.provider_resource_id,
                model_type=model.model_type,
                azure=model.provider_id in bases,
            )
            for model in await self.client.list_models()
        ]
        visible = self.resources.saw_models(models)
        self._models = {model.id: model for model in visible}
        return visible

    async def resolve_model(self, name: str | None, provider: str | None = None) -> ModelInfo:
        """The model a request names (``provider/model``, plain, or the configured default)."""
        wanted = name or self.config.llama_stack.default_model
        if not self._models:
            await self.models()
        if wanted is None:
            llms = [model for model in self._models.values() if model.model_type == "llm"]
            if not llms:
                raise ModelNotFoundError("no language model is registered in Llama Stack")
            return llms[0]
        for attempt in range(2):
            found = self._match(wanted, provider)
            if found is not None:
                return found
            if attempt == 0:
                await self.models()  # registered since the last listing?
        # Named with a provider (lightspeed's fields), the model is named by its own id, and an
        # unknown provider is the model not existing for it, as lightspeed-stack says.
        raise ModelNotFoundError(f"Model with ID {_label(wanted, provider)} does not exist")

    def _match(self, wanted: str, provider: str | None) -> ModelInfo | None:
        if provider is None and wanted in self._models:
            return self._models[wanted]
        for model in self._models.values():
            same_provider = provider is None or model.provider_id == provider
            if same_provider and wanted in (model.id, model.provider_resource_id):
                return model
            if same_provider and model.id == f"{provider}/{wanted}":
                return model
        return None

    # -- calls -------------------------------------------------------------------------------

    async def headers_for(self, model: ModelInfo | None) -> Headers:
        """The provider-data header for a call to ``model`` (token only for Azure models)."""
        data: dict[str, Any] = dict(self.config.llama_stack.provider_data)
        if model is not None and model.azure and self.tokens is not None:
            bases = await self.azure_bases()
            token = await self._token()
            data["azure_api_key"] = token.get_secret_value()
            data["azure_api_base"] = bases[model.provider_id]
        if not data:
            return {}
        return {self.header: json.dumps(data)}

    async def _token(self) -> SecretStr:
        """The calling user's token (on-behalf-of), else the service's."""
        assert self.tokens is not None  # noqa: S101 - only asked for when there is one
        user_token = await self.users.token() if self.users is not None else None
        return user_token if user_token is not None else await self.tokens.token()

    async def chat(self, model: ModelInfo, params: JSON) -> JSON:
        """A chat completion from ``model`` (``params`` as OpenAI's body)."""
        return await self.call(
            model,
            lambda headers, model_id: self.client.chat_completion(
                params | {"model": model_id}, headers
            ),
            name="chat_completions",
        )

    def chat_stream(self, model: ModelInfo, params: JSON) -> AsyncGenerator[JSON, None]:
        """A streamed chat completion from ``model``: its chunks as they arrive."""
        return self.stream(
            model,
            lambda headers, model_id: self.client.chat_completion_stream(
                params | {"model": model_id}, headers
            ),
            name="chat_completions",
        )

    async def call[T](
        self,
        model: ModelInfo | None,
        operation: Operation[T],
        *,
        name: str = "call",
    ) -> T:
        """Run ``operation(headers, model_id)``; on Azure 401 refresh the token once and retry.

        Traced as ``llama_stack.<name>``, the retry as its child ``azure.unauthorized_retry``.
        """
        with spans.span(f"llama_stack.{name}", self._span_attributes(model)):
            if self.admission is not None:
                await self.admission.admit()
            headers = await self.headers_for(model)
            try:
                return self._accepted(model, await self._throttled(model, operation, headers))
            except LlamaEntraError as exc:
                self._inspect_refusal(model, exc, headers)
                if not self._should_retry(model, exc):
                    raise
                rejected, reason = self._token_in(headers), _reason(exc)
            with spans.span(_RETRY_SPAN, {"llama_entra.retry.reason": reason}):
                self._invalidate(rejected)
                headers = await self.headers_for(model)
                try:
                    return self._accepted(model, await self._throttled(model, operation, headers))
                except LlamaEntraError as retry_exc:
                    self._inspect_refusal(model, retry_exc, headers)
                    raise self._after_retry(retry_exc) from retry_exc

    async def stream[T](
        self,
        model: ModelInfo | None,
        operation: Operation[AsyncIterator[T]],
        *,
        name: str = "stream",
    ) -> AsyncGenerator[T, None]:
        """Like ``call`` for a streaming operation: the retry happens before the first chunk.

        Service mode: a Llama Stack server drops a streaming connection when Azure answers
        401, so a connection error before the first chunk also counts as a refusal here.
        The ``llama_stack.<name>`` span lasts until the stream ends.
        """
        current = spans.started_span(f"llama_stack.{name}", self._span_attributes(model))
        try:
            with spans.use(current):
                opened = await self._open_stream(model, operation)
            if opened is None:
                return
            stream, first = opened
            yield first
            async for chunk in stream:
                yield chunk
        except Exception as exc:
            spans.failed(current, spans.safe_description(exc))
            raise
        finally:
            current.end()

    async def _open_stream[T](
        self, model: ModelInfo | None, operation: Operation[AsyncIterator[T]]
    ) -> tuple[AsyncIterator[T], T] | None:
        """The stream and its first chunk (None: empty), retried once after Azure's 401."""
        if self.admission is not None:
            await self.admission.admit()
        headers = await self.headers_for(model)
        try:
            opened = await self._throttled(model, _first_chunk(operation), headers)
            return self._accepted(model, opened)
        except LlamaEntraError as exc:
            self._inspect_refusal(model, exc, headers)
            if not self._should_retry(model, exc, streaming=True):
                raise
            rejected, reason = self._token_in(headers), _reason(exc)
        with spans.span(_RETRY_SPAN, {"llama_entra.retry.reason": reason}):
            self._invalidate(rejected)
            headers = await self.headers_for(model)
            try:
                opened = await self._throttled(model, _first_chunk(operation), headers)
                return self._accepted(model, opened)
            except LlamaEntraError as retry_exc:
                self._inspect_refusal(model, retry_exc, headers)
                raise self._after_retry(retry_exc) from retry_exc

    async def _throttled[R](
        self, model: ModelInfo | None, operation: Operation[R], headers: Headers
    ) -> R:
        """``operation``, called again after Azure's 429 as the policy allows; for a model on
        several resources, on the resource the pool picks (moved on a 429 or a refused
        connection before any output, see ``llama_entra.azure.deployments``)."""
        pool = self.resources.pool_for(model)
        if model is None or pool is None:
            model_id = model.id if model is not None else ""
            return await self.rate_limit.run(lambda: operation(headers, model_id))
        served = model

        def on_resource(base_url: str) -> Awaitable[R]:
            spans.tag_deployment(base_url)
            target = self.resources.model_at(served, base_url)
            return operation(self._with_base(headers, base_url), target)

        return await self.rate_limit.run(lambda: pool.call(on_resource))

    def _with_base(self, headers: Headers, base_url: str) -> Headers:
        """``headers`` with the provider data's Azure base URL set to ``base_url``."""
        data = json.loads(headers[self.header])
        data["azure_api_base"] = base_url
        return {**headers, self.header: json.dumps(data)}

    def _span_attributes(self, model: ModelInfo | None) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            "llama_stack.mode": self.mode,
            "llama_stack.backend": self.backend.name,
        }
        if model is not None:
            attributes["gen_ai.request.model"] = model.id
            attributes["llama_entra.azure"] = model.azure
        return attributes

    def _accepted[R](self, model: ModelInfo | None, result: R) -> R:
        """``result`` of a call Azure answered: any PermissionDenied seen before is over."""
        if model is not None and model.azure:
            self.permission.succeeded()
        return result

    def _inspect_refusal(
        self, model: ModelInfo | None, exc: LlamaEntraError, headers: Mapping[str, str]
    ) -> None:
        """A too-long prompt learns its model (for lightspeed's 413); Azure's PermissionDenied
        is raised at once: no refresh or retry can help (``stack.permission``)."""
        if isinstance(exc, ContextLengthError) and model is not None:
            exc.model = model.own_id
        if model is not None and model.azure and is_permission_denied(exc):
            user = self.users.acting_for() if self.users is not None else None
            if user is not None:  # the user's own role, not the service's health
                raise UserPermissionError(user.object_id) from exc
            raise self.permission.refused(self._token_in(headers)) from exc

    def _should_retry(
        self, model: ModelInfo | None, exc: LlamaEntraError, *, streaming: bool = False
    ) -> bool:
        if model is None or not model.azure or self.tokens is None:
            return False
        if _is_unauthorized(exc):
            return True
        # A Llama Stack 0.7.3 server drops a stream whose upstream answered 401.
        dropped = streaming and self.mode == "service"
        return dropped and isinstance(exc, UpstreamConnectionError)

    def _after_retry(self, exc: LlamaEntraError) -> LlamaEntraError:
        if _is_unauthorized(exc):
            return UpstreamAuthError(
                "Azure OpenAI rejected a freshly issued Entra ID token: check that the identity "
                "has the 'Cognitive Services OpenAI User' role on the resource",
                status=502,
            )
        return exc

    def _invalidate(self, rejected: str | None) -> None:
        if self.tokens is None:
            return
        self.unauthorized_retries += 1
        logger.info("Azure OpenAI rejected the Entra ID token; fetching a new one")
        token = SecretStr(rejected) if rejected else None
        if self.users is None or not self.users.drop(token):
            self.tokens.invalidate(token)

    def _token_in(self, headers: Mapping[str, str]) -> str | None:
        raw = headers.get(self.header)
        if raw is None:
            return None
        value = json.loads(raw).get("azure_api_key")
        return str(value) if value else None

    async def aclose(self) -> None:
        """Close the client (and shut the in-process stack down in library mode)."""
        if self.admission is not None:
            await self.admission.aclose()
        if self._client is not None:
            await _close(self._client)


async def _close(client: StackClient) -> None:
    try:
        await client.aclose()
    except Exception:  # shutdown must go on
        logger.exception("closing the Llama Stack client failed")


def _first_chunk[T](
    operation: Operation[AsyncIterator[T]],
) -> Operation[tuple[AsyncIterator[T], T] | None]:
    """``operation`` opening a stream, as one step up to its first chunk (None: empty)."""

    async def opened(headers: Headers, model_id: str) -> tuple[AsyncIterator[T], T] | None:
        stream = await operation(headers, model_id)
        try:
            return stream, await anext(aiter(stream))
        except StopAsyncIteration:
            return None

    return opened


def _reason(exc: LlamaEntraError) -> str:
    """Why a call is retried with a fresh token (a span attribute)."""
    return "azure_401" if _is_unauthorized(exc) else "stream_dropped"


def _is_unauthorized(exc: LlamaEntraError) -> bool:
    """Azure (through Llama Stack) refused the token: worth one refresh and retry."""
    return (
        isinstance(exc, UpstreamError)
        and not isinstance(exc, UpstreamAuthError)
        and exc.status == 401
        and not is_permission_denied(exc)
    )


def _label(name: str, provider: str | None) -> str:
    """The model as error messages name it: without ``provider/`` when a provider is given."""
    return name.removeprefix(f"{provider}/") if provider else name
