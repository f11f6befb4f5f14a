"""Slack: a Bolt bot mounted at ``/slack/events``, a second front door to the same workflow.

The workflow's validators decide every click exactly as they decide REST calls; the bot maps
Slack users to directory people, sends the same Updates and renders Block Kit (``blocks``),
which the worker's Slack adapter uses too.
"""
