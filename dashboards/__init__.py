"""Grafana dashboards of the quality view, the checks they pass, and the push to Grafana."""
