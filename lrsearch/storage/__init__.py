"""The storage layer: where studies live and what the workers sharing one do to it.

``urls`` (which database, masked), ``engine`` (its settings), ``opening`` (open it as a ``StudyStorage``),
``study_storage`` (the storage lrsearch gives Optuna: its batch operations and rounds of asks), ``view``
(one worker's view of a study), ``tables`` (the one module that reads and writes Optuna's tables itself,
at the schema version it names), ``workers`` (the same operations on any storage), ``heartbeat``,
``records``, ``retries``. Import from the module itself: this package imports nothing, so that a command
needing only ``urls`` does not wait for Optuna and SQLAlchemy.
"""
