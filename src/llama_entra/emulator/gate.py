"""What Azure OpenAI does with a deployment call around the model, shared by chat and Responses.

``admit`` runs the checks in Azure's order, after the caller's (``caller``) and the
deployment's existence (``deployment_not_found``):

1. A forced throttle (``POST /_emulator/faults`` ``throttle_next``/``throttle_retry_after``/
   ``throttle_model``): 429 for the next N calls, token rate limit, the given wait.
2. The deployment's rate limits (``limits``): 429 ``{"error": {"code": "429", "message":
   "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version
   2024-10-21 have exceeded token rate limit ..."}}`` ("call rate limit" for requests per
   minute; ``Responses_Create`` on the Responses route; a chat call's ``api-version`` when it
   has one, else 2024-10-21), with ``retry-after`` (whole seconds) and ``retry-after-ms``. An
   admitted call uses quota whatever happens next.
3. The context window: 400 ``context_length_exceeded``.
4. The content filter on the prompt (``content_filter``): 400 ``content_filter``.
5. ``!status NNN`` at the start of the last user message: that status. 429 is Azure's 429
   (token rate limit, ``retry-after: 1``) whose message ends with "Injected status 429
   (emulator)."; the others keep ``{"code": "NNN", "message": "Injected status NNN
   (emulator)."}``.

``finish`` counts every call under its deployment by outcome (``azure_calls``) and puts
``x-ratelimit-remaining-requests``/``-tokens`` (and ``x-ratelimit-limit-*`` when a limit is
set) on every answer naming a served deployment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

from llama_entra.emulator.caller import Refusal
from llama_entra.emulator.content_filter import blocked_prompt_body, prompt_trigger
from llama_entra.emulator.limits import CallCost, Throttle
from llama_entra.emulator.state import EmulatorState

__all__ = [
    "DEFAULT_API_VERSION",
    "DeploymentCall",
    "admit",
    "deployment_key",
    "deployment_not_found",
    "finish",
    "throttled",
]

DEFAULT_API_VERSION = "2024-10-21"
_STATUS_PROMPT = re.compile(r"^!status (\d{3})\b")
_OPERATIONS = {"chat": "ChatCompletions_Create", "responses": "Responses_Create"}


@dataclass(frozen=True, slots=True)
class DeploymentCall:
    """One call of a served deployment, as the checks see it."""

    route: Literal["chat", "responses"]
    model: str
    cost: CallCost
    prompt: str  # the last user message
    api_version: str = DEFAULT_API_VERSION
    resource: str | None = None  # which emulated Azure OpenAI resource (None: the default one)

    @property
    def deployment(self) -> str:
        """The key of the deployment's limits and counters: ``RESOURCE/MODEL`` or ``MODEL``."""
        return deployment_key(self.resource, self.model)


def deployment_key(resource: str | None, model: str) -> str:
    """A deployment of ``model`` on ``resource`` (None: the default resource) as state keys it."""
    return f"{resource}/{model}" if resource else model


def deployment_not_found() -> Response:
    """Azure's 404 for a deployment the resource does not have."""
    message = (
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again."
    )
    return JSONResponse({"error": {"code": "DeploymentNotFound", "message": message}}, 404)


def throttled(call: DeploymentCall, throttle: Throttle, note: str = "") -> Response:
    """Azure's 429 for ``call`` refused by ``throttle``."""
    seconds = throttle.retry_after_seconds
    message = (
        f"Requests to the {_OPERATIONS[call.route]} Operation under Azure OpenAI API version "
        f"{call.api_version} have exceeded {throttle.limit} rate limit of your current OpenAI "
        f"S0 pricing tier. Please retry after {seconds} seconds. Please go here: "
        "https://aka.ms/oai/quotaincrease if you would like to further increase the default "
        f"rate limit.{note}"
    )
    headers = {"retry-after": str(seconds), "retry-after-ms": str(throttle.retry_after_ms)}
    return JSONResponse({"error": {"code": "429", "message": message}}, 429, headers=headers)


def _context_exceeded(call: DeploymentCall, window: int) -> Response:
    cost = call.cost
    if call.route == "responses":
        message = (
            "Your input exceeds the context window of this model. Please adjust your input "
            "and try again."
        )
        param = "input"
    else:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{cost.prompt_tokens + cost.completion_tokens} tokens ({cost.prompt_tokens} in the "
            f"messages, {cost.completion_tokens} in the completion). Please reduce the length "
            "of the messages or completion."
        )
        param = "messages"
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": "context_length_exceeded",
        }
    }
    return JSONResponse(body, 400)


def _forced_throttle(state: EmulatorState, call: DeploymentCall) -> Throttle | None:
    faults = state.faults
    if faults.throttle_next <= 0 or faults.throttle_model not in (None, call.deployment):
        return None
    faults.throttle_next -= 1
    return Throttle("token", faults.throttle_retry_after)


def _injected(call: DeploymentCall) -> Refusal | None:
    match = _STATUS_PROMPT.match(call.prompt)
    if match is None:
        return None
    status = int(match.group(1))
    if status == 429:
        note = " Injected status 429 (emulator)."
        return Refusal(throttled(call, Throttle("token", 1.0), note), "throttled")
    body: dict[str, Any] = {
        "error": {
            "code": str(status),
            "message": f"Injected status {status} (emulator).",
            "type": None,
            "param": None,
        }
    }
    return Refusal(JSONResponse(body, status), "error")


def admit(state: EmulatorState, call: DeploymentCall) -> Refusal | None:
    """None when the model may answer ``call``, else Azure's refusal (module docstring)."""
    throttle = _forced_throttle(state, call)
    limits = state.limits_for(call.deployment)
    if throttle is None:
        window = state.window_for(call.deployment)
        throttle = window.admit(state.clock(), call.cost.rate_tokens, limits)
    if throttle is not None:
        return Refusal(throttled(call, throttle), "throttled")
    if call.cost.exceeds(limits.context_window):
        return Refusal(_context_exceeded(call, limits.context_window), "context_length_exceeded")
    if (category := prompt_trigger(call.prompt)) is not None:
        return Refusal(JSONResponse(blocked_prompt_body(category), 400), "content_filter")
    return _injected(call)


def finish(state: EmulatorState, model: str | None, response: Response, outcome: str) -> Response:
    """Count the call under ``model`` and add the rate-limit headers Azure sends on answers."""
    if model is None:
        return response
    state.count_call(model, outcome)
    if state.serves(model):
        limits = state.limits_for(model)
        requests, tokens = state.window_for(model).remaining(state.clock(), limits)
        response.headers["x-ratelimit-remaining-requests"] = str(requests)
        response.headers["x-ratelimit-remaining-tokens"] = str(tokens)
        if limits.rpm is not None:
            response.headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        if limits.tpm is not None:
            response.headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
    return response
