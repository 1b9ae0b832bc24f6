"""Seeds 002 and 004 as plug-ins: Problems written with the public API alone, as a user would write them,
registered under the ``lrsearch.trainers`` entry points (``seed004_identity``, ``seed004_affine``,
``seed002_identity``)."""
