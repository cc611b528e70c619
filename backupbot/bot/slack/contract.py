"""What the Slack app registers, in one place.

`manifest.yml` must agree with these values; `tests/test_manifest.py` checks that it does.
"""

SLASH_COMMAND = "/backup"
EVENTS_PATH = "/slack/events"
USES_INTERACTIVITY = True
BOT_EVENTS = ("app_home_opened",)  # the Home tab (listeners/home_actions.py); no scope needed
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "files:write",  # trend charts (files_upload_v2)
    "im:write",
    "usergroups:read",
    "users:read",
)
