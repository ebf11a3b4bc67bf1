"""The one environment reader (django-environ). Settings read every deploy-specific value here."""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
