"""``python -m jobs_example.celery_style``: the brief's API and its worker."""

import sys

from jobs_example.celery_style.app import main

sys.exit(main())
