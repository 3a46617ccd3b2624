"""Reliability: circuit breakers, retry budgets and guards for calls to downstreams."""
