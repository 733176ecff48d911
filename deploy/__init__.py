"""Deployment: the Docker compose description and the local stack for development and tests."""
