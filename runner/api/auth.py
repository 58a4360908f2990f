"""``POST /v1/auth/access_token``: exchange an API key for a short-lived access token.

The same route serves Runner's clients and ByteNite's (whose API had it at this path,
with the same body and answer), so ``expiresIn`` is a string, as theirs was.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from runner.api.deps import api_state
from runner.api.v1_models import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class AccessTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiKey: str = Field(..., min_length=1, max_length=200, description="A key from `runner keys create --org X`.")


class AccessToken(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>` (or bare).")
    expiresIn: str = Field(description="Seconds the token lives, as a string.")
    scope: str = Field(description="`org:<org>`: the org every request with this token acts for; "
                                   "`job:<id>` for a job's own key, which acts on that job only.")


@router.post("/access_token", response_model=AccessToken,
             responses={code: ERROR_RESPONSES[code] for code in (401, 413, 422, 429)})
def access_token(body: AccessTokenRequest, request: Request) -> AccessToken:
    """A new access token for a valid API key (401 otherwise)."""
    state = api_state(request)
    token, who = state.keys.exchange(body.apiKey, state.limit)  # counts against the key's limit (429)
    return AccessToken(token=token, expiresIn=str(state.settings.api_token_seconds), scope=f"job:{who.job}" if who.job else f"org:{who.org}")
