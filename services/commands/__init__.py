"""The command layer: how every front door (REST, Slack, the console) reads and changes runs.

``service.CommandService`` has one method per command; ``gateway.UseCaseGateway`` is the only
code that talks to Temporal; ``errors`` are what both raise. Nothing here knows about HTTP or
Slack: the API maps the errors to problem documents, the Slack bot branches on ``Refusal``.
"""
