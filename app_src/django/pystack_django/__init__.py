"""pystack reference Django project: settings from environment variables, see settings.py."""
