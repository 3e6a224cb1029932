"""Plans: steps reviewed before they run, applied in order, journaled so that an
interrupted run can be finished or undone."""
