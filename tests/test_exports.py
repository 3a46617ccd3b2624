"""The public API is exactly what ``sluice.__all__`` lists; changing it is a decision."""

from __future__ import annotations

import sluice


def test_exported_names() -> None:
    """The exported names are pinned."""
    assert sorted(sluice.__all__) == [
        "AdmissionError",
        "AppSettings",
        "BudgetExceededError",
        "ConfigError",
        "InvalidInputError",
        "JSONObject",
        "NotFoundError",
        "PoolSettings",
        "RuntimeSettings",
        "SluiceApp",
        "SluiceError",
        "Step",
        "StepContext",
        "StepError",
        "StepOutputError",
        "StoreError",
        "Workflow",
        "WorkflowError",
        "WorkflowRegistry",
        "load_settings",
    ]
    for name in sluice.__all__:
        assert getattr(sluice, name) is not None


def test_errors_share_one_root() -> None:
    """Every exported error derives from SluiceError."""
    errors = [getattr(sluice, n) for n in sluice.__all__ if n.endswith("Error")]
    assert all(issubclass(e, sluice.SluiceError) for e in errors)


def test_import_is_light() -> None:
    """Importing sluice pulls in no model framework and no HTTP server."""
    import subprocess
    import sys

    heavy = "('torch', 'uvicorn', 'sklearn', 'sentence_transformers')"
    code = f"import sys, sluice; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
