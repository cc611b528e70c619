"""The runbook's support contacts of the database providers, for the escalation level
that calls provider support."""

from __future__ import annotations

# The runbook's "Provider Support" list (seed: Emergency Contacts).
PROVIDER_SUPPORT: dict[str, str] = {
    "neon": "https://neon.tech/docs/support",
    "supabase": "https://supabase.com/support",
    "railway": "support@railway.app",
    # Render's support page (or the dashboard's contact form); not in the seed runbook
    "render": "https://render.com/docs/support",
}
_PROVIDER_NAMES = {
    "neon": "Neon",
    "supabase": "Supabase",
    "railway": "Railway",
    "render": "Render",
}


def provider_name(provider: str) -> str:
    """The provider as people write it ("Neon"); an unknown label as it is configured."""
    return _PROVIDER_NAMES.get(provider, provider)


def provider_contact(provider: str | None) -> str | None:
    """One plain sentence with the runbook's support contact for `provider`; None when
    the alert is not about a database (no provider applies)."""
    if provider is None:
        return None
    contact = PROVIDER_SUPPORT.get(provider)
    if contact is not None:
        return f"{_PROVIDER_NAMES[provider]} support: {contact}"
    listed = ", ".join(_PROVIDER_NAMES[p] for p in PROVIDER_SUPPORT)
    return (
        f"The runbook has no support contact for {provider} databases (it lists {listed}); "
        "contact your provider through its dashboard and add the contact to the runbook."
    )
