"""The Celery-style brief, in its own words: ``config.py`` with ``BROKER_URL``,
``RESULT_BACKEND``, ``MAX_RETRIES`` and ``TASK_TIMEOUT``; ``tasks.background_task``
queued with ``delay(a, b)`` or ``apply_async((a, b), countdown=60)``; a Flask ``app``
with ``POST /add-task`` and ``GET /task-status/<task_id>``. Run it with
``python -m jobs_example.celery_style``.
"""
