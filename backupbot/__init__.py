"""backupbot: a Slack chat-ops bot that owns a team's PostgreSQL backup runbook."""

from backupbot import logsafe

logsafe.install()  # before any backupbot module creates its logger
