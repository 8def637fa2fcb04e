"""Personas and provider routes."""
