"""The mock-sentiment experiment through the product: `manage.py mock_sentiment` with these arguments.

    .venv/bin/python bench/mock_sentiment_product.py --quick            # miniature, own Celery worker
    .venv/bin/python bench/mock_sentiment_product.py --labeler copy --quick

Uses whatever database and broker the settings give (the embedded default: SQLite and the
filesystem broker under var/). `bench/mock_sentiment.py` is the same experiment on the library
path (no Django, no Celery).
"""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("mock_sentiment", *argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
