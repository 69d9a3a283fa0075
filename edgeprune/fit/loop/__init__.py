"""Allocation strategies of the closed loop: which widths to try next, given what was measured."""
