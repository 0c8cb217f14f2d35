"""The projector: follows every log's committed entries and keeps the read models up to date.

:mod:`~services.projector.projector` is the loop, :mod:`~services.projector.rollups` and
:mod:`~services.projector.tooldefs` the pure aggregation, :mod:`~services.projector.ports` the storage
port with its adapters :mod:`~services.projector.postgres` and :mod:`~services.projector.sqlite`, and
:mod:`~services.projector.service` the ``sealtrail projector`` process (a composition root).
"""
