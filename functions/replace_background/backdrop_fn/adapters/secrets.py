"""The API key from Secrets Manager, cached per container by Powertools Parameters."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from backdrop_fn.errors import AuthFailed, BackdropError, InfrastructureUnavailable
from backdrop_fn.ports import ApiKey

# A good key is read once per container and kept this long; a 401/403 reads it again at once.
# A secret that yields no usable key is read again on its next use: it is never kept.
CACHE_SECONDS = 3600
_PERMANENT_CODES = {
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
}


def _sendable(key: str) -> bool:
    return all(33 <= ord(ch) <= 126 for ch in key)


class SecretsManagerApiKey:
    def __init__(
        self, secret_id: str, provider: SecretsProvider, *, cache_seconds: int = CACHE_SECONDS
    ) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._cache_seconds = cache_seconds
        # Powertools caches whatever it read; a value that gave no key must not be served from there.
        self._read_again = False

    @classmethod
    def from_client(cls, secret_id: str, client: Any) -> SecretsManagerApiKey:
        return cls(secret_id, SecretsProvider(boto3_client=client))

    def current(self) -> ApiKey:
        return self._read(force=False)

    def refreshed(self) -> ApiKey:
        return self._read(force=True)

    def _read(self, *, force: bool) -> ApiKey:
        force = force or self._read_again
        try:
            value = self._provider.get(self._secret_id, max_age=self._cache_seconds, force_fetch=force)
        except GetParameterError as error:
            raise self._explain(error) from None
        self._read_again = True  # until this value proves to hold a key, whatever it raises
        key = self._key_from(value)
        self._read_again = False
        return ApiKey(key)

    def _key_from(self, secret: Any) -> str:
        """The secret string is the raw key, or ``{"api_key": "…"}``.

        See docs/REFERENCE.md#environment-variables.
        """
        if isinstance(secret, bytes):
            secret = secret.decode("utf-8", errors="replace")
        text = str(secret).strip()
        if text.startswith("{"):
            try:
                document = json.loads(text)
            except (ValueError, RecursionError):  # bad JSON, a number too long to read, nesting
                raise AuthFailed(
                    f"the secret {self._secret_id!r} looks like JSON but does not parse"
                ) from None
            text = str(document.get("api_key") or "").strip() if isinstance(document, dict) else ""
        if text and not _sendable(text):
            raise AuthFailed(
                f"the key in secret {self._secret_id!r} holds spaces or characters a header cannot carry"
            )
        if not text:
            raise AuthFailed(
                f"the secret {self._secret_id!r} holds no API key yet: put it with "
                f"`aws secretsmanager put-secret-value --secret-id {self._secret_id} --secret-string <key>`"
            )
        return text

    def _explain(self, error: GetParameterError) -> BackdropError:
        # Powertools re-raises every failure as GetParameterError; the boto3 error is its context.
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ClientError):
            code = cause.response.get("Error", {}).get("Code", "")
            if code in _PERMANENT_CODES:
                return AuthFailed(f"cannot read the API key secret {self._secret_id!r}: {code}")
            return InfrastructureUnavailable(f"Secrets Manager failed for {self._secret_id!r}: {code}")
        return InfrastructureUnavailable(
            f"Secrets Manager failed for {self._secret_id!r}: {type(cause or error).__name__}"
        )
