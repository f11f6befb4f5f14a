"""Control catalog: loading, evaluation against a run's facts, OSCAL export."""
