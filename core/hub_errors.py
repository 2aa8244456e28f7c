"""A Hugging Face Hub failure as one line that says what to do: ``hub_failure(exc, repo, missing)``.

Gated access, an unknown revision and an unknown repository are usage errors (``UsageError``: the caller's
token, pin or id is wrong); a missing file (``missing`` says how) and anything else are ``LanepaintError``.
The message carries no prefix: callers put the file or repository it concerns in front. huggingface_hub is
imported only when a failure is described.
"""

from __future__ import annotations

from core.errors import LanepaintError, UsageError, brief


def hub_failure(exc: Exception, repo: str, missing: str = "not in the repository") -> LanepaintError:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError) or (isinstance(exc, HfHubHTTPError) and getattr(
            exc.response, "status_code", None) in (401, 403)):
        return UsageError(f"access denied: {repo} is gated; accept its terms on the hub and set HF_TOKEN to a "
                          "read token")
    if isinstance(exc, RevisionNotFoundError):
        return UsageError("revision not found")
    if isinstance(exc, RepositoryNotFoundError):
        return UsageError("not found at this endpoint (or not visible without HF_TOKEN)")
    if isinstance(exc, EntryNotFoundError):
        return LanepaintError(missing)
    return LanepaintError(brief(exc, 200))
