"""The runner: claims runs and executes their agent loops (python manage.py runagents)."""
