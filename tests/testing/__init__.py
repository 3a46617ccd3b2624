"""Tests of ``sluice.testing``: the fakes and the in-process app users test with."""
