"""The prefork worker: a supervisor (``supervisor.py``) owning N long-lived children
(``child.py``) that claim and run jobs (``execute.py``); ``limits.py`` holds the
memory and time limits the supervisor enforces; ``protocol.py`` their pipe messages."""
