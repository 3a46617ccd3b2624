"""Tests of the chaos drills' helpers and the model simulator."""
