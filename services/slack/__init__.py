"""Slack: a second front door to the same workflow, and the worker's gate cards.

The bot (``app``, ``desk``) maps Slack users to directory people and sends commands through the
command layer exactly as REST does; the workflow decides every click. Block Kit (``blocks``),
the identifiers Slack echoes back (``actions``) and the Web API client (``client``) are shared
with the worker's Slack adapter. The API only mounts the bot at ``/slack/events``.
"""
