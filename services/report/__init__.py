"""The flow report: ``render_report`` turns a flow-metrics document into one HTML page."""

from services.report.html import render_report

__all__ = ["render_report"]
