"""jobkit over HTTP: the JSON API (:mod:`~jobkit.web.api`, a FastAPI router over
:mod:`jobkit.ops`), its roles (:mod:`~jobkit.web.auth`) and error answers
(:mod:`~jobkit.web.errors`), and the app ``jobkit serve`` runs (:mod:`~jobkit.web.app`).
Needs the ``http`` extra (``pip install 'jobkit[http]'``)."""
