"""Slack listeners: each module has one `register(app, services)`."""
