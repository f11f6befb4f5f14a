"""FastAPI service: thin routes over the UseCaseRelease workflow and the read model."""
