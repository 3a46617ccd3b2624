"""The built-in steps: ``classify``, ``retrieve``, ``route`` and ``deliver``.

Each module holds one step (``files.py`` holds the app files some of them read). They are
registered by name in :mod:`sluice.workflow.builtins` and imported on first use. Steps sit
above the models, retrieval, caches and reliability they use, and below the runtime that runs
them.
"""
