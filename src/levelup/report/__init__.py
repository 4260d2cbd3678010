"""Reporting: metrics, plots (matplotlib, returning Figures) and Markdown reports."""
