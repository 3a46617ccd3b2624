"""Tests of breakers, retry budgets and guarded models (clocks: ``sluice.testing.ManualClock``)."""
