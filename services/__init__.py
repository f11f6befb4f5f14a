"""ReleaseGate services: API, worker, store and the embedded launcher."""
